import Fastify from 'fastify'
import t from 'tap'
import type { CacheEntry } from '../lib/entry.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { CacheStore, StoreSetOptions } from '../lib/stores/store.js'
import { TroubleLog } from '../lib/observability/trouble.js'
import { BREAKER_MIN_OPEN_MS, BREAKER_THRESHOLD } from '../lib/stores/breaker.js'
import { GuardedStore } from '../lib/stores/guard.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { deferred } from './helpers/events.js'

/** A store that answers through promises, and can be made to fail or hang on demand. */
class FlakyStore implements CacheStore {
  readonly name = 'flaky'
  readonly inner = new MemoryStore({ maxBytes: 1_000_000 })
  mode: 'ok' | 'throw' | 'reject' | 'hang' = 'ok'
  closed = false

  async #run<T>(fn: () => T): Promise<T> {
    if (this.mode === 'throw') throw new Error('sync failure')
    if (this.mode === 'reject') return await Promise.reject(new Error('connection refused'))
    if (this.mode === 'hang') return await new Promise<T>(() => {})
    return fn()
  }

  calls = 0

  get (key: string): Promise<CacheEntry | undefined> {
    this.calls++
    if (this.mode === 'throw') throw new Error('sync failure')
    return this.#run(() => this.inner.get(key))
  }

  set (key: string, entry: CacheEntry, options: StoreSetOptions): Promise<void> {
    if (this.mode === 'throw') throw new Error('sync failure')
    return this.#run(() => this.inner.set(key, entry, options))
  }

  async delete (key: string): Promise<boolean> { return this.inner.delete(key) }
  async invalidateTags (tags: readonly string[]): Promise<number> { return this.inner.invalidateTags(tags) }
  clear (): Promise<void> {
    if (this.mode === 'throw') throw new Error('sync failure')
    return this.#run(() => { this.inner.clear() })
  }

  async stats (): Promise<never> { throw new Error('not synchronous') }
  async close (): Promise<void> { this.closed = true }
}

t.test('an asynchronous store: MISS then HIT', async (t) => {
  const store = new FlakyStore()
  const app = await cachedApp(t, { store })
  app.get('/a', { config: { cache: true } }, async () => 'a')
  t.equal((await app.inject('/a')).headers['x-cache'], 'MISS')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal((await app.inject('/a')).headers['x-cache'], 'HIT')
  t.same(app.cache.stats().store, { name: 'flaky', entries: 0, bytes: 0, evictions: 0 }, 'async stats are not awaited')
})

for (const mode of ['throw', 'reject', 'hang'] as const) {
  t.test(`a store that fails (${mode}) never fails the request`, async (t) => {
    const store = new FlakyStore()
    const { lines, logger } = logCapture('warn')
    const app = await cachedApp(t, { store, timeout: 30 }, { logger })
    const runs = counter()
    app.get('/a', { config: { cache: true } }, async () => ({ run: runs.next() }))
    await app.inject('/a')
    store.calls = 0
    store.mode = mode
    const responses = await Promise.all(Array.from({ length: 20 }, async () => await app.inject('/a')))
    for (const r of responses) {
      t.equal(r.statusCode, 200)
      t.equal(r.headers['x-cache'], 'BYPASS')
    }
    t.equal(runs.runs, 21)
    const stats = app.cache.stats().routes['GET /a']
    t.ok(stats.errors >= 20, `errors ${stats.errors}`)
    t.equal(stats.bypasses, 20)
    const warnings = lines.filter((l) => l.msg?.toString().startsWith('response cache store trouble'))
    t.equal(warnings.length, 1, 'store trouble is logged once, not per request')
    // Synchronous failures open the circuit after BREAKER_THRESHOLD calls; promised reads of one key share one call.
    t.equal(store.calls, mode === 'throw' ? BREAKER_THRESHOLD : 1)
    for (let i = 0; i < BREAKER_THRESHOLD; i++) t.equal((await app.inject('/a')).headers['x-cache'], 'BYPASS')
    const callsBeforePause = store.calls
    for (let i = 0; i < 10; i++) t.equal((await app.inject('/a')).headers['x-cache'], 'BYPASS')
    t.equal(store.calls, callsBeforePause, 'after repeated failures the store is not asked at all')
    store.mode = 'ok'
    // The circuit breaker pauses the store for a second before it tries again.
    await new Promise((resolve) => setTimeout(resolve, BREAKER_MIN_OPEN_MS + 50))
    await app.inject('/a')
    t.equal((await app.inject('/a')).headers['x-cache'], 'HIT', 'back to normal once the store answers')
  })
}

t.test('a failed set is counted, and the response is still sent', async (t) => {
  const store = new FlakyStore()
  const app = await cachedApp(t, { store, timeout: 20 })
  app.get('/s', { config: { cache: true } }, async () => 's')
  const original = store.get.bind(store)
  store.get = async (key) => await original(key)
  store.set = async () => { throw new Error('read only replica') }
  const r = await app.inject('/s')
  t.equal(r.statusCode, 200)
  t.equal(r.headers['x-cache'], 'MISS')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(app.cache.stats().total.errors, 1)
  t.equal(app.cache.stats().total.stores, 0)
})

t.test('a store passed in is not closed by the plugin; the memory store it made is', async (t) => {
  const store = new FlakyStore()
  const app = await cachedApp(t, { store })
  await app.close()
  t.equal(store.closed, false)

  const own = await cachedApp(t)
  own.get('/a', { config: { cache: true } }, async () => 'a')
  await own.inject('/a')
  t.equal(own.cache.stats().store.entries, 1)
  await own.close()
  t.equal(own.cache.stats().store.entries, 0, 'closed: emptied, its memory given back')
})

t.test('clear() rejects when the store fails: the one call that does', async (t) => {
  for (const mode of ['throw', 'reject'] as const) {
    const store = new FlakyStore()
    const app = await cachedApp(t, { store })
    app.get('/a', { config: { cache: true } }, async () => 'a')
    await app.inject('/a')
    store.mode = mode
    await t.rejects(app.cache.clear(), mode === 'throw' ? { message: 'sync failure' } : { message: 'connection refused' }, mode)
    store.mode = 'ok'
    t.equal((await app.inject('/a')).headers['x-cache'], 'HIT', `${mode}: nothing was cleared`)
    await app.cache.clear()
    t.equal((await app.inject('/a')).headers['x-cache'], 'MISS', 'and clear() works once the store does')
  }
})

t.test('TroubleLog reports the suppressed count with the next line', async (t) => {
  const logged: unknown[] = []
  const log = { warn: (obj: unknown) => { logged.push(obj) } } as unknown as import('fastify').FastifyBaseLogger
  const trouble = new TroubleLog(log, 0)
  trouble.report('get', Object.assign(new Error('down'), { code: 'ECONNREFUSED' }))
  trouble.report('get', 'plain string')
  t.same(logged, [
    { responseCache: { operation: 'get', code: 'ECONNREFUSED', error: 'down', suppressed: 0 } },
    { responseCache: { operation: 'get', code: undefined, error: 'plain string', suppressed: 0 } }
  ])
  const slow = new TroubleLog(log, 60_000)
  slow.report('set', new Error('a'))
  slow.report('set', new Error('b'))
  t.equal(logged.length, 3)
})

t.test('answers that come after the timeout change nothing: the call already failed, and the breaker opens', async (t) => {
  // Every call answers only when the test lets it, long after its 5 ms timeout: calls of round 0,
  // then of round 1.
  const gates = [deferred(), deferred()]
  let round = 0
  const answers: Array<Promise<unknown>> = []
  const late = async <T>(value: T, fail = false): Promise<T> => {
    const answer = gates[round].promise.then(() => {
      if (fail) throw new Error('late failure')
      return value
    })
    answers.push(answer.catch(() => {}))
    return await answer
  }
  const store: CacheStore = {
    name: 'late',
    get: async () => await late(undefined),
    set: async () => { await late(undefined, true) },
    delete: async () => await late(false),
    invalidateTags: async () => await late(0),
    clear: async () => {}
  }
  const guarded = new GuardedStore(store, 5, new TroubleLog(Fastify().log))
  // All but one of the failures that open the circuit, each answered (successfully) after its timeout.
  const first = await Promise.allSettled(Array.from({ length: BREAKER_THRESHOLD - 1 }, async () => await guarded.run('get', () => store.get('k'))))
  gates[0].resolve()
  await Promise.all(answers)
  await new Promise((resolve) => setImmediate(resolve)) // and whatever they set off
  t.equal(guarded.allows(), true)
  round = 1
  const outcomes = [...first, ...await Promise.allSettled([guarded.run('set', () => store.set('k', {} as CacheEntry, { ttl: 1 }))])]
  t.same(outcomes.map((o) => o.status), Array(BREAKER_THRESHOLD).fill('rejected'))
  t.match((outcomes[0] as PromiseRejectedResult).reason, { code: 'FST_RESPONSE_CACHE_STORE_TIMEOUT' })
  t.equal(guarded.allows(), false, 'the late successes did not reset the count of failures')
  gates[1].resolve()
  t.equal(answers.length, BREAKER_THRESHOLD)
  await Promise.all(answers) // the last late answer, a failure, lands and changes nothing
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(guarded.allows(), false)
})

t.test('app.cache.del failing on one failure domain pauses that domain only, not the whole store', async (t) => {
  // Two shards, as a Redis Cluster has several: keys holding "a" live on shard 1, which refuses deletes.
  class ShardedStore extends MemoryStore {
    failureDomain (key: string): number { return key.includes('a') ? 1 : 2 }
    override delete (key: string): ReturnType<MemoryStore['delete']> {
      if (this.failureDomain(key) === 1) throw new Error('shard 1 is gone')
      return super.delete(key)
    }
  }
  const app = await cachedApp(t, { store: new ShardedStore({ maxBytes: 1_000_000 }) })
  const runs = counter()
  app.get('/items/:id', { config: { cache: true } }, async () => ({ run: runs.next() }))
  await app.ready()
  for (let i = 0; i <= BREAKER_THRESHOLD; i++) t.equal(await app.cache.del('a-key'), false, 'shard 1 fails')
  t.equal(await app.cache.set('b-key', 'kept'), true, 'shard 2 still takes writes')
  t.equal(await app.cache.get('b-key'), 'kept', 'and reads')
  t.equal(await app.cache.del('b-key'), true, 'and deletes')
  await app.inject('/items/2')
  t.equal((await app.inject('/items/2')).headers['x-cache'], 'HIT', 'responses of other keys still hit')
})

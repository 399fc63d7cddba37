import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import { cachedApp, logCapture } from './helpers/app.js'
import { deferred, until } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'
import { MemoryStore } from '../lib/stores/memory.js'

const WARN_LINE = 'response cache: wrap function failed; the stale value was answered instead'

/** A third-party API that answers until it is told to fail, counting its calls. */
function upstream (): { calls: number, failing: boolean, fetch: () => Promise<{ kcal: number }> } {
  const api = {
    calls: 0,
    failing: false,
    fetch: async (): Promise<{ kcal: number }> => {
      api.calls++
      await new Promise((resolve) => setImmediate(resolve))
      if (api.failing) throw new Error('nutrition API: 503')
      return { kcal: 52 + api.calls }
    }
  }
  return api
}

const kinds = await storeKinds(t)

for (const [kind, options] of kinds) {
  t.test(`${kind}: within staleIfError, a failing function answers the old value to every concurrent caller, once logged`, async (t) => {
    const { lines, logger } = logCapture('warn')
    const app = await cachedApp(t, options(), { logger })
    const api = upstream()
    const call = async (): Promise<{ kcal: number }> => await app.cache.wrap('usda:apple', api.fetch, { ttl: 0.05, staleIfError: 60 })
    t.same(await call(), { kcal: 53 })
    await until(Date.now(), 50)
    api.failing = true
    const answers = await Promise.all(Array.from({ length: 10 }, call))
    t.ok(answers.every((answer) => answer.kcal === 53), 'the stale value, not the error')
    t.equal(api.calls, 2, 'the concurrent callers shared one failing call')
    t.same(await call(), { kcal: 53 }, 'and again on the next failure')
    t.equal(api.calls, 3)
    t.equal(app.cache.stats().values.stale, 2, 'each stale answer counted')
    t.equal(lines.filter((line) => line.msg === WARN_LINE).length, 1, 'logged at warn, once per interval')
    t.match(lines.find((line) => line.msg === WARN_LINE), { err: { message: 'nutrition API: 503' }, responseCache: { suppressed: 0 } })
    t.notMatch(JSON.stringify(lines), /usda|apple/, 'the key is never logged')
    api.failing = false
    t.same(await call(), { kcal: 56 }, 'a good answer replaces the stale value')
  })

  t.test(`${kind}: past the window the error reaches the caller`, async (t) => {
    const app = await cachedApp(t, options())
    const api = upstream()
    // Stored under a long window, so the entry is still there: what answers is the caller's window.
    await app.cache.wrap('usda:pear', api.fetch, { ttl: 0.05, staleIfError: 60 })
    const stored = Date.now()
    api.failing = true
    await until(stored, 150)
    await t.rejects(app.cache.wrap('usda:pear', api.fetch, { ttl: 0.05, staleIfError: 0.05 }), { message: 'nutrition API: 503' })
    await t.rejects(app.cache.wrap('usda:pear', api.fetch), { message: 'nutrition API: 503' }, 'the plugin default is 0')
    await t.rejects(app.cache.wrap('usda:pear', api.fetch, { ttl: 0.05, staleWhileRevalidate: 0.05 }), 'staleWhileRevalidate does not answer an error')
    t.same(await app.cache.wrap('usda:pear', api.fetch, { staleIfError: 60 }), { kcal: 53 }, 'the value was there all along')
    t.equal(app.cache.stats().values.stale, 1)
  })

  t.test(`${kind}: a value that leaves the window while the function runs is not answered when it fails`, async (t) => {
    const app = await cachedApp(t, options())
    await app.cache.wrap('usda:lemon', () => 'old', { ttl: 0.05, staleIfError: 60 })
    const stored = Date.now()
    await until(stored, 50)
    await t.rejects(app.cache.wrap('usda:lemon', async () => {
      await until(stored, 250)
      throw new Error('slow and down')
    }, { ttl: 0.05, staleIfError: 0.2 }), { message: 'slow and down' })
  })

  t.test(`${kind}: a value invalidated by tag or deleted is never answered stale`, async (t) => {
    const app = await cachedApp(t, options())
    const api = upstream()
    const windows = { ttl: 0.05, staleIfError: 60, tags: ['food:fig'] }
    await app.cache.wrap('usda:fig', api.fetch, windows)
    await app.cache.wrap('usda:fig:raw', api.fetch, windows)
    await until(Date.now(), 50)
    api.failing = true
    t.same(await app.cache.wrap('usda:fig', api.fetch, windows), { kcal: 53 }, 'stale before the invalidation')
    t.equal(await app.cache.invalidate({ tags: ['food:fig'] }), 2)
    await t.rejects(app.cache.wrap('usda:fig', api.fetch, windows), { message: 'nutrition API: 503' }, 'by tag')

    api.failing = false
    await app.cache.wrap('usda:kiwi', api.fetch, { ttl: 0.05, staleIfError: 60 })
    await until(Date.now(), 50)
    api.failing = true
    t.equal(await app.cache.del('usda:kiwi'), true)
    await t.rejects(app.cache.wrap('usda:kiwi', api.fetch, { ttl: 0.05, staleIfError: 60 }), 'by del')
  })

  /**
   * Stores `old` and lets it go stale, then starts a call of wrap whose function fails when the test
   * says so, after `meanwhile` has run.
   */
  async function failAfter (app: FastifyInstance, key: string, meanwhile: () => Promise<unknown>): Promise<unknown> {
    await app.cache.wrap(key, () => 'old', { ttl: 0.05, staleIfError: 60, tags: [`food:${key}`] })
    await until(Date.now(), 50)
    const started = deferred()
    const fail = deferred()
    const pending = app.cache.wrap(key, async () => {
      started.resolve()
      await fail.promise
      throw new Error('down')
    }, { ttl: 0.05, staleIfError: 60 })
    await started.promise
    await meanwhile()
    fail.resolve()
    return await pending
  }

  t.test(`${kind}: a value invalidated while the function runs is not answered when it then fails`, async (t) => {
    const app = await cachedApp(t, options())
    await t.rejects(failAfter(app, 'plum', async () => {
      t.equal(await app.cache.invalidate({ tags: ['food:plum'] }), 1)
    }), { message: 'down' })
  })

  t.test(`${kind}: a value written by another caller while the function runs is answered when it fails`, async (t) => {
    const app = await cachedApp(t, options())
    t.equal(await failAfter(app, 'lime', async () => await app.cache.set('lime', 'new', { ttl: 60 })), 'new')
    t.same(app.cache.stats().values, { hits: 1, misses: 2, stale: 0, bypasses: 0, stores: 2, errors: 0, hitRatio: 1 / 3 }, 'a fresh value counts as a hit')
  })

  t.test(`${kind}: the plugin's staleIfError is wrap's default; 0 turns it off per call`, async (t) => {
    const app = await cachedApp(t, { ...options(), staleIfError: 60 })
    await app.cache.wrap('usda:date', () => 1, { ttl: 0.05 })
    await until(Date.now(), 50)
    const thrower = (): number => { throw new Error('sync failure') }
    t.equal(await app.cache.wrap('usda:date', thrower, { ttl: 0.05 }), 1, 'a function that throws synchronously too')
    await t.rejects(app.cache.wrap('usda:date', thrower, { ttl: 0.05, staleIfError: 0 }), { message: 'sync failure' })
  })
}

t.test('redis: a value is kept for its ttl plus the longer of its stale windows', async (t) => {
  const options = kinds[1][1]()
  const app = await cachedApp(t, options)
  const client = options.redis as Redis
  const pttl = async (key: string): Promise<number> => {
    const [stored] = await client.keys(`${options.namespace as string}:*:v:${key}`)
    return await client.pttl(stored)
  }
  await app.cache.wrap('a', () => 1, { ttl: 30, staleIfError: 60, staleWhileRevalidate: 10 })
  await app.cache.wrap('b', () => 1, { ttl: 30, staleIfError: 10, staleWhileRevalidate: 20 })
  await app.cache.set('c', 1, { ttl: 30 })
  t.ok(await pttl('a') > 89_000, '30 s fresh + 60 s stale-if-error')
  t.ok(await pttl('b') > 49_000 && await pttl('b') <= 50_000, '30 s fresh + 20 s stale-while-revalidate')
  t.ok(await pttl('c') <= 30_000, 'set keeps a value for its ttl')
})

t.test('a failure with no value within the window to answer asks the store nothing more', async (t) => {
  let reads = 0
  const store = new class extends MemoryStore {
    override get (key: string): ReturnType<MemoryStore['get']> {
      reads++
      return super.get(key)
    }
  }({ maxBytes: 1_000_000 })
  const app = await cachedApp(t, { store })
  const fail = (): never => { throw new Error('down') }
  await app.cache.wrap('k', () => 1, { ttl: 0.05, staleIfError: 60 })
  await until(Date.now(), 100)
  reads = 0
  await t.rejects(app.cache.wrap('k', fail, { staleIfError: 0.01 }))
  await t.rejects(app.cache.wrap('never-stored', fail, { staleIfError: 60 }))
  t.equal(reads, 2, 'one lookup each')
  t.equal(await app.cache.wrap('k', fail, { staleIfError: 60 }), 1)
  t.equal(reads, 4, 'the lookup, and the read that checks the value is still there')
})

t.test('a bad staleIfError is named', async (t) => {
  const app = await cachedApp(t)
  for (const staleIfError of [-1, Number.NaN, Infinity, '60']) {
    await t.rejects(app.cache.wrap('k', () => 1, { staleIfError: staleIfError as number }), {
      code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT',
      message: /invalid argument "staleIfError": expected a number of seconds, 0 or more/
    })
  }
})

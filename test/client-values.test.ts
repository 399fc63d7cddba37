import { Type } from '@sinclair/typebox'
import { Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { encodeEntry } from '../lib/entry.js'
import { cachedApp, logCapture } from './helpers/app.js'
import { until } from './helpers/events.js'
import { CLIENT_OPTIONS, freePort } from './helpers/redis.js'
import { storeKinds } from './helpers/stores.js'

const kinds = await storeKinds(t)

for (const [kind, options] of kinds) {
  t.test(`${kind}: set and get keep Dates, Buffers, Maps, Sets, BigInts and undefined fields`, async (t) => {
    const app = await cachedApp(t, options())
    const value = {
      at: new Date('2026-01-02T03:04:05.678Z'),
      bytes: Buffer.from([0, 1, 255]),
      map: new Map<unknown, unknown>([['a', 1], [2, { nested: true }]]),
      set: new Set(['x', 'y']),
      big: 2n ** 70n,
      small: 12n,
      missing: undefined,
      list: [1, undefined, null, 'text'],
      deep: { a: { b: { c: [1.5, -2] } } }
    }
    await app.cache.set('drug:aspirin', value)
    const back = await app.cache.get<typeof value>('drug:aspirin')
    t.same(back, value)
    t.ok(back?.at instanceof Date, 'a Date comes back as a Date')
    t.ok(Buffer.isBuffer(back?.bytes), 'a Buffer comes back as a Buffer')
    t.ok(back?.map instanceof Map && back.set instanceof Set)
    t.equal(typeof back?.big, 'bigint')
    t.equal(typeof back?.small, 'bigint')
    t.ok(back !== undefined && 'missing' in back, 'an undefined field is kept')
    t.not(back, value, 'a copy: changing what get() answered cannot change the cache')
    back?.deep.a.b.c.push(3)
    t.same((await app.cache.get<typeof value>('drug:aspirin'))?.deep.a.b.c, [1.5, -2])
    t.equal(await app.cache.get('never-set'), undefined)
    t.same(app.cache.stats().values, { hits: 2, misses: 1, stale: 0, bypasses: 0, stores: 1, errors: 0, hitRatio: 2 / 3 })
  })

  t.test(`${kind}: del, ttl and tenants`, async (t) => {
    const app = await cachedApp(t, options())
    await app.cache.set('prefs', { theme: 'dark' }, { tenant: 'acme' })
    await app.cache.set('prefs', { theme: 'light' }, { tenant: 42 })
    await app.cache.set('prefs', { theme: 'none' })
    t.same(await app.cache.get('prefs', { tenant: 'acme' }), { theme: 'dark' })
    t.same(await app.cache.get('prefs', { tenant: 42 }), { theme: 'light' })
    t.same(await app.cache.get('prefs'), { theme: 'none' })
    t.equal(await app.cache.get('prefs', { tenant: 'other' }), undefined, 'another tenant sees nothing')
    await app.cache.del('prefs', { tenant: 'acme' })
    t.equal(await app.cache.get('prefs', { tenant: 'acme' }), undefined)
    t.same(await app.cache.get('prefs', { tenant: 42 }), { theme: 'light' }, 'del drops one tenant\'s value only')
    await app.cache.del('never-set')

    await app.cache.set('short', 'lived', { ttl: 1 })
    const stored = Date.now()
    t.equal(await app.cache.get('short'), 'lived')
    await until(stored, 1000)
    t.equal(await app.cache.get('short'), undefined, 'gone after its ttl')
  })

  t.test(`${kind}: values and responses share tags; invalidate drops both`, async (t) => {
    const app = await cachedApp(t, options())
    let runs = 0
    app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`] } } }, async () => ({ runs: ++runs }))
    await app.inject('/items/1')
    await app.cache.set('item-1-summary', 'summary', { tags: ['item:1'] })
    await app.cache.set('item-2-summary', 'other', { tags: ['item:2'] })
    t.equal((await app.inject('/items/1')).headers['x-cache'], 'HIT')
    t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 2, 'the response and the value')
    t.equal(await app.cache.get('item-1-summary'), undefined)
    t.equal(await app.cache.get('item-2-summary'), 'other')
    t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  })

  t.test(`${kind}: wrap runs its function once for concurrent callers, then serves the stored value`, async (t) => {
    const app = await cachedApp(t, options())
    let calls = 0
    const analyse = async (): Promise<{ drug: string, at: Date }> => {
      calls++
      await sleep(30)
      return { drug: 'ibuprofen', at: new Date(0) }
    }
    const results = await Promise.all(Array.from({ length: 50 }, async () => await app.cache.wrap('analysis:ibuprofen', analyse, { ttl: 60, tags: ['drugs'] })))
    t.equal(calls, 1)
    t.ok(results.every((r) => r.drug === 'ibuprofen' && r.at instanceof Date))
    t.same(await app.cache.wrap('analysis:ibuprofen', analyse), { drug: 'ibuprofen', at: new Date(0) })
    t.equal(calls, 1, 'a later call is answered from the store')
    t.equal(await app.cache.invalidate({ tags: ['drugs'] }), 1)
    await app.cache.wrap('analysis:ibuprofen', analyse)
    t.equal(calls, 2, 'after invalidation the function runs again')
    await app.cache.wrap('analysis:ibuprofen', analyse, { tenant: 'acme' })
    t.equal(calls, 3, 'another tenant has its own value')
  })

  t.test(`${kind}: wrap whose function throws: every waiter gets the error, nothing is stored, the next call runs again`, async (t) => {
    const app = await cachedApp(t, options())
    let calls = 0
    const failing = async (): Promise<string> => {
      calls++
      await sleep(20)
      throw new Error('upstream down')
    }
    const settled = await Promise.allSettled(Array.from({ length: 10 }, async () => await app.cache.wrap('ocr:doc1', failing)))
    t.equal(calls, 1)
    t.ok(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === 'upstream down'))
    t.equal(await app.cache.get('ocr:doc1'), undefined, 'nothing stored')
    t.equal(await app.cache.wrap('ocr:doc1', async () => { calls++; return 'text' }), 'text')
    t.equal(calls, 2)
    t.equal(await app.cache.get('ocr:doc1'), 'text')
  })

  t.test(`${kind}: wrap with a TypeBox schema treats a value that no longer matches as a miss`, async (t) => {
    const app = await cachedApp(t, options())
    const Analysis = Type.Object({ drug: Type.String(), score: Type.Number() })
    await app.cache.set('analysis:old', { drug: 'x', score: 'high' })
    let calls = 0
    const fresh = await app.cache.wrap('analysis:old', async () => { calls++; return { drug: 'x', score: 0.9 } }, { schema: Analysis })
    t.same(fresh, { drug: 'x', score: 0.9 })
    t.equal(calls, 1, 'the old shape was a miss')
    const again = await app.cache.wrap('analysis:old', async () => { calls++; return { drug: 'y', score: 0 } }, { schema: Analysis })
    t.same(again, { drug: 'x', score: 0.9 })
    t.equal(calls, 1, 'the stored value matches now')
    t.equal(await app.cache.get('analysis:old', { schema: Type.Object({ other: Type.String() }) }), undefined, 'get checks a schema too')
  })

  t.test(`${kind}: wrap with staleWhileRevalidate answers the old value at once and refreshes it once`, async (t) => {
    const app = await cachedApp(t, options())
    let version = 0
    const load = async (): Promise<number> => {
      await sleep(20)
      return ++version
    }
    t.equal(await app.cache.wrap('history:u1', load, { ttl: 0.05, staleWhileRevalidate: 30 }), 1)
    await sleep(80)
    // The refresh writes with the options of the call that started it: a long ttl, so it stays fresh.
    const stale = await Promise.all(Array.from({ length: 5 }, async () => await app.cache.wrap('history:u1', load, { ttl: 60, staleWhileRevalidate: 30 })))
    t.same(stale, [1, 1, 1, 1, 1], 'the stale value, without waiting for the function')
    let refreshed: unknown
    for (let i = 0; i < 200 && refreshed !== 2; i++) {
      await sleep(10)
      refreshed = await app.cache.get('history:u1')
    }
    t.equal(refreshed, 2, 'the refresh stored the new value')
    t.equal(version, 2, 'one refresh ran')
    t.equal(app.cache.stats().values.stale, 1, 'concurrent callers shared one lookup')
  })

  t.test(`${kind}: values that cannot be stored fail at set with a clear error, and store nothing`, async (t) => {
    const app = await cachedApp(t, options())
    const cyclic: Record<string, unknown> = { name: 'loop' }
    cyclic.self = cyclic
    const cases: Array<[unknown, RegExp]> = [
      [{ handler: () => 1 }, /cannot cache value\.handler: it holds a function/],
      [{ id: Symbol('x') }, /value\.id: it holds a symbol/],
      [cyclic, /value\.self: it holds a circular reference/],
      [{ pending: Promise.resolve(1) }, /value\.pending: it holds a Promise/],
      [new Map([['k', () => 1]]), /value\.get\(k\): it holds a function/],
      [[1, [2, new WeakMap()]], /value\[1\]\[1\]: it holds a WeakMap/]
    ]
    for (const [value, message] of cases) {
      await t.rejects(app.cache.set('bad', value), { code: 'FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE', message })
    }
    t.equal(await app.cache.get('bad'), undefined)
    await t.rejects(app.cache.wrap('bad', async () => ({ f: () => 1 })), { code: 'FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE' })
    const shared = { a: 1 }
    await app.cache.set('twice', { x: shared, y: shared })
    t.same(await app.cache.get('twice'), { x: { a: 1 }, y: { a: 1 } }, 'an object referenced twice is not a cycle')
  })

  t.test(`${kind}: wrong arguments are named`, async (t) => {
    const app = await cachedApp(t, options())
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [async () => await app.cache.get(''), /"key"/],
      [async () => await app.cache.get(42 as unknown as string), /"key"/],
      [async () => await app.cache.set('k', 1, { ttl: 0 }), /"ttl"/],
      [async () => await app.cache.set('k', 1, { ttl: -1 }), /"ttl"/],
      [async () => await app.cache.set('k', 1, { tags: ['ok', ''] }), /"tags"/],
      [async () => await app.cache.set('k', 1, { tenant: {} as unknown as string }), /"tenant"/],
      [async () => await app.cache.wrap('k', 'nope' as unknown as () => number), /"fn"/],
      [async () => await app.cache.wrap('k', async () => 1, { staleWhileRevalidate: -5 }), /"staleWhileRevalidate"/],
      [async () => await app.cache.get('k', null as unknown as undefined), /"options"/],
      [async () => await app.cache.get('k', { schema: 'x' as never }), /"schema"/],
      [async () => await app.cache.invalidate({ tags: 'item:1' as unknown as string[] }), /"tags"/],
      [async () => await app.cache.invalidate({ route: 5 as unknown as string }), /"route"/],
      [async () => await app.cache.invalidate({ tenant: [] as unknown as string }), /"tenant"/],
      [async () => await app.cache.invalidate(null as unknown as object), /"invalidate"/]
    ]
    for (const [call, message] of cases) await t.rejects(call(), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message })
  })
}

t.test('a store that is down: get misses, set and del answer false, invalidate undefined, wrap answers from its function', async (t) => {
  const port = await freePort()
  const client = new Redis({ host: '127.0.0.1', port, ...CLIENT_OPTIONS, retryStrategy: () => null })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const { lines, logger } = logCapture('warn')
  const app = await cachedApp(t, { store: 'redis', redis: client }, { logger })
  t.equal(await app.cache.set('k', 'v'), false)
  t.equal(await app.cache.get('k'), undefined)
  t.equal(await app.cache.del('k'), false)
  t.equal(await app.cache.wrap('k', async () => 'computed'), 'computed')
  t.equal(await app.cache.invalidate({ tags: ['x'] }), undefined)
  t.ok(app.cache.stats().values.errors >= 3)
  t.ok(lines.some((line) => line.msg === 'response cache store trouble; requests go on without the cache'))
})

t.test('a stored value whose bytes are not MessagePack is a miss, logged once; wrap stores a good one over it', async (t) => {
  const { lines, logger } = logCapture('warn')
  const options = kinds[1][1]()
  const app = await cachedApp(t, options, { logger })
  const client = options.redis as Redis
  await app.cache.set('doc:1', 'text')
  const [key] = await client.keys(`${options.namespace as string}:*:v:doc%3A1`)
  // Behind the version header Redis holds (lib/stores/versions.ts), so the store reads the entry and
  // the value's own bytes are what fails.
  const stored = await client.getBuffer(key) as Buffer
  const header = stored.subarray(0, stored.readUInt32BE(1))
  await client.set(key, Buffer.concat([header, encodeEntry({ status: 0, headers: {}, body: Buffer.from([0x92, 0x01]), storedAt: Date.now(), ttl: 60, etag: '' })]))
  t.equal(await app.cache.get('doc:1'), undefined)
  t.equal(await app.cache.wrap('doc:1', async () => 'again'), 'again')
  t.equal(await app.cache.get('doc:1'), 'again')
  t.equal(lines.filter((line) => line.msg === 'response cache: unreadable value treated as a miss').length, 1, 'logged once')
})

import { Redis } from 'ioredis'
import t from 'tap'
import { ageTagSets, cacheUnderPressure, itemsApp, ITEMS, populate, setsOf, staleAfter, type Invalidation } from './helpers/eviction.js'
import { freePort, spawnRedis } from './helpers/redis.js'

// Issue 16: under maxmemory, Redis evicts the keys nobody reads, and hits read entries, never their
// tag sets. Each test runs a redis-server of its own with a small maxmemory and one policy.

const POLICIES = ['allkeys-lru', 'allkeys-lfu', 'volatile-lru', 'volatile-ttl', 'noeviction']
const KINDS: Invalidation[] = ['tag', 'route', 'tenant', 'put']

/** A redis-server with `policy` and little memory, and a client made as the README says. */
async function smallRedis (t: Tap.Test, policy: string): Promise<{ redis: Redis, other: Redis }> {
  const port = await freePort()
  // LFU counts accesses on a log scale (a key needs ~10 accesses to count 6, ~100 to count 7): log
  // factor 0 counts each one, so that the few accesses of a test tell keys apart as a day of traffic would.
  const lfu = policy.endsWith('-lfu') ? ['--lfu-log-factor', '0'] : []
  const server = await spawnRedis(port, ['--maxmemory', '3mb', '--maxmemory-policy', policy, ...lfu])
  t.teardown(async () => { await server.kill() })
  const redis = new Redis(`redis://127.0.0.1:${port}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  // Another application's client on the same Redis, writing keys of its own.
  const other = new Redis(`redis://127.0.0.1:${port}`)
  t.teardown(() => { redis.disconnect(); other.disconnect() })
  return { redis, other }
}

declare namespace Tap { type Test = import('tap').Test }

for (const policy of POLICIES) {
  for (const kind of KINDS) {
    t.test(`${policy}: invalidation by ${kind} under memory pressure leaves no stale answer`, async (t) => {
      const { redis, other } = await smallRedis(t, policy)
      const { app, versions } = await itemsApp(t, redis, 'shop')
      // Until Redis has evicted one of the sets this kind of invalidation reads, at least.
      await populate(app)
      if (policy === 'allkeys-lfu') await ageTagSets([other], 'shop')
      const sets = await setsOf([other], 'shop', kind)
      const { hits, stopped } = await cacheUnderPressure(app, other, async () => await setsOf([other], 'shop', kind) < sets)
      t.ok(hits > 0, `${hits} hits under pressure: there are entries to invalidate`)
      t.equal(stopped, policy === 'noeviction' ? 'full' : 'enough', 'Redis evicted tag sets, or else was full')
      t.equal(await staleAfter(app, versions, kind), 0, 'no item answered with its old version')
    })
  }
}

t.test('noeviction with Redis full: writes are refused one by one, requests are answered, reads go on', async (t) => {
  const { redis, other } = await smallRedis(t, 'noeviction')
  const { app } = await itemsApp(t, redis, 'shop')
  await populate(app)
  await cacheUnderPressure(app, other, async () => false)
  // Full for good: client buffers come and go, so a write that just failed could fit a moment later.
  const used = Number(/used_memory:(\d+)/.exec(await other.info('memory'))?.[1])
  await other.config('SET', 'maxmemory', String(used - 500_000))
  await t.rejects(other.set('one-more', 'x'), /OOM/, 'Redis is full')
  const before = app.cache.stats().total
  // More refused writes in a row than the circuit breaker's threshold (5 failures in a row): the
  // requests arrive together, so their lookups all succeed before their writes are refused.
  const responses = await Promise.all(Array.from({ length: 10 }, async (_, i) => await app.inject({ url: `/items/${ITEMS + i}`, headers: { 'x-tenant': 'acme' } })))
  for (const response of responses) {
    t.equal(response.statusCode, 200)
    t.equal(response.headers['x-cache'], 'MISS', 'answered by the handler, as without the cache')
  }
  await app.cache.invalidate({ tags: ['nothing'] }) // waits for the writes on their way
  const after = app.cache.stats().total
  t.equal(after.stores - before.stores, 0, 'nothing stored')
  t.equal(after.errors - before.errors, 10, 'each refused write counted')
  const read = await app.inject({ url: '/items/1', headers: { 'x-tenant': 'acme' } })
  t.equal(read.headers['x-cache'], 'HIT', 'reads go on: refusals do not open the circuit breaker')
  t.equal((await app.cache.health()).ok, true)
})

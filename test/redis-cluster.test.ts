import Fastify from 'fastify'
import t from 'tap'
import responseCache from '../lib/index.js'
import { RedisStore, SHARD_SLOTS } from '../lib/stores/redis.js'
import { counter } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { cacheUnderPressure, itemsApp, populate, setsOf, staleAfter } from './helpers/eviction.js'
import { Cluster, type Redis } from 'ioredis'
import { evictedKeys, evictIndexRecords, limitMemory } from './helpers/redis.js'
import { makeEntry, storeContract } from './stores/contract.js'

const cluster = await startCluster(t)
let namespaces = 0

t.test('redis store contract through a three-master Cluster', async (t) => {
  storeContract(t, () => new RedisStore({ client: cluster, namespace: `c${++namespaces}`, log: Fastify().log }), {
    evictIndex: async () => { await evictIndexRecords(cluster.nodes('master') as Redis[], `c${namespaces}`, /evicted%3A[6-8]$/) }
  })
})

t.test('the slot of each shard, which the store follows through failovers, is the Cluster\'s own', async (t) => {
  const store = new RedisStore({ client: cluster, namespace: 'slots', log: Fastify().log })
  const slots = await Promise.all(SHARD_SLOTS.map(async (_, shard) => {
    // A key of the shard, found the way the store finds it.
    let key = ''
    for (let i = 0; !store.redisKey(key).includes(`{${shard.toString(16).padStart(2, '0')}}`); i++) key = `slots:-:GET:%2F:${i}`
    return await cluster.cluster('KEYSLOT', store.redisKey(key))
  }))
  t.same(slots, SHARD_SLOTS)
})

t.test('entries spread over the masters; an entry and its tag sets share a slot', async (t) => {
  const store = new RedisStore({ client: cluster, namespace: 'spread', log: Fastify().log })
  for (let i = 0; i < 64; i++) await store.set(`spread:-:GET:%2F:${i}`, makeEntry(String(i)), { ttl: 60, tags: ['all', `i${i}`] })
  const perMaster = await Promise.all(cluster.nodes('master').map(async (node) => (await node.keys('spread:*')).length))
  t.equal(perMaster.length, 3)
  t.ok(perMaster.filter((n) => n > 0).length >= 2, `keys per master: ${perMaster.join(', ')}`)
  t.equal(await store.invalidateTags(['all']), 64)
})

t.test('the plugin on a Cluster: MISS, HIT, tag invalidation and clear()', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis: cluster, namespace: 'app', timeout: 2000 })
  const runs = counter()
  app.get('/items/:id', {
    config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`, 'items'] } }
  }, async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
  for (let i = 0; i < 20; i++) t.equal((await app.inject(`/items/${i}`)).headers['x-cache'], 'MISS')
  for (let i = 0; i < 20; i++) t.equal((await app.inject(`/items/${i}`)).headers['x-cache'], 'HIT')
  t.equal(await app.cache.invalidate({ tags: ['item:3'] }), 1)
  t.equal((await app.inject('/items/3')).headers['x-cache'], 'MISS')
  t.equal(await app.cache.invalidate({ tags: ['items'] }), 20)
  await app.inject('/items/1')
  await app.cache.clear()
  const left = await Promise.all(cluster.nodes('master').map(async (node) => await node.keys('app:*')))
  t.same(left.flat(), [])
  t.equal(runs.runs, 22)
})

t.test('store figures through the Cluster', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis: cluster, namespace: 'figures', statsRoute: true })
  app.get('/items/:id', { config: { cache: true } }, async (request) => ({ id: (request.params as { id: string }).id }))
  for (let i = 0; i < 12; i++) await app.inject(`/items/${i}`)
  const { store } = (await app.inject('/cache/stats')).json() as { store: { entries: number, bytes: number, evictions: number } }
  t.equal(store.entries, 12)
  t.ok(store.bytes > 0)

  // Evictions are the servers' own counts, summed over the masters.
  const masters = cluster.nodes('master')
  for (const node of masters) await limitMemory(node, 1_000_000)
  const filler = 'x'.repeat(100_000)
  for (let i = 0; i < 90; i++) await cluster.set(`filler:${i}`, filler)
  for (const node of masters) await node.config('SET', 'maxmemory', '0') // no more evictions while the figures are read
  const perMaster = await Promise.all(masters.map(evictedKeys))
  t.ok(perMaster.filter((n) => n > 0).length >= 2, `evicted per master: ${perMaster.join(', ')}`)
  const after = (await app.inject('/cache/stats')).json() as { store: { evictions: number } }
  t.equal(after.store.evictions, perMaster.reduce((sum, n) => sum + n, 0))
})

t.test('allkeys-lru through the Cluster: invalidation under memory pressure leaves no stale answer', async (t) => {
  const masters = cluster.nodes('master')
  const nodes = masters.map((node) => ({ host: node.options.host as string, port: node.options.port as number }))
  t.teardown(async () => { for (const node of masters) await node.config('SET', 'maxmemory', '0') })
  for (const kind of ['tag', 'route', 'tenant', 'put'] as const) {
    t.test(kind, async (t) => {
      const redis = new Cluster(nodes)
      t.teardown(() => { redis.disconnect() })
      const namespace = `evict-${kind}`
      const { app, versions } = await itemsApp(t, redis, namespace)
      await populate(app)
      for (const node of masters) await limitMemory(node, 1_500_000)
      const sets = await setsOf(masters, namespace, kind)
      const { hits, stopped } = await cacheUnderPressure(app, cluster, async () => await setsOf(masters, namespace, kind) < sets)
      t.ok(hits > 0, `${hits} hits under pressure`)
      t.equal(stopped, 'enough', 'Redis evicted a set this invalidation reads')
      t.equal(await staleAfter(app, versions, kind), 0, 'no item answered with its old version')
    })
  }
})

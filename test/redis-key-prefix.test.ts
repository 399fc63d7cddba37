import Fastify, { type FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import responseCache from '../lib/index.js'
import { counter } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { startRedis, writesSent } from './helpers/redis.js'

// Issue 16: an ioredis client with `keyPrefix` adds it to every key it sends, and SCAN answers keys
// with it. Every key the plugin writes starts with the prefix, then the namespace.

declare namespace Tap { type Test = import('tap').Test }

async function itemsApp (t: Tap.Test, redis: Redis | Cluster, namespace: string): Promise<{ app: FastifyInstance, runs: { runs: number } }> {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache, { store: 'redis', redis, namespace, timeout: 2000, statsRoute: true })
  const runs = counter()
  app.get('/items/:id', {
    config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`, 'items'] } }
  }, async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
  app.put('/items/:id', async () => ({ ok: true }))
  await app.ready()
  return { app, runs }
}

/** Every key of every node, as Redis holds it. */
async function allKeys (nodes: Redis[]): Promise<string[]> {
  return (await Promise.all(nodes.map(async (node) => await node.keys('*')))).flat()
}

/**
 * What the plugin does through a prefixed client, checked through `nodes` (the servers, through
 * clients without a prefix); `plain` writes keys of other apps.
 */
async function prefixedClient (t: Tap.Test, redis: Redis | Cluster, plain: Redis | Cluster, nodes: Redis[], prefix: string, ns = 'shop'): Promise<void> {
  const { app, runs } = await itemsApp(t, redis, ns)
  for (let i = 0; i < 12; i++) t.equal((await app.inject(`/items/${i}`)).headers['x-cache'], 'MISS')
  await writesSent()
  for (let i = 0; i < 12; i++) t.equal((await app.inject(`/items/${i}`)).headers['x-cache'], 'HIT')
  const keys = (await allKeys(nodes)).filter((key) => key.includes(ns) && !key.endsWith(':look-alike'))
  t.ok(keys.length > 12)
  t.same(keys.filter((key) => !key.startsWith(prefix + ns + ':')), [], 'every key starts with the prefix, then the namespace')

  const { store } = (await app.inject('/cache/stats')).json() as { store: { entries: number, bytes: number } }
  t.equal(store.entries, 12, 'store figures count the entries')
  t.ok(store.bytes > 0)

  t.equal(await app.cache.invalidate({ tags: ['item:3'] }), 1)
  t.equal((await app.inject('/items/3')).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ method: 'PUT', url: '/items/4' })).statusCode, 200)
  t.equal((await app.inject('/items/4')).headers['x-cache'], 'MISS', 'the PUT dropped the GET entry of its path')
  t.equal(runs.runs, 14)

  // Keys that match the namespace without the prefix, or the prefix with another namespace: not ours.
  await plain.set(ns + ':not-ours', 'keep')
  await plain.set(prefix + ns + 'x:not-ours', 'keep')
  await app.cache.clear()
  t.same((await allKeys(nodes)).filter((key) => key.startsWith(prefix + ns + ':')), [], 'clear() removed every key of the namespace')
  t.equal((await allKeys(nodes)).filter((key) => key.includes(ns) && key.endsWith(':not-ours')).length, 2, 'and nothing else')
  for (let i = 0; i < 3; i++) t.equal((await app.inject(`/items/${i}`)).headers['x-cache'], 'MISS', 'nothing answered after clear()')
}

t.test('a Redis client with keyPrefix', async (t) => {
  const server = await startRedis(t)
  const url = `redis://${await server.getHost()}:${await server.getPort()}`
  const redis = new Redis(url, { keyPrefix: 'app1:', enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  const plain = new Redis(url)
  t.teardown(() => { redis.disconnect(); plain.disconnect() })
  await prefixedClient(t, redis, plain, [plain], 'app1:')
})

t.test('a Redis client whose keyPrefix holds glob characters and a hash tag', async (t) => {
  const server = await startRedis(t)
  const url = `redis://${await server.getHost()}:${await server.getPort()}`
  const redis = new Redis(url, { keyPrefix: '{a*}[b]?\\:' })
  const plain = new Redis(url)
  t.teardown(() => { redis.disconnect(); plain.disconnect() })
  await plain.set('{ab}b?\\:shop:look-alike', 'keep')
  await prefixedClient(t, redis, plain, [plain], '{a*}[b]?\\:')
  t.equal(await plain.get('{ab}b?\\:shop:look-alike'), 'keep', 'the prefix is matched literally, never as a pattern')
})

t.test('a Cluster with keyPrefix, in its own options or in redisOptions', async (t) => {
  const cluster = await startCluster(t)
  const nodes = cluster.nodes('master').map((node) => ({ host: node.options.host as string, port: node.options.port as number }))
  for (const [name, options] of [['options', { keyPrefix: 'c:' }], ['redisOptions', { redisOptions: { keyPrefix: 'c:' } }]] as const) {
    t.test(`keyPrefix in ${name}`, async (t) => {
      const prefixed = new Cluster(nodes, options)
      t.teardown(() => { prefixed.disconnect() })
      await prefixedClient(t, prefixed, cluster, cluster.nodes('master'), 'c:', `shop-${name}`)
    })
  }
})

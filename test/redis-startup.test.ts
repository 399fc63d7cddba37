import fastifyRedis from '@fastify/redis'
import { setImmediate } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { counter, logCapture } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { eventually } from './helpers/events.js'
import { freePort, spawnRedis, startRedis } from './helpers/redis.js'

// Clients here are made the way the README shows users: straight from `new Redis(url)`, still
// connecting when they are handed to the plugin.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`

type Tap = import('tap').Test

/** The README's quick start on the Redis store: register, one cached route, ready(). */
async function app (t: Tap, options: ResponseCacheOptions, logger: FastifyServerOptions['logger'] = false): Promise<{ app: FastifyInstance, runs: { runs: number } }> {
  const instance = Fastify({ logger })
  t.teardown(() => instance.close())
  await instance.register(responseCache, options)
  const runs = counter()
  instance.get('/x/:id', { config: { cache: { ttl: 60 } } }, async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
  return { app: instance, runs }
}

function fresh (t: Tap, ...args: unknown[]): Redis {
  const redis = new (Redis as unknown as new (...args: unknown[]) => Redis)(...args)
  t.teardown(() => { redis.disconnect() })
  return redis
}

/** The client's next 'ready' (events.once would reject on the connection errors emitted meanwhile). */
const nextReady = async (redis: Redis): Promise<unknown> => await new Promise((resolve) => redis.once('ready', resolve))

const xCache = async (instance: FastifyInstance, path: string): Promise<unknown> => (await instance.inject(path)).headers['x-cache']

t.test('a client straight from new Redis(url): the first request is a MISS and the second a HIT', async (t) => {
  const redis = fresh(t, url)
  const { app: instance, runs } = await app(t, { store: 'redis', redis, namespace: 'fresh' })
  t.equal(redis.status, 'connecting', 'still connecting when the app registers the plugin')
  await instance.ready()
  t.equal(await xCache(instance, '/x/1'), 'MISS')
  t.equal(await xCache(instance, '/x/1'), 'HIT')
  t.equal(runs.runs, 1)
})

t.test('app.cache.set then get right after ready(); set answers whether it stored', async (t) => {
  const redis = fresh(t, url)
  const { app: instance } = await app(t, { store: 'redis', redis, namespace: 'values' })
  await instance.ready()
  t.equal(await instance.cache.set('prefs:1', { theme: 'dark' }), true)
  t.same(await instance.cache.get('prefs:1'), { theme: 'dark' })
  t.equal(await instance.cache.del('prefs:1'), true)
  t.equal(await instance.cache.get('prefs:1'), undefined)
})

t.test('warm() right after ready() stores every URL', async (t) => {
  const redis = fresh(t, url)
  const { app: instance, runs } = await app(t, { store: 'redis', redis, namespace: 'warm' })
  await instance.ready()
  const report = await instance.cache.warm(['/x/1', '/x/2', '/x/3'])
  t.same(report.failed, [])
  t.equal(report.stored.length, 3)
  for (const id of ['1', '2', '3']) t.equal(await xCache(instance, `/x/${id}`), 'HIT')
  t.equal(runs.runs, 3)
})

t.test('a lazyConnect client is connected by ready(); health says connecting before that', async (t) => {
  const redis = fresh(t, url, { lazyConnect: true })
  const { app: instance } = await app(t, { store: 'redis', redis, namespace: 'lazy' })
  const before = await instance.cache.health()
  t.same({ ok: before.ok, state: before.state }, { ok: false, state: 'connecting' })
  await instance.ready()
  t.equal(redis.status, 'ready')
  t.equal(await xCache(instance, '/x/1'), 'MISS')
  t.equal(await xCache(instance, '/x/1'), 'HIT')
  t.match(await instance.cache.health(), { ok: true, state: 'up' })
})

t.test('app.redis from @fastify/redis, registered with a URL', async (t) => {
  const instance = Fastify()
  t.teardown(() => instance.close())
  await instance.register(fastifyRedis, { url })
  await instance.register(responseCache, { store: 'redis', namespace: 'decorated-url' })
  instance.get('/x', { config: { cache: true } }, async () => 'x')
  await instance.ready()
  t.equal(await instance.cache.set('k', 1), true)
  t.equal(await instance.cache.get('k'), 1)
  t.equal(await xCache(instance, '/x'), 'MISS')
  t.equal(await xCache(instance, '/x'), 'HIT')
})

t.test('a Cluster client straight from new Cluster(nodes)', async (t) => {
  const connected = await startCluster(t)
  const nodes = connected.nodes('master').map((node) => ({ host: node.options.host as string, port: node.options.port as number }))
  const cluster = new Cluster(nodes)
  t.teardown(() => { cluster.disconnect() })
  const { app: instance, runs } = await app(t, { store: 'redis', redis: cluster, namespace: 'fresh-cluster' })
  t.not(cluster.status, 'ready')
  await instance.ready()
  t.equal(await xCache(instance, '/x/1'), 'MISS')
  t.equal(await xCache(instance, '/x/1'), 'HIT')
  t.equal(await instance.cache.set('k', 'v'), true)
  t.equal(await instance.cache.get('k'), 'v')
  t.equal(runs.runs, 1)
})

t.test('Redis down at start: ready() resolves, requests are answered, and the cache starts when Redis does', async (t) => {
  const port = await freePort()
  const redis = fresh(t, `redis://127.0.0.1:${port}`)
  redis.on('error', () => {})
  const { lines, logger } = logCapture('debug')
  const { app: instance, runs } = await app(t, { store: 'redis', redis, namespace: 'late', readyTimeout: 300 }, logger)
  await instance.ready()
  t.equal(lines.filter((line) => line.msg === 'response cache: the store is not ready; serving without the cache until it is').length, 1, 'said once at warn')
  // Enough failures to open the circuit breaker: its pause must not delay the cache once Redis is there.
  for (let i = 0; i < 6; i++) {
    const r = await instance.inject('/x/1')
    t.equal(r.statusCode, 200)
    t.equal(r.headers['x-cache'], 'BYPASS')
  }
  t.match(await instance.cache.health(), { ok: false, store: 'redis', state: 'down' })
  t.equal(await instance.cache.set('k', 1), false, 'set says it stored nothing')
  t.equal(await instance.cache.del('k'), false)
  t.equal(await instance.cache.invalidate({ tags: ['a'] }), undefined, 'invalidate says it could not ask the store')
  await t.rejects(instance.cache.clear(), { code: 'FST_RESPONSE_CACHE_STORE_UNAVAILABLE' })
  t.equal(lines.filter((line) => line.msg === 'response cache: store call not done').length, 4, 'each at debug')

  const redisServer = await spawnRedis(port)
  t.teardown(async () => { await redisServer.kill() })
  if (redis.status !== 'ready') await nextReady(redis)
  t.equal(await xCache(instance, '/x/1'), 'MISS', 'used from the first request after the client is ready')
  t.equal(await xCache(instance, '/x/1'), 'HIT')
  t.equal(runs.runs, 7)
  t.match(await instance.cache.health(), { ok: true, state: 'up' })
})

t.test('Redis killed and restarted under concurrent load: no 5xx, and hits from the first requests after the client is ready', async (t) => {
  const port = await freePort()
  let redisServer = await spawnRedis(port)
  t.teardown(async () => { await redisServer.kill() })
  const redis = fresh(t, `redis://127.0.0.1:${port}`)
  redis.on('error', () => {})
  const { app: instance } = await app(t, { store: 'redis', redis, namespace: 'restart' })
  await instance.ready()
  const loadState = { running: true, phase: 'up' as 'up' | 'down' | 'back' }
  const answered = { up: 0, down: 0, back: 0 }
  const statuses: number[] = []
  const load = Promise.all(Array.from({ length: 8 }, async (_, worker) => {
    // Each worker gives the event loop a turn between requests, as requests arriving over a network do.
    for (let i = 0; loadState.running; i++) {
      statuses.push((await instance.inject(`/x/${(worker + i) % 4}`)).statusCode)
      answered[loadState.phase]++
      await setImmediate()
    }
  }))
  const closed = new Promise((resolve) => redis.once('close', resolve))
  await redisServer.kill()
  await closed
  loadState.phase = 'down'
  // Long enough under load for the breaker to open and its pause to double.
  for (let i = 0; i < 40; i++) await instance.inject('/x/9')
  // Waited for, not read afterwards: on a busy machine the workers may not have had their turn yet.
  t.ok(await eventually(() => answered.down > 0), 'the load ran while Redis was down')
  const ready = nextReady(redis)
  redisServer = await spawnRedis(port)
  await ready
  loadState.phase = 'back'
  const first = await xCache(instance, '/x/1')
  t.not(first, 'BYPASS', 'the store is used from the next request')
  t.equal(await xCache(instance, '/x/1'), 'HIT')
  t.ok(await eventually(() => answered.back > 0), 'the load goes on after Redis is back')
  loadState.running = false
  await load
  t.same(statuses.filter((status) => status !== 200), [], 'no request failed')
})

import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import responseCache, { type CacheStore, type ResponseCacheOptions } from '../lib/index.js'
import { RedisStore } from '../lib/stores/redis.js'
import { counter } from './helpers/app.js'
import { CLIENT_OPTIONS, connect, evictedKeys, limitMemory, startRedis, writesSent } from './helpers/redis.js'

const server = await startRedis(t)
const client = await connect(t, server)

async function instance (t: Tap.Test, options: ResponseCacheOptions, runs = counter()): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis: client, ...options })
  app.get('/items/:id', {
    config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`] } }
  }, async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
  app.post('/search', { config: { cache: true } }, async (request) => ({ body: request.body, run: runs.next() }))
  await app.ready()
  return app
}
declare namespace Tap { type Test = import('tap').Test }

t.test('MISS then HIT through Redis, POST keyed by body, HEAD from the GET entry, 304', async (t) => {
  const runs = counter()
  const app = await instance(t, { namespace: 'basic' }, runs)
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  const hit = await app.inject('/items/1')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.same(JSON.parse(hit.body), { id: '1', run: 1 })
  t.equal((await app.inject({ method: 'HEAD', url: '/items/1' })).headers['x-cache'], 'HIT')
  t.equal((await app.inject({ url: '/items/1', headers: { 'if-none-match': hit.headers.etag as string } })).statusCode, 304)
  await app.inject({ method: 'POST', url: '/search', payload: { a: 1, b: [1, 2] } })
  t.equal((await app.inject({ method: 'POST', url: '/search', payload: { b: [1, 2], a: 1 } })).headers['x-cache'], 'HIT')
  t.equal(runs.runs, 2)
  t.equal(app.cache.stats().store.name, 'redis')
})

t.test('two instances on one Redis: one stores, the other hits; invalidation from one is seen by the other', async (t) => {
  const runsA = counter()
  const runsB = counter()
  const a = await instance(t, { namespace: 'shared' }, runsA)
  const b = await instance(t, { namespace: 'shared' }, runsB)
  t.equal((await a.inject('/items/7')).headers['x-cache'], 'MISS')
  await writesSent()
  const fromB = await b.inject('/items/7')
  t.equal(fromB.headers['x-cache'], 'HIT')
  t.equal(runsB.runs, 0)
  t.equal(await b.cache.invalidate({ tags: ['item:7'] }), 1)
  t.equal((await a.inject('/items/7')).headers['x-cache'], 'MISS')
  t.equal(await a.cache.invalidate({ tags: ['item:nothing'] }), 0)
})

t.test('namespaces keep two apps apart, and clear() empties one namespace only', async (t) => {
  const one = await instance(t, { namespace: 'one' })
  const two = await instance(t, { namespace: 'two' })
  await one.inject('/items/1')
  await two.inject('/items/1')
  await one.cache.clear()
  t.equal((await one.inject('/items/1')).headers['x-cache'], 'MISS')
  t.equal((await two.inject('/items/1')).headers['x-cache'], 'HIT')
})

t.test('entries survive a restart of the app', async (t) => {
  const first = await instance(t, { namespace: 'restart' })
  await first.inject('/items/3')
  await first.close()
  const second = await instance(t, { namespace: 'restart' })
  t.equal((await second.inject('/items/3')).headers['x-cache'], 'HIT')
})

t.test('the client from @fastify/redis is used, and closing the app leaves closing it to @fastify/redis', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRedis, { host: await server.getHost(), port: await server.getPort(), ...CLIENT_OPTIONS })
  await app.register(responseCache, { store: 'redis', namespace: 'decorated' })
  app.get('/x', { config: { cache: true } }, async () => 'x')
  await app.inject('/x')
  t.equal((await app.inject('/x')).headers['x-cache'], 'HIT')
  t.ok((await client.keys('decorated:*')).length > 0)
})

t.test('a client passed in is never closed by the plugin', async (t) => {
  const own = await connect(t, server)
  const app = Fastify()
  await app.register(responseCache, { store: 'redis', redis: own })
  await app.ready()
  await app.close()
  t.equal(own.status, 'ready')
  t.equal(await own.ping(), 'PONG')
})

t.test('a corrupt value under a key is a miss, never a 5xx', async (t) => {
  const app = await instance(t, { namespace: 'corrupt' })
  await app.inject('/items/9')
  // The entry is written after the response has gone out: wait until it has landed.
  while (app.cache.stats().total.stores < 1) await new Promise((resolve) => setTimeout(resolve, 5))
  const [key] = (await client.keys('corrupt:*')).filter((k) => !k.includes(':tag:'))
  await client.set(key, Buffer.from([1, 0, 0xc8, 0, 1, 2]))
  const r = await app.inject('/items/9')
  t.equal(r.statusCode, 200)
  t.equal(r.headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items/9')).headers['x-cache'], 'HIT', 'the miss stored a good entry over it')
})

t.test('stats, health and logs never hold the Redis password', async (t) => {
  const secretServer = await startRedis(t)
  const port = await secretServer.getPort()
  const admin = await connect(t, secretServer)
  await admin.config('SET', 'requirepass', 'hunter2-secret')
  const url = `redis://default:wrong-secret-pw@127.0.0.1:${port}`

  // A client made from a URL with a wrong password: ioredis's own errors hold neither password.
  const wrong = new Redis(url, { ...CLIENT_OPTIONS, retryStrategy: () => null })
  wrong.on('error', () => {})
  t.teardown(() => { wrong.disconnect() })
  // A store whose errors carry the URL they failed on, as many client wrappers write them.
  const inner = new RedisStore({ client: wrong, namespace: 'secret', log: Fastify().log })
  const withUrl = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (error) {
      throw new Error(`${url}: ${(error as Error).message}`)
    }
  }
  const store: CacheStore = {
    name: 'redis-behind-a-url',
    get: async (key) => await withUrl(async () => await inner.get(key)),
    set: async (key, entry, options) => { await withUrl(async () => { await inner.set(key, entry, options) }) },
    delete: async (key) => await withUrl(async () => await inner.delete(key)),
    invalidateTags: async (tags) => await withUrl(async () => await inner.invalidateTags(tags)),
    clear: async () => { await withUrl(async () => { await inner.clear() }) },
    ping: async () => await withUrl(async () => await inner.ping())
  }
  await t.rejects(store.ping?.() as Promise<unknown>, { message: /wrong-secret-pw/ }, 'the raw error holds the password')

  for (const cache of [{ store: 'redis', redis: wrong }, { store }] as const) {
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { lines.push(line) } } } })
    t.teardown(() => app.close())
    await app.register(responseCache, { ...cache, timeout: 500 })
    app.get('/x', { config: { cache: true } }, async () => 'x')
    for (let i = 0; i < 3; i++) t.equal((await app.inject('/x')).headers['x-cache'], 'BYPASS')
    const health = await app.cache.health()
    t.equal(health.ok, false)
    t.match(lines.join(''), /response cache store trouble/, 'the failure was logged')
    const text = lines.join('') + JSON.stringify(app.cache.stats()) + JSON.stringify(health)
    t.notMatch(text, /hunter2-secret|wrong-secret-pw/)
    if (cache.store !== 'redis') {
      t.match(health.error, `redis://***@127.0.0.1:${port}`, 'the URL is masked, not dropped')
      t.match(lines.join(''), `redis://***@127.0.0.1:${port}`)
    }
  }
})

t.test('store figures from Redis: entries of the routes and values, bytes sampled, server evictions', async (t) => {
  const app = await instance(t, { namespace: 'figures', statsRoute: true, tenant: (request) => request.headers['x-tenant'] as string | undefined })
  t.same(app.cache.stats().store, { name: 'redis', entries: 0, bytes: 0, evictions: 0 }, 'zeros until the first figures arrive')
  for (const id of ['1', '2', '3']) await app.inject(`/items/${id}`)
  await app.inject({ url: '/items/1', headers: { 'x-tenant': 'acme' } })
  await app.inject({ method: 'POST', url: '/search', payload: { q: 'x' } })
  await app.cache.set('prefs', { theme: 'dark' })
  await app.cache.set('prefs', { theme: 'light' }, { tenant: 'acme' })
  const r = await app.inject('/cache/stats')
  const { store } = r.json() as { store: { name: string, entries: number, bytes: number, evictions: number } }
  t.equal(store.entries, 7, '5 responses and 2 values')
  t.ok(store.bytes > 7 * 100, `bytes ${store.bytes}`)
  t.equal(store.evictions, await evictedKeys(client), 'the server\'s own count')
  t.same(app.cache.stats().store, store, 'stats() answers the figures the route fetched')
  const text = await app.inject({ url: '/cache/stats', headers: { accept: 'text/plain' } })
  t.match(text.body, /response_cache_entries\{namespace="figures",store="redis"\} 7/)
  await app.cache.invalidate({ tags: ['item:1'] })
  t.equal((await app.inject('/cache/stats')).json().store.entries, 5)
})

t.test('store evictions are the evictions the server counted', async (t) => {
  const full = await startRedis(t)
  const redis = await connect(t, full)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis, namespace: 'full', statsRoute: true })
  await app.ready()
  await limitMemory(redis, 2_000_000)
  const filler = 'x'.repeat(100_000)
  for (let i = 0; i < 60; i++) await redis.set(`filler:${i}`, filler)
  await redis.config('SET', 'maxmemory', '0') // no more evictions while the figures are read
  const evicted = await evictedKeys(redis)
  t.ok(evicted > 0, `the server evicted ${evicted} keys`)
  t.equal((await app.inject('/cache/stats')).json().store.evictions, evicted)
})

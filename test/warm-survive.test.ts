import diagnostics from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import responseCache, { MemoryStore, type CacheEntry, type CacheStore, type ResponseCacheOptions, type StoreSetOptions } from '../lib/index.js'
import { listeningHost } from '../lib/client/warm.js'
import { counter, logCapture } from './helpers/app.js'
import { eventually } from './helpers/events.js'
import { CLIENT_OPTIONS, connect, freePort, spawnRedis, startRedis } from './helpers/redis.js'

type Tap = import('tap').Test

// Warming that survives (issue 29 point 5): requests declared once run at start, and again when the
// shared store comes back empty; entries are keyed by the host the app listens on.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
const admin = await connect(t, server)
let namespaces = 0
/** A generous store timeout: a loaded machine must not turn a slow first write into a missing entry. */
const SLOW_MACHINE = 2000

/** The README's way: register with `warm`, a cached route whose body says which run computed it. */
async function app (t: Tap, options: ResponseCacheOptions, runs = counter(), logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  const instance = Fastify({ logger })
  t.teardown(() => instance.close())
  await instance.register(responseCache, options)
  instance.get('/products/top', { config: { cache: { ttl: 600 } } }, async () => ({ top: [1, 2, 3], run: runs.next() }))
  instance.post('/search', { config: { cache: { ttl: 600 } } }, async (req) => ({ q: (req.body as { q: string }).q, run: runs.next() }))
  return instance
}

/** A client straight from `new Redis(url)`, still connecting when it is handed to the plugin. */
function fresh (t: Tap, target = url): Redis {
  const redis = new Redis(target, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 })
  t.teardown(() => { redis.disconnect() })
  redis.on('error', () => {})
  return redis
}

/** GET over a real socket, as a client of the listening app sends it (its own Host header). */
async function get (instance: FastifyInstance, path: string, headers: Record<string, string> = {}): Promise<{ xCache: unknown, body: { run: number } }> {
  const response = await request(`http://127.0.0.1:${(instance.server.address() as { port: number }).port}${path}`, { headers })
  return { xCache: response.headers['x-cache'], body: await response.body.json() as { run: number } }
}

const runsOf = (instance: FastifyInstance): number => instance.cache.stats().warm.runs

t.test('memory: the warm option runs at start, after ready(), without ready() waiting for it', async (t) => {
  const runs = counter()
  const { lines, logger } = logCapture('info')
  const instance = await app(t, { warm: ['/products/top', { method: 'POST', url: '/search', body: { q: 'aspirin' } }] }, runs, logger)
  await instance.ready()
  t.ok(await eventually(() => runsOf(instance) === 1), 'the declared requests ran')
  t.same(instance.cache.stats().warm, { runs: 1, stored: 2, failed: 0, emptied: 0 })
  t.equal(runs.runs, 2)
  t.equal((await instance.inject('/products/top')).headers['x-cache'], 'HIT', 'inject is keyed like the warm-up while the app does not listen')
  t.equal((await instance.inject({ method: 'POST', url: '/search', payload: { q: 'aspirin' } })).headers['x-cache'], 'HIT')
  t.equal(runs.runs, 2)
  const done = lines.find((line) => line.msg === 'response cache: warmed 2 of 2 declared requests')
  t.same(done?.responseCache, { warm: 'start', stored: 2, failed: 0 }, 'logged at info with the counts')
  t.equal(done?.level, 30)
})

t.test('memory: declared requests that store nothing are logged at warn, path only', async (t) => {
  const { lines, logger } = logCapture('info')
  const instance = await app(t, { warm: ['/products/top?token=secret', '/nowhere'] }, counter(), logger)
  await instance.ready()
  t.ok(await eventually(() => runsOf(instance) === 1))
  t.same(instance.cache.stats().warm, { runs: 1, stored: 1, failed: 1, emptied: 0 })
  const warning = lines.find((line) => String(line.msg).includes('declared warm requests stored nothing'))
  t.equal(warning?.level, 40)
  t.same((warning?.responseCache as { failed: unknown }).failed, [{ method: 'GET', path: '/nowhere', status: 404, reason: 'not-cached' }])
  t.notMatch(JSON.stringify(lines.filter((line) => line.responseCache !== undefined)), /secret/, 'no query string in what the plugin logs')
})

t.test('a bad warm option fails ready() naming it', async (t) => {
  const cases: Array<[unknown, string]> = [
    [['/ok', 'no-slash'], 'warm[1]'],
    [[{ url: '/a', method: 'DELETE' }], 'warm[0]'],
    [[{ url: '/a', headers: { n: 1 } }], 'warm[0]'],
    [[{ url: '/a', extra: true }], 'warm[0]'],
    [{ requests: [5] }, 'warm.requests[0]'],
    [{ requests: ['/a'], host: 'http://example.com/' }, 'warm.host'],
    [{ requests: ['/a'], interval: 0 }, 'warm.interval'],
    [{ requests: ['/a'], every: 1 }, 'warm.every'],
    [{ host: 'example.com' }, 'warm.requests'],
    ['/a', 'warm']
  ]
  for (const [warm, name] of cases) {
    const instance = Fastify()
    t.teardown(() => instance.close())
    await t.rejects(async () => {
      await instance.register(responseCache, { warm: warm as ResponseCacheOptions['warm'] })
      await instance.ready()
    }, { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message: new RegExp(`"${name.replace(/[[\].]/g, '\\$&')}"`) }, name)
  }
  const good = Fastify()
  t.teardown(() => good.close())
  await good.register(responseCache, { warm: { requests: ['/a'], host: 'api.example.com:8443', interval: 5 } })
  await good.ready()
  t.pass('host with a port, interval in seconds')
})

t.test('memory: listening, warmed entries are keyed by the host the app listens on', async (t) => {
  const runs = counter()
  const instance = await app(t, { warm: ['/products/top'] }, runs)
  await instance.listen({ port: 0, host: '127.0.0.1' })
  t.ok(await eventually(() => runsOf(instance) >= 1))
  const first = await get(instance, '/products/top')
  t.equal(first.xCache, 'HIT', 'the first real request after warming is a hit')
  t.equal(first.body.run, runs.runs)
  t.equal(runsOf(instance), 1, 'run once, after listen() had bound the address')

  // warm() on demand, keyed the same way; a request's own host header still wins.
  const report = await instance.cache.warm([{ method: 'POST', url: '/search', body: { q: 'x' } }, { url: '/products/top?v=2', headers: { Host: 'other.example' } }])
  t.equal(report.stored.length, 2)
  const response = await request(`http://127.0.0.1:${(instance.server.address() as { port: number }).port}/search`, {
    method: 'POST', body: JSON.stringify({ q: 'x' }), headers: { 'content-type': 'application/json' }
  })
  t.equal(response.headers['x-cache'], 'HIT')
  await response.body.dump()
  t.equal((await get(instance, '/products/top?v=2')).xCache, 'MISS', 'warmed for the host it named')
  t.equal((await get(instance, '/products/top?v=2', { host: 'other.example' })).xCache, 'HIT')
})

t.test('memory: ready() first, listen() later: the requests run again once the address is known', async (t) => {
  const runs = counter()
  const instance = await app(t, { warm: ['/products/top'] }, runs)
  await instance.ready()
  t.ok(await eventually(() => runsOf(instance) === 1), 'ran while the app did not listen')
  t.equal((await instance.inject('/products/top')).headers['x-cache'], 'HIT', 'keyed for inject')
  await instance.listen({ port: 0, host: '127.0.0.1' })
  t.ok(await eventually(() => runsOf(instance) === 2), 'ran again on listen')
  t.equal((await get(instance, '/products/top')).xCache, 'HIT', 'keyed for the address listened on')
})

t.test('memory: warm.host keys entries by the public host behind a proxy', async (t) => {
  const instance = await app(t, { warm: { requests: ['/products/top'], host: 'shop.example.com' } })
  await instance.listen({ port: 0, host: '127.0.0.1' })
  t.ok(await eventually(() => runsOf(instance) === 1))
  t.equal((await get(instance, '/products/top', { host: 'shop.example.com' })).xCache, 'HIT')
  t.equal((await get(instance, '/products/top')).xCache, 'MISS', 'not the address listened on')
  t.equal(runsOf(instance), 1, 'run once: the host was known before listen')
})

t.test('redis, as the README shows: new Redis(url) still connecting, warm option, listen; a flush and a restart re-warm', async (t) => {
  const port = await freePort()
  let redisServer = await spawnRedis(port)
  t.teardown(async () => { await redisServer.kill() })
  const runs = counter()
  const { lines, logger } = logCapture('info')
  const redis = fresh(t, `redis://127.0.0.1:${port}`)
  const instance = await app(t, { store: 'redis', timeout: SLOW_MACHINE, redis, warm: { requests: ['/products/top'], interval: 0.1 } }, runs, logger)
  await instance.listen({ port: 0, host: '127.0.0.1' })
  t.ok(await eventually(() => runsOf(instance) === 1))
  const warmed = await get(instance, '/products/top')
  t.equal(warmed.xCache, 'HIT')
  const kept = await instance.cache.warm([{ method: 'POST', url: '/search', body: { q: 'kept' } }], { keep: true })
  t.equal(kept.stored.length, 1)

  const other = new Redis(port, '127.0.0.1')
  t.teardown(() => { other.disconnect() })
  other.on('error', () => {})
  await other.flushall()
  t.ok(await eventually(() => instance.cache.stats().warm.emptied === 1 && runsOf(instance) === 2), 'the flush is found and the requests warmed again')
  const back = await get(instance, '/products/top')
  t.equal(back.xCache, 'HIT', 'the entry is back')
  t.ok(back.body.run > warmed.body.run, 'from the re-warm')
  const search = await instance.inject({ method: 'POST', url: '/search', payload: { q: 'kept' }, headers: { host: `127.0.0.1:${(instance.server.address() as { port: number }).port}` } })
  t.equal(search.headers['x-cache'], 'HIT', 'requests kept by warm(…, { keep: true }) are warmed again too')
  const warned = lines.find((line) => line.msg === 'response cache: store came back empty; re-warming 2 requests')
  t.equal(warned?.level, 40)

  // Killed and started again on the same port, without persistence: empty.
  await redisServer.kill()
  redisServer = await spawnRedis(port)
  t.ok(await eventually(() => instance.cache.stats().warm.emptied === 2 && runsOf(instance) === 3, 10_000), 'the restart is found when the client is ready again')
  t.ok(await eventually(async () => (await get(instance, '/products/top')).xCache === 'HIT'), 'the entry is back after the restart')
  t.notMatch(JSON.stringify(lines), /rc:\{/, 'no Redis key in the logs')
})

t.test('redis: a restart is found when the client is ready again, between two looks', async (t) => {
  const port = await freePort()
  let redisServer = await spawnRedis(port)
  t.teardown(async () => { await redisServer.kill() })
  const instance = await app(t, { store: 'redis', timeout: SLOW_MACHINE, redis: fresh(t, `redis://127.0.0.1:${port}`), warm: { requests: ['/products/top'], interval: 3600 } })
  await instance.ready()
  t.ok(await eventually(() => runsOf(instance) === 1))
  await redisServer.kill()
  redisServer = await spawnRedis(port)
  t.ok(await eventually(() => runsOf(instance) === 2, 10_000), 'warmed again on the client\'s ready event')
  t.equal(instance.cache.stats().warm.emptied, 1)
  t.equal((await instance.inject('/products/top')).headers['x-cache'], 'HIT')
})

t.test('redis: a store down at start neither hangs nor fails ready(); the warm-up runs once it answers', async (t) => {
  const port = await freePort()
  const redis = fresh(t, `redis://127.0.0.1:${port}`)
  const instance = await app(t, { store: 'redis', timeout: SLOW_MACHINE, redis, readyTimeout: 50, warm: ['/products/top'] })
  await instance.ready()
  t.equal(runsOf(instance), 0, 'nothing ran while the store was away')
  const redisServer = await spawnRedis(port)
  t.teardown(async () => { await redisServer.kill() })
  t.ok(await eventually(() => runsOf(instance) === 1, 10_000), 'ran once the client was ready')
  t.same(instance.cache.stats().warm, { runs: 1, stored: 1, failed: 0, emptied: 0 })
  t.equal((await instance.inject('/products/top')).headers['x-cache'], 'HIT')
})

t.test('redis: clear() empties the store too: the declared requests are warmed again', async (t) => {
  const instance = await app(t, { store: 'redis', timeout: SLOW_MACHINE, redis: fresh(t), namespace: `c${++namespaces}`, warm: { requests: ['/products/top'], interval: 0.1 } })
  await instance.ready()
  t.ok(await eventually(() => runsOf(instance) === 1))
  await instance.cache.clear()
  t.ok(await eventually(() => runsOf(instance) === 2))
  t.equal((await instance.inject('/products/top')).headers['x-cache'], 'HIT')
})

for (const store of ['redis', 'tiered'] as const) {
  t.test(`${store}: three instances sharing Redis: one re-warms after a flush, the others find its entries`, async (t) => {
    const runs = counter()
    const namespace = `s${++namespaces}`
    const emptied: unknown[] = []
    const listener = (message: unknown): void => { emptied.push(message) }
    diagnostics.subscribe('fastify-response-cache:store-emptied', listener)
    t.teardown(() => { diagnostics.unsubscribe('fastify-response-cache:store-emptied', listener) })
    const instances: FastifyInstance[] = []
    for (let i = 0; i < 3; i++) {
      const redis = new Redis(url, CLIENT_OPTIONS)
      t.teardown(() => { redis.disconnect() })
      const instance = await app(t, { store, timeout: SLOW_MACHINE, redis, namespace, warm: { requests: ['/products/top'], host: 'shop.example.com', interval: 0.1 } }, runs)
      await instance.ready()
      instances.push(instance)
    }
    t.ok(await eventually(() => instances.every((instance) => runsOf(instance) === 1)), 'each instance warms at start')
    const atStart = runs.runs

    await admin.flushall()
    t.ok(await eventually(() => instances.every((instance) => instance.cache.stats().warm.emptied === 1)), 'every instance finds the store empty')
    t.ok(await eventually(() => instances.reduce((sum, instance) => sum + runsOf(instance), 0) === 4), 'one re-warm')
    t.equal(runs.runs, atStart + 1, 'the handler ran once for the three instances')
    t.ok(await eventually(() => emptied.length === 3), 'each instance publishes what it found')
    t.same(emptied.map((m) => (m as { rewarming: boolean }).rewarming).sort(), [false, false, true], 'published on the diagnostics channel, one re-warming')
    t.match(emptied[0], { store, requests: 1 })
  })
}

t.test('tiered: after a flush, the re-warmed entry is a hit on every instance', async (t) => {
  const runs = counter()
  const namespace = `h${++namespaces}`
  const instances: FastifyInstance[] = []
  for (let i = 0; i < 3; i++) {
    const instance = await app(t, { store: 'tiered', timeout: SLOW_MACHINE, redis: fresh(t), namespace, tiered: { localTtl: 0.05 }, warm: { requests: ['/products/top'], host: 'shop.example.com', interval: 0.1 } }, runs)
    await instance.ready()
    instances.push(instance)
  }
  t.ok(await eventually(() => instances.every((instance) => runsOf(instance) === 1)))
  await admin.flushall()
  t.ok(await eventually(() => instances.reduce((sum, instance) => sum + runsOf(instance), 0) === 4))
  const afterRewarm = runs.runs
  for (const instance of instances) {
    t.ok(await eventually(async () => (await instance.inject({ url: '/products/top', headers: { host: 'shop.example.com' } })).json().run === afterRewarm), 'the re-warmed answer')
  }
  t.equal(runs.runs, afterRewarm, 'no handler ran for those requests')
})

t.test('the Host warm sends, from the addresses the app listens on', async (t) => {
  const host = (addresses: Array<{ address: string, family: string, port: number } | string>, https?: boolean): string | undefined =>
    listeningHost({ addresses: () => addresses, initialConfig: { https } } as never)
  t.equal(host([]), undefined, 'not listening: inject\'s own host')
  t.equal(host(['/tmp/app.sock']), undefined, 'a pipe has no host')
  t.equal(host([{ address: '127.0.0.1', family: 'IPv4', port: 3000 }]), '127.0.0.1:3000')
  t.equal(host([{ address: '127.0.0.1', family: 'IPv4', port: 3000 }, { address: '::1', family: 'IPv6', port: 3000 }]), 'localhost:3000', 'listen on localhost')
  t.equal(host([{ address: '0.0.0.0', family: 'IPv4', port: 80 }]), 'localhost', 'every interface, default port')
  t.equal(host([{ address: '::', family: 'IPv6', port: 8080 }]), 'localhost:8080')
  t.equal(host([{ address: 'fe80::1', family: 'IPv6', port: 3000 }]), '[fe80::1]:3000')
  t.equal(host([{ address: '10.0.0.5', family: 'IPv4', port: 443 }], true), '10.0.0.5', 'TLS on 443')
  t.equal(host([{ address: '10.0.0.5', family: 'IPv4', port: 80 }], true), '10.0.0.5:80')
})

t.test('an app closed right after ready() runs nothing', async (t) => {
  const runs = counter()
  const instance = Fastify()
  await instance.register(responseCache, { warm: ['/products/top'] })
  instance.get('/products/top', { config: { cache: true } }, async () => ({ run: runs.next() }))
  await instance.ready()
  await instance.close()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(runsOf(instance), 0)
  t.equal(runs.runs, 0)
})

/**
 * A custom store that tells its generations (as CacheStore allows), without a lock: the instance
 * re-warms alone. `fail` makes the next generations() or lock() call throw.
 */
interface Watched { store: CacheStore, generation: string, fail: { generations: number }, calls: { generations: number } }
function watchedStore (): Watched {
  const memory = new MemoryStore({ maxBytes: 1 << 20 })
  const state: Watched = {
    generation: 'g1',
    fail: { generations: 0 },
    calls: { generations: 0 },
    store: {
      name: 'watched',
      get: (key: string) => memory.get(key),
      set: (key: string, entry: CacheEntry, options: StoreSetOptions) => { memory.set(key, entry, options) },
      delete: (key: string) => memory.delete(key),
      invalidateTags: (tags: readonly string[]) => memory.invalidateTags(tags),
      clear: () => { memory.clear() },
      generations: async () => {
        state.calls.generations++
        if (state.fail.generations > 0) {
          state.fail.generations--
          throw new Error('store away')
        }
        return [state.generation, null]
      }
    }
  }
  return state
}

t.test('a custom store with generations() and no lock: watched, re-warmed by this instance alone', async (t) => {
  const watched = watchedStore()
  // Its first look fails: the instance looks again, and compares from the first it could read.
  watched.fail.generations = 1
  const runs = counter()
  const instance = await app(t, { store: watched.store, warm: { requests: ['/products/top'], interval: 0.1 } }, runs)
  await instance.ready()
  t.ok(await eventually(() => runsOf(instance) === 1))
  t.ok(await eventually(() => watched.calls.generations >= 3), 'looked again after the failure')
  watched.fail.generations = 2
  watched.generation = 'g2'
  t.ok(await eventually(() => runsOf(instance) === 2), 'a replaced generation: warmed again')
  t.equal(instance.cache.stats().warm.emptied, 1)
  t.equal((await instance.inject('/products/top')).headers['x-cache'], 'HIT')
})

t.test('redis: a lock the store cannot take now is asked for again at the next look', async (t) => {
  const redis = fresh(t)
  const instance = await app(t, { store: 'redis', timeout: SLOW_MACHINE, redis, namespace: `l${++namespaces}`, warm: { requests: ['/products/top'], interval: 0.1 } })
  await instance.ready()
  t.ok(await eventually(() => runsOf(instance) === 1))
  // The lock's SET fails once: a write refused by a Redis that answers everything else.
  const set = redis.set.bind(redis)
  let refused = 0
  redis.set = (async (...args: Parameters<typeof set>) => {
    if (String(args[0]).includes(':lock:') && refused === 0) {
      refused++
      throw new Error('refused')
    }
    return await set(...args)
  }) as typeof redis.set
  t.teardown(() => { redis.set = set })
  await admin.flushall()
  t.ok(await eventually(() => runsOf(instance) === 2), 'warmed again once the lock could be taken')
  t.equal(refused, 1)
  t.equal(instance.cache.stats().warm.emptied, 2, 'found empty at both looks')
})

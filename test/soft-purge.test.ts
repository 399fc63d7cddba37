import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import diagnostics from 'node:diagnostics_channel'
import { Redis, type Cluster } from 'ioredis'
import t from 'tap'
import responseCache, { type CacheStore, type ResponseCacheOptions } from '../lib/index.js'
import { InvalidationBus, type BusClient, type Drop } from '../lib/stores/bus.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { CacheTraceContext } from '../lib/observability/tracing.js'
import { counter } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { deferred, eventually, until } from './helpers/events.js'
import { connect, freePort, spawnPausableRedis, startRedis } from './helpers/redis.js'

// Soft purge: app.cache.invalidate({ ..., soft: true }) marks entries expired instead of dropping
// them. Every store is asked the same questions: STALE then refreshed once within the route's
// stale-while-revalidate window, MISS without one or past it, other tenants untouched, writes after
// the purge fresh.

type Tap = import('tap').Test

interface Products { app: FastifyInstance, runs: { runs: number }, failing: { now: boolean } }

/**
 * Routes over the same kind of resource: `/swr` with a long stale-while-revalidate window, `/plain`
 * with none, `/short` with one second, `/sie` with only a stale-if-error window (its handler fails
 * while `failing.now`). The tenant is the `x-tenant` header.
 */
async function productsApp (t: Tap, options: ResponseCacheOptions): Promise<Products> {
  const runs = counter()
  const failing = { now: false }
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache, { tenant: (request) => request.headers['x-tenant'] as string | undefined, ...options })
  const route = (path: string, staleWhileRevalidate: number, staleIfError = 0): void => {
    app.get(`/${path}/:id`, { config: { cache: { ttl: 600, staleWhileRevalidate, staleIfError, tags: (request) => [`${path}:${(request.params as { id: string }).id}`] } } },
      async (request) => {
        if (failing.now) throw new Error('upstream down')
        return { id: (request.params as { id: string }).id, run: runs.next() }
      })
  }
  route('swr', 600)
  route('plain', 0)
  route('short', 1)
  route('sie', 0, 600)
  await app.ready()
  return { app, runs, failing }
}

const get = async (app: FastifyInstance, url: string, tenant = 'a'): Promise<LightMyRequestResponse> => await app.inject({ url, headers: { 'x-tenant': tenant } })
const seen = (response: LightMyRequestResponse): [unknown, unknown] => [response.headers['x-cache'], response.json().run]

/** `fastify-response-cache; hit; ttl=-1` as { hit: true, ttl: -1 }. */
function cacheStatus (response: LightMyRequestResponse): Record<string, string | number | boolean> {
  const member = String(response.headers['cache-status']).split(',').map((m) => m.trim()).find((m) => m.startsWith('fastify-response-cache'))
  const params: Record<string, string | number | boolean> = {}
  for (const part of (member ?? '').split(';').slice(1)) {
    const [name, value] = part.trim().split('=')
    params[name] = value === undefined ? true : Number.isNaN(Number(value)) ? value : Number(value)
  }
  return params
}

/** Until `url` answers a HIT computed after run `run`: the refresh has landed. */
async function refreshed (app: FastifyInstance, url: string, run: number, tenant = 'a'): Promise<boolean> {
  return await eventually(async () => {
    const [status, by] = seen(await get(app, url, tenant))
    return status === 'HIT' && (by as number) > run
  })
}

/** The questions every store must answer the same way. */
async function softPurgeHolds (t: Tap, options: () => ResponseCacheOptions): Promise<void> {
  t.test('a softly purged entry is STALE while one refresh runs, then fresh', async (t) => {
    const { app, runs } = await productsApp(t, options())
    t.same(seen(await get(app, '/swr/1')), ['MISS', 1])
    t.same(seen(await get(app, '/swr/1')), ['HIT', 1])
    t.equal(await app.cache.invalidate({ tags: ['swr:1'], soft: true }), 1, 'one entry marked')
    t.same((await app.cache.list({ tag: 'swr:1' }))?.entries.map((entry) => entry.ttl), [0], 'listed, with no freshness left')
    const stale = await get(app, '/swr/1')
    t.same(seen(stale), ['STALE', 1], 'the old answer, at once')
    const status = cacheStatus(stale)
    t.ok(status.hit === true && (status.ttl as number) < 0, `Cache-Status: a hit with a negative ttl (${JSON.stringify(status)})`)
    t.ok(await refreshed(app, '/swr/1', 1), 'refreshed in the background')
    t.equal(runs.runs, 2, 'the handler ran once for the refresh')
  })

  t.test('a route without a stale window: soft is a drop (MISS)', async (t) => {
    const { app, runs } = await productsApp(t, options())
    await get(app, '/plain/1')
    t.equal(await app.cache.invalidate({ tags: ['plain:1'], soft: true }), 1)
    t.same(seen(await get(app, '/plain/1')), ['MISS', 2])
    t.same(seen(await get(app, '/plain/1')), ['HIT', 2])
    t.equal(runs.runs, 2)
  })

  t.test('only a stale-if-error window: a miss, and the marked entry if the handler fails', async (t) => {
    const { app, failing } = await productsApp(t, options())
    await get(app, '/sie/1')
    await app.cache.invalidate({ tags: ['sie:1'], soft: true })
    failing.now = true
    t.same(seen(await get(app, '/sie/1')), ['STALE', 1], 'the handler ran and failed: the marked entry instead')
    failing.now = false
    t.same(seen(await get(app, '/sie/1')), ['MISS', 2])
  })

  t.test('past the window counted from the purge: MISS', async (t) => {
    const { app } = await productsApp(t, options())
    await get(app, '/short/1')
    await app.cache.invalidate({ tags: ['short:1'], soft: true })
    const purged = Date.now()
    await until(purged, 1000)
    t.same(seen(await get(app, '/short/1')), ['MISS', 2], 'the entry was fresh for ten minutes more: its window counts from the purge')
  })

  t.test("a tenant's soft purge leaves other tenants' entries fresh", async (t) => {
    const { app } = await productsApp(t, options())
    await get(app, '/swr/1', 'a')
    await get(app, '/swr/1', 'b')
    t.equal(await app.cache.invalidate({ tenant: 'a', soft: true }), 1)
    t.same(seen(await get(app, '/swr/1', 'b')), ['HIT', 2], 'tenant b untouched')
    t.same(seen(await get(app, '/swr/1', 'a')), ['STALE', 1], 'tenant a stale')
    t.ok(await refreshed(app, '/swr/1', 2, 'a'))
  })

  t.test('by route; an entry written after the purge is fresh, one written before the next purge is marked by it', async (t) => {
    const { app } = await productsApp(t, options())
    await get(app, '/swr/1')
    t.equal(await app.cache.invalidate({ route: 'GET /swr/:id', soft: true }), 1)
    t.same(seen(await get(app, '/swr/2')), ['MISS', 2], 'written after the purge')
    t.same(seen(await get(app, '/swr/2')), ['HIT', 2], 'not marked by it')
    t.same(seen(await get(app, '/swr/1')), ['STALE', 1])
    t.ok(await refreshed(app, '/swr/1', 2))
    t.equal(await app.cache.invalidate({ tags: ['swr:2'], route: '/swr/:id', soft: true }), 2, 'an entry selected twice is counted once')
    t.same(seen(await get(app, '/swr/2')), ['STALE', 2], 'marked by the second purge')
  })

  t.test('an entry already past its freshness keeps its window from its own expiry; one gone is not counted', async (t) => {
    const { app } = await productsApp(t, options())
    let calls = 0
    const wrap = async (): Promise<number> => await app.cache.wrap('rate', async () => ++calls, { ttl: 1, staleWhileRevalidate: 600, tags: ['old'] })
    t.equal(await wrap(), 1)
    t.equal(await app.cache.set('gone', 1, { ttl: 1, tags: ['old'] }), true)
    const written = Date.now()
    await until(written, 1000)
    t.equal(await app.cache.invalidate({ tags: ['old'], soft: true }), 1, 'the stale value, not the expired one')
    t.equal(await wrap(), 1, 'still within its window')
  })

  t.test('writes landing while the purge is on its way: each entry is either marked (and counted) or written after it', async (t) => {
    const { app } = await productsApp(t, options())
    const ids = Array.from({ length: 20 }, (_, i) => i)
    const requests = Promise.all(ids.map(async (id) => await get(app, `/swr/${id}`)))
    // Some requests have run their handlers, some have not: the purge waits for the writes on their way.
    await new Promise((resolve) => setImmediate(resolve))
    const marked = await app.cache.invalidate({ route: 'GET /swr/:id', soft: true })
    t.ok((await requests).every((response) => response.headers['x-cache'] === 'MISS'))
    let stale = 0
    for (const id of ids) {
      const status = (await get(app, `/swr/${id}`)).headers['x-cache']
      t.ok(status === 'STALE' || status === 'HIT', `${id}: ${String(status)}`)
      if (status === 'STALE') stale++
    }
    t.equal(stale, marked, 'the purge counted exactly the entries it marked')
  })

  t.test('values: wrap answers a softly purged value stale while one call refreshes it', async (t) => {
    const { app } = await productsApp(t, options())
    let calls = 0
    const wrap = async (swr: number): Promise<number> => await app.cache.wrap(`price:${swr}`, async () => ++calls, { ttl: 600, staleWhileRevalidate: swr, tags: ['prices'] })
    t.equal(await wrap(600), 1)
    t.equal(await wrap(0), 2)
    t.equal(await app.cache.invalidate({ tags: ['prices'], soft: true }), 2)
    t.equal(await wrap(600), 1, 'the stale value at once')
    t.ok(await eventually(async () => await wrap(600) === 3), 'then the refreshed one')
    t.equal(await wrap(0), 4, 'without a stale window: computed again')
    t.equal(await app.cache.get('price:600'), 3)
  })
}

t.test('memory', async (t) => {
  await softPurgeHolds(t, () => ({ store: 'memory' }))

  t.test('a traced soft purge says so', async (t) => {
    const { app } = await productsApp(t, { store: 'memory' })
    const seen: CacheTraceContext[] = []
    const channel = diagnostics.tracingChannel<unknown, CacheTraceContext>('fastify-response-cache:invalidate')
    const handlers = { start: (context: CacheTraceContext) => { seen.push(context) }, end: () => {}, asyncStart: () => {}, asyncEnd: () => {}, error: () => {} }
    channel.subscribe(handlers)
    t.teardown(() => { channel.unsubscribe(handlers) })
    await app.cache.invalidate({ tags: ['swr:1'], soft: true })
    await app.cache.invalidate({ tags: ['swr:1'] })
    t.same(seen.map((context) => context.soft), [true, undefined])
  })
})

t.test('redis', async (t) => {
  const server = await startRedis(t)
  const client = await connect(t, server)
  let n = 0
  await softPurgeHolds(t, () => ({ store: 'redis', redis: client, namespace: `soft${++n}`, timeout: 2000 }))
  t.test('tiered, one instance', async (t) => {
    await softPurgeHolds(t, () => ({ store: 'tiered', redis: client, namespace: `soft${++n}`, timeout: 2000 }))
  })

  t.test('a purge holds for an entry whose tag set Redis evicted (the version carries it)', async (t) => {
    const { app } = await productsApp(t, { store: 'redis', redis: client, namespace: 'evicted', timeout: 2000 })
    await get(app, '/swr/1')
    const sets = async (): Promise<string[]> => await client.keys('evicted:*:tag:*')
    t.ok(await eventually(async () => (await sets()).length > 0), 'the entry and its sets written')
    await client.del(...await sets())
    t.equal(await app.cache.invalidate({ tags: ['swr:1'], soft: true }), 0, 'no set: nothing counted')
    t.same(seen(await get(app, '/swr/1')), ['STALE', 1], 'still marked')
  })

  t.test('sealed entries (encryption) are marked too', async (t) => {
    const key = Buffer.alloc(32, 7)
    const { app } = await productsApp(t, { store: 'redis', redis: client, namespace: 'sealed', timeout: 2000, encryption: { keys: [{ id: 'k1', key }] } })
    await get(app, '/swr/1')
    t.equal(await app.cache.invalidate({ tags: ['swr:1'], soft: true }), 1)
    t.same(seen(await get(app, '/swr/1')), ['STALE', 1])
    t.ok(await refreshed(app, '/swr/1', 1))
  })

  t.test('past the marks a version keeps, an entry is missed as after a hard purge', async (t) => {
    const { app } = await productsApp(t, { store: 'redis', redis: client, namespace: 'marks', timeout: 2000 })
    await get(app, '/swr/1')
    await get(app, '/swr/2')
    await app.cache.invalidate({ tags: ['swr:2'], soft: true })
    t.same(seen(await get(app, '/swr/2')), ['STALE', 2])
    t.ok(await refreshed(app, '/swr/2', 2), 'its refreshed entry records the first mark')
    // Nine marks on swr:1 and on swr:2: the first ones are gone. swr:1's entry, written before any,
    // still matches the bare token and reads as purged (at a later time than it was).
    for (let i = 0; i < 9; i++) await app.cache.invalidate({ tags: ['swr:1', 'swr:2'], soft: true })
    t.same(seen(await get(app, '/swr/1')), ['STALE', 1])
    t.equal((await get(app, '/swr/2')).headers['x-cache'], 'MISS', 'its mark dropped: a miss, never fresh')
  })
})

t.test('the bus: a soft purge carries its time; one whose time is not a number is a drop', async (t) => {
  const server = await startRedis(t)
  const redis = await connect(t, server)
  const raw = await connect(t, server)
  const heard: Drop[] = []
  const bus = new InvalidationBus(redis as unknown as BusClient, 'softbus', { drop: (drop) => { heard.push(drop) }, distrust: () => {} })
  t.teardown(() => { bus.close() })
  await bus.start(5000)
  const send = async (n: number, p: unknown): Promise<unknown> => await raw.publish('softbus:bus', JSON.stringify({ v: 1, s: 'other', n, k: 't', x: ['g:t:a'], p }))
  await send(1, 1234)
  await send(2, 'later')
  t.ok(await eventually(() => heard.length === 2))
  t.same(heard, [{ kind: 'tags', tags: ['g:t:a'], softAt: 1234 }, { kind: 'tags', tags: ['g:t:a'] }])
})

t.test('redis cluster', async (t) => {
  const cluster: Cluster = await startCluster(t)
  let n = 0
  await softPurgeHolds(t, () => ({ store: 'redis', redis: cluster, namespace: `csoft${++n}`, timeout: 2000 }))
})

t.test('three tiered instances: a soft purge on A is STALE on B and C, refreshed once across all', async (t) => {
  const server = await startRedis(t)
  const url = `redis://${await server.getHost()}:${await server.getPort()}`
  const runs = counter()
  // The refresh waits here: meanwhile every instance must answer STALE, and none refresh again.
  const gate = deferred()
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 3; i++) {
    // As the README shows: a client straight from new Redis(url).
    const redis = new Redis(url)
    t.teardown(() => { redis.disconnect() })
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(responseCache, { store: 'tiered', redis, namespace: 'tiered-soft', staleWhileRevalidate: 600 })
    app.get('/patients/:id', { config: { cache: { ttl: 600, tags: (request) => [`patient:${(request.params as { id: string }).id}`] } } }, async () => {
      const run = runs.next()
      if (run === 2) await gate.promise
      return { run }
    })
    await app.ready()
    apps.push(app)
  }
  const [a, b, c] = apps
  const patient = async (app: FastifyInstance): Promise<[unknown, unknown]> => {
    const response = await app.inject('/patients/1')
    return [response.headers['x-cache'], response.json().run]
  }
  t.same(await patient(a), ['MISS', 1])
  t.same(await patient(b), ['HIT', 1])
  t.same(await patient(c), ['HIT', 1], 'each instance holds a copy in memory')
  t.equal(await a.cache.invalidate({ tags: ['patient:1'], soft: true }), 1, 'Redis marked its entry')
  t.same(await patient(a), ['STALE', 1], 'A refreshes')
  t.ok(await eventually(async () => (await patient(b))[0] === 'STALE'), "B's memory copy marked by the bus message")
  t.same(await patient(c), ['STALE', 1], "C's too")
  t.equal(runs.runs, 2, 'one refresh running, across the three instances')
  gate.resolve()
  for (const app of apps) t.ok(await refreshedPatient(app), 'refreshed')
  t.equal(runs.runs, 2, 'the handler ran once for the refresh')

  async function refreshedPatient (app: FastifyInstance): Promise<boolean> {
    return await eventually(async () => {
      const [status, run] = await patient(app)
      return status === 'HIT' && run === 2
    })
  }
})

t.test('tiered: the memory tier marks rather than drops, so it answers STALE while Redis is away', async (t) => {
  const port = await freePort()
  const server = await spawnPausableRedis(port)
  t.teardown(async () => { server.resume(); await server.kill() })
  const runs = counter()
  const gate = deferred()
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const redis = new Redis(`redis://127.0.0.1:${port}`)
    redis.on('error', () => {})
    t.teardown(() => { redis.disconnect() })
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(responseCache, { store: 'tiered', redis, namespace: 'away', staleWhileRevalidate: 600 })
    app.get('/items/:id', { config: { cache: { ttl: 600, tags: ['items'] } } }, async () => {
      const run = runs.next()
      // The refresh never ends within the test: the marked copies stay what there is to answer.
      if (run === 2) await gate.promise
      return { run }
    })
    await app.ready()
    apps.push(app)
  }
  const [a, b] = apps
  const item = async (app: FastifyInstance): Promise<[unknown, unknown]> => {
    const response = await app.inject('/items/1')
    return [response.headers['x-cache'], response.json().run]
  }
  await item(a)
  t.same(await item(b), ['HIT', 1])
  t.equal(await a.cache.invalidate({ tags: ['items'], soft: true }), 1, 'Redis marked its entry')
  t.ok(await eventually(async () => (await item(b))[0] === 'STALE'), "B's copy marked by the bus message")
  server.pause()
  t.same(await item(b), ['STALE', 1], "B's own memory answers while Redis is away: marked, not dropped")
  t.same(await item(a), ['STALE', 1], "and A's")
  t.equal(await b.cache.invalidate({ tags: ['items'], soft: true }), 1, 'Redis away: what its memory marked; Redis waits')
  gate.resolve()
})

t.test("README's way: a new Redis(url) client still connecting, soft invalidate right after ready()", async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(`redis://${await server.getHost()}:${await server.getPort()}`)
  t.teardown(() => { redis.disconnect() })
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache, { store: 'redis', redis, staleWhileRevalidate: 60 })
  let runs = 0
  app.get('/items/:id', { config: { cache: { ttl: 30, tags: (request) => [`item:${(request.params as { id: string }).id}`] } } }, async () => ({ run: ++runs }))
  await app.ready()
  t.equal(await app.cache.invalidate({ tags: ['item:1'], soft: true }), 0, 'asked, nothing to mark yet')
  await app.inject('/items/1')
  t.equal(await app.cache.invalidate({ tags: ['item:1'], soft: true }), 1)
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'STALE')
})

t.test('a custom store without softInvalidateTags: soft drops', async (t) => {
  const memory = new MemoryStore({ maxBytes: 1 << 20 })
  const store: CacheStore = {
    name: 'custom',
    get: async (key) => memory.get(key),
    set: async (key, entry, options) => { memory.set(key, entry, options) },
    delete: async (key) => memory.delete(key),
    invalidateTags: async (tags) => memory.invalidateTags(tags),
    clear: async () => { memory.clear() }
  }
  const { app } = await productsApp(t, { store })
  await get(app, '/swr/1')
  t.equal(await app.cache.invalidate({ tags: ['swr:1'], soft: true }), 1)
  t.same(seen(await get(app, '/swr/1')), ['MISS', 2], 'dropped, as documented')
})

t.test('soft must be a boolean', async (t) => {
  const { app } = await productsApp(t, {})
  await t.rejects(app.cache.invalidate({ tags: ['swr:1'], soft: 'yes' as unknown as boolean }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /soft/ })
})

// Per-request headers (issue 26, point 3): headers that hooks set for one request (a rate-limit
// counter, a request id) are that request's on every answer the cache gives, and an entry never keeps
// those of the request that filled it; a route may name more (`perRequestHeaders`). Plugins registered
// as their READMEs show, over real sockets, with a browser's request headers; memory and Redis.
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { request as send } from 'undici'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { counter } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { startRedis } from './helpers/redis.js'

/** What Firefox sends for a page (no cookie: a request with one bypasses the cache). */
const BROWSER: Record<string, string> = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.5',
  'accept-encoding': 'gzip, deflate, br, zstd',
  'upgrade-insecure-requests': '1',
  'sec-fetch-dest': 'document',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-site': 'none',
  'sec-fetch-user': '?1'
}

interface Answer { status: number, body: string, header: (name: string) => string | undefined }
type Get = (path: string, init?: { method?: string, headers?: Record<string, string>, body?: string }) => Promise<Answer>

/** Listens on a free port; answers a function that sends a browser's request over a real socket. */
async function serve (t: Test, app: FastifyInstance): Promise<Get> {
  t.teardown(async () => { await app.close() })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return async (path, init = {}) => {
    const response = await send(address + path, { method: (init.method ?? 'GET') as 'GET', headers: { ...BROWSER, ...init.headers }, body: init.body })
    const body = await response.body.text()
    return { status: response.statusCode, body, header: (name) => response.headers[name] as string | undefined }
  }
}

const redisServer = await startRedis(t)
const redisUrl = `redis://${await redisServer.getHost()}:${await redisServer.getPort()}`
/** A client as docs/API.md "Redis store" makes one. */
const redis = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
t.teardown(() => { redis.disconnect() })
let namespaces = 0
const STORES: Array<[string, () => ResponseCacheOptions]> = [
  ['memory', () => ({})],
  // A generous timeout: these tests are about what is stored, not about a slow write.
  ['redis', () => ({ store: 'redis', redis, namespace: `prh${++namespaces}`, timeout: 2000 })]
]

/** The bytes of every entry a namespace holds in Redis. */
async function storedBytes (namespace: string): Promise<string> {
  const keys = await redis.keys(`${namespace}:*`)
  let all = ''
  for (const key of keys) if (await redis.type(key) === 'string') all += (await redis.getBuffer(key))?.toString('latin1') ?? ''
  return all
}

const stored = async (app: FastifyInstance, stores: number): Promise<boolean> => await eventually(() => app.cache.stats().total.stores === stores)

/** An app-level hook as apps write them: a request id per request, unless the client says `x-trace: off`. */
function requestIds (app: FastifyInstance): string[] {
  const ids: string[] = []
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.headers['x-trace'] === 'off') return
    const id = randomUUID()
    ids.push(id)
    reply.header('x-request-id', id)
  })
  return ids
}

for (const [kind, options] of STORES) {
  for (const order of ['before', 'after'] as const) {
    t.test(`${kind}: @fastify/rate-limit registered ${order} the cache counts down on hits as without the cache`, async (t) => {
      const answers = async (cache: ResponseCacheOptions | undefined): Promise<{ get: Get, app: FastifyInstance, runs: { runs: number } }> => {
        const app = Fastify()
        const runs = counter()
        if (order === 'before') await app.register(rateLimit, { max: 3, timeWindow: '1 minute' })
        if (cache !== undefined) await app.register(responseCache, cache)
        if (order === 'after') await app.register(rateLimit, { max: 3, timeWindow: '1 minute' })
        app.get('/drugs/:id', { config: { cache: true } }, async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
        return { get: await serve(t, app), app, runs }
      }
      const plain = await answers(undefined)
      const cached = await answers(options())
      const seen = { plain: [] as string[], cached: [] as string[] }
      for (let i = 0; i < 4; i++) {
        const without = await plain.get('/drugs/aspirin')
        const withCache = await cached.get('/drugs/aspirin')
        seen.plain.push(`${without.status} ${String(without.header('x-ratelimit-remaining'))} ${without.status === 429 ? without.body : ''}`)
        seen.cached.push(`${withCache.status} ${String(withCache.header('x-ratelimit-remaining'))} ${withCache.status === 429 ? withCache.body : ''}`)
        if (i === 0) t.ok(await stored(cached.app, 1), 'the hits read the stored entry')
        t.equal(withCache.header('x-cache'), ['MISS', 'HIT', 'HIT', 'BYPASS'][i])
      }
      t.strictSame(seen.plain.map((line) => line.slice(0, 5)), ['200 2', '200 1', '200 0', '429 0'])
      t.strictSame(seen.cached, seen.plain, 'status, remaining count and the 429 as without the cache')
      t.equal(cached.runs.runs, 1, 'two of them were hits')
      // Registered after, its onRequest hook runs after the cache's: the lookup moves past it.
      t.equal(cached.app.cache.stats().routes['GET /drugs/:id'].lookupStage, order === 'before' ? 'onRequest' : 'preValidation')
    })
  }

  t.test(`${kind}: a request id set in onRequest is each answer's own, on every kind of hit, and never stored`, async (t) => {
    const app = Fastify()
    await app.register(responseCache, { ...options(), staleIfError: 60 })
    const ids = requestIds(app)
    const release = deferred()
    let slow = false
    app.get('/leaflet', { config: { cache: true } }, async () => {
      if (slow) await release.promise
      return { leaflet: 'take with food' }
    })
    const get = await serve(t, app)

    const miss = await get('/leaflet')
    t.equal(miss.header('x-cache'), 'MISS')
    t.equal(miss.header('x-request-id'), ids[0], 'the miss carries its own id')
    t.ok(await stored(app, 1))
    for (let i = 1; i <= 2; i++) {
      const hit = await get('/leaflet')
      t.equal(hit.header('x-cache'), 'HIT')
      t.equal(hit.header('x-request-id'), ids[i], `hit ${i} carries its own id`)
    }
    const head = await get('/leaflet', { method: 'HEAD' })
    t.match({ cache: head.header('x-cache'), id: head.header('x-request-id') }, { cache: 'HIT', id: ids[3] }, 'HEAD: its own id')
    const notModified = await get('/leaflet', { headers: { 'if-none-match': miss.header('etag') as string } })
    t.match({ status: notModified.status, id: notModified.header('x-request-id') }, { status: 304, id: ids[4] }, '304 from the cache: its own id')
    const untraced = await get('/leaflet', { headers: { 'x-trace': 'off' } })
    t.equal(untraced.header('x-cache'), 'HIT')
    t.equal(untraced.header('x-request-id'), undefined, 'a hit whose hooks set no id carries none: the entry holds none')
    if (kind === 'redis') {
      const bytes = await storedBytes(`prh${namespaces}`)
      t.ok(bytes.includes('take with food'), 'the entry is read from Redis')
      t.notOk(bytes.includes(ids[0]), 'the first request\'s id is not in the stored bytes')
      t.notOk(bytes.includes('x-request-id'))
    }

    // Requests coalesced on a miss are handed the leader's entry: each keeps its own id.
    await app.cache.invalidate({ route: 'GET /leaflet' })
    const hits = app.cache.stats().routes['GET /leaflet'].hits
    slow = true
    const before = ids.length
    const together = Promise.all([get('/leaflet'), get('/leaflet'), get('/leaflet')])
    t.ok(await eventually(() => ids.length === before + 3), 'all three reached the cache')
    release.resolve()
    const coalesced = await together
    t.strictSame(coalesced.map((answer) => answer.header('x-cache')).sort(), ['HIT', 'HIT', 'MISS'])
    t.strictSame(coalesced.map((answer) => answer.header('x-request-id')).sort(), ids.slice(before).sort(), 'three answers, three ids')
    t.equal(app.cache.stats().routes['GET /leaflet'].hits, hits + 2, 'two of them were handed the entry')
  })

  t.test(`${kind}: STALE answers and their background refresh, and the stale-if-error answer, carry their own id`, async (t) => {
    const app = Fastify()
    await app.register(responseCache, options())
    const ids = requestIds(app)
    let failing = false
    app.get('/swr', { config: { cache: { ttl: 1, staleWhileRevalidate: 60 } } }, async () => ({ swr: true }))
    app.get('/sie', { config: { cache: { ttl: 1, staleIfError: 60 } } }, async (_request, reply) => {
      reply.header('x-upstream', 'dispensary-1')
      if (failing) return await reply.code(503).send({ error: 'upstream down' })
      return { sie: true }
    })
    const get = await serve(t, app)

    t.equal((await get('/swr')).header('x-cache'), 'MISS')
    t.equal((await get('/sie')).header('x-cache'), 'MISS')
    t.ok(await stored(app, 2))
    await until(Date.now(), 1000)
    const stale = await get('/swr')
    t.equal(stale.header('x-cache'), 'STALE')
    // The refresh starts from this request's lookup, after its hooks: its id comes next.
    t.equal(stale.header('x-request-id'), ids[2], 'STALE: its own id')
    t.ok(await stored(app, 3), 'the refresh stored a new entry')
    t.equal(ids.length, 4, 'the refresh ran the hooks too: its own id')
    const refreshed = await get('/swr', { headers: { 'x-trace': 'off' } })
    t.equal(refreshed.header('x-cache'), 'HIT')
    t.equal(refreshed.header('x-request-id'), undefined, 'the refresh did not store its id')

    failing = true
    const rescued = await get('/sie')
    t.equal(rescued.status, 200)
    t.equal(rescued.header('x-cache'), 'STALE')
    t.equal(rescued.header('x-request-id'), ids[4], 'stale-if-error: the failed request\'s own id')
    t.equal(rescued.header('x-upstream'), 'dispensary-1', 'and the entry\'s headers')
    t.same(JSON.parse(rescued.body), { sie: true })
    const untraced = await get('/sie', { headers: { 'x-trace': 'off' } })
    t.equal(untraced.header('x-cache'), 'STALE')
    t.equal(untraced.header('x-request-id'), undefined)
  })

  t.test(`${kind}: ttl 'origin': the REVALIDATED answer carries its own id, and the renewed entry takes none`, async (t) => {
    const app = Fastify()
    await app.register(responseCache, { ...options(), ttl: 'origin' })
    const ids = requestIds(app)
    const runs = counter()
    app.get('/label', { config: { cache: true } }, async (request, reply) => {
      runs.next()
      // Revalidated on every use (no-cache with a validator): each request after the first is a 304.
      reply.header('cache-control', 'no-cache').header('etag', '"label-1"')
      if (request.headers['if-none-match'] === '"label-1"') return await reply.code(304).send()
      return { label: 'keep below 25 °C' }
    })
    const get = await serve(t, app)

    t.equal((await get('/label')).header('x-cache'), 'MISS')
    t.ok(await stored(app, 1))
    const revalidated = await get('/label')
    t.equal(revalidated.header('x-cache'), 'REVALIDATED')
    t.equal(revalidated.header('x-request-id'), ids[1], 'its own id, not removed with the 304\'s headers')
    t.same(JSON.parse(revalidated.body), { label: 'keep below 25 °C' })
    t.ok(await stored(app, 2), 'the 304 renewed the entry')
    const untraced = await get('/label', { headers: { 'x-trace': 'off' } })
    t.equal(untraced.header('x-cache'), 'REVALIDATED')
    t.equal(untraced.header('x-request-id'), undefined, 'the renewed entry did not take the 304 request\'s id')
    t.equal(runs.runs, 3)
  })

  t.test(`${kind}: a POST looked up from its raw bytes (preParsing): hits and the entry a raw-lookup miss stores`, async (t) => {
    const app = Fastify()
    await app.register(responseCache, options())
    const ids = requestIds(app)
    app.post('/interactions', { config: { cache: true } }, async (request) => ({ checked: request.body }))
    const get = await serve(t, app)
    const post = async (headers: Record<string, string> = {}): Promise<Answer> =>
      await get('/interactions', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"drugs":["warfarin","aspirin"]}' })

    t.equal((await post()).header('x-cache'), 'MISS')
    t.ok(await stored(app, 1))
    const hit = await post()
    t.equal(hit.header('x-cache'), 'HIT')
    t.equal(hit.header('x-request-id'), ids[1])
    t.equal(app.cache.stats().routes['POST /interactions'].lookupStage, 'preParsing')
    // The raw bytes are known: the next miss is found in preParsing and runs the handler from there.
    await app.cache.invalidate({ route: 'POST /interactions' })
    const again = await post()
    t.equal(again.header('x-cache'), 'MISS')
    t.equal(again.header('x-request-id'), ids[2])
    t.ok(await stored(app, 2))
    const untraced = await post({ 'x-trace': 'off' })
    t.equal(untraced.header('x-cache'), 'HIT')
    t.equal(untraced.header('x-request-id'), undefined, 'that miss did not store its id')
  })

  t.test(`${kind}: perRequestHeaders: headers the handler sets for the request are never stored`, async (t) => {
    const app = Fastify({ genReqId: () => randomUUID() })
    await app.register(responseCache, { ...options(), perRequestHeaders: ['X-Request-Id'] })
    const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<object> => {
      reply.header('x-request-id', request.id).header('server-timing', `db;dur=${request.id.length}`).header('x-dose', '75 mg')
      return { dose: '75 mg' }
    }
    app.get('/dose', { config: { cache: true } }, handler)
    app.get('/dose-timed', { config: { cache: { perRequestHeaders: ['Server-Timing'] } } }, handler)
    app.get('/dose-plain', { config: { cache: { perRequestHeaders: [] } } }, async (request, reply) => {
      reply.header('x-request-id', request.id)
      return { dose: '75 mg' }
    })
    const get = await serve(t, app)

    for (const path of ['/dose', '/dose-timed', '/dose-plain']) {
      const miss = await get(path)
      t.equal(miss.header('x-cache'), 'MISS')
      t.match(miss.header('x-request-id'), /^[0-9a-f-]{36}$/, `${path}: the miss carries the handler's id`)
    }
    t.ok(await stored(app, 3))
    const dose = await get('/dose')
    t.match({ cache: dose.header('x-cache'), id: dose.header('x-request-id'), dose: dose.header('x-dose') }, { cache: 'HIT', id: undefined, dose: '75 mg' }, 'the plugin\'s name: not stored')
    t.ok(dose.header('server-timing'), 'a name no option lists is stored')
    const timed = await get('/dose-timed')
    t.match({ id: timed.header('x-request-id'), timing: timed.header('server-timing'), dose: timed.header('x-dose') }, { id: undefined, timing: undefined, dose: '75 mg' }, 'the route\'s names add to the plugin\'s')
    t.equal((await get('/dose-plain')).header('x-request-id'), undefined, 'an empty list keeps the plugin\'s')
    if (kind === 'redis') t.notOk((await storedBytes(`prh${namespaces}`)).includes('x-request-id'))
  })
}

t.test('redis: perRequestHeaders: an entry stored before a route named the header does not answer with it', async (t) => {
  const namespace = 'prh-upgrade'
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<object> => {
    reply.header('x-request-id', request.id)
    return { dose: '75 mg' }
  }
  // The release before: the handler's id is the response's, stored with it.
  const before = Fastify({ genReqId: () => randomUUID() })
  await before.register(responseCache, { store: 'redis', redis, namespace, timeout: 2000 })
  before.get('/dose', { config: { cache: true } }, handler)
  // One host for both: the key holds it, and each app listens on a port of its own.
  const host = { host: 'pharmacy.example' }
  const first = await (await serve(t, before))('/dose', { headers: host })
  t.ok(await stored(before, 1))
  t.ok((await storedBytes(namespace)).includes(first.header('x-request-id') as string), 'stored with the first request\'s id')

  // The same route, now naming it: a hit keeps what its own hooks set, or has none.
  const after = Fastify({ genReqId: () => randomUUID() })
  await after.register(responseCache, { store: 'redis', redis, namespace, timeout: 2000, perRequestHeaders: ['x-request-id'] })
  after.addHook('onRequest', async (request, reply) => {
    if (request.headers['x-trace'] !== 'off') reply.header('x-request-id', 'own-' + request.id)
  })
  after.get('/dose', { config: { cache: true } }, handler)
  const get = await serve(t, after)
  const hit = await get('/dose', { headers: host })
  t.equal(hit.header('x-cache'), 'HIT')
  t.match(hit.header('x-request-id'), /^own-/, 'its own id, not the stored one')
  const untraced = await get('/dose', { headers: { ...host, 'x-trace': 'off' } })
  t.equal(untraced.header('x-cache'), 'HIT')
  t.equal(untraced.header('x-request-id'), undefined)
})

t.test('a hook\'s header that the handler changes is the response\'s: stored, and a hit answers it as the miss did', async (t) => {
  const app = Fastify()
  await app.register(responseCache)
  app.addHook('onRequest', async (_request, reply) => { reply.header('content-security-policy', "default-src 'self'") })
  app.get('/embed', { config: { cache: true } }, async (_request, reply) => {
    reply.header('content-security-policy', "frame-ancestors 'none'")
    return 'embed'
  })
  const get = await serve(t, app)
  const miss = await get('/embed')
  const hit = await get('/embed')
  t.equal(hit.header('x-cache'), 'HIT')
  t.equal(hit.header('content-security-policy'), miss.header('content-security-policy'))
  t.equal(hit.header('content-security-policy'), "frame-ancestors 'none'")
})

t.test('headers that describe the response stay with it, whoever set them: a content-type set by a hook', async (t) => {
  const app = Fastify()
  await app.register(responseCache)
  requestIds(app)
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers['x-trace'] !== 'off') reply.type('application/vnd.api+json')
  })
  app.get('/api/drugs', { config: { cache: true } }, async () => Buffer.from('{"data":[]}'))
  const get = await serve(t, app)
  t.equal((await get('/api/drugs')).header('content-type'), 'application/vnd.api+json')
  const hit = await get('/api/drugs', { headers: { 'x-trace': 'off' } })
  t.equal(hit.header('x-cache'), 'HIT')
  t.equal(hit.header('content-type'), 'application/vnd.api+json', 'stored, though set before the lookup')
  t.equal(hit.header('x-request-id'), undefined)
})

t.test('maxEntryBytes counts what is stored: a large per-request header does not make a response too large', async (t) => {
  const app = Fastify()
  await app.register(responseCache, { maxEntryBytes: 1024 })
  // A policy computed per request (its report address names the request). One with a nonce would be
  // the body's (rules/per-request.ts): the page carries the nonce.
  app.addHook('onRequest', async (_request, reply) => {
    const hosts = Array.from({ length: 40 }, (_, i) => `https://cdn${i}.pharmacy.example`).join(' ')
    reply.header('content-security-policy', `script-src ${hosts}; report-uri https://reports.example/${randomUUID()}`)
  })
  app.get('/buffered', { config: { cache: true } }, async () => 'x'.repeat(100))
  app.get('/streamed', { config: { cache: true } }, async (_request, reply) => await reply.type('text/plain').send(Readable.from([Buffer.from('x'.repeat(100))])))
  const get = await serve(t, app)
  for (const path of ['/buffered', '/streamed']) {
    const miss = await get(path)
    t.ok((miss.header('content-security-policy') as string).length > 1024, `${path}: the header alone passes the bound`)
    t.ok(await eventually(() => app.cache.stats().routes[`GET ${path}`].stores === 1), `${path}: stored`)
    t.equal((await get(path)).header('x-cache'), 'HIT')
  }
})

t.test('perRequestHeaders is checked at ready(), naming the option', async (t) => {
  const readyWith = async (plugin: unknown, route: unknown = true): Promise<void> => {
    const app = Fastify()
    try {
      await app.register(responseCache, plugin as ResponseCacheOptions)
      app.get('/r', { config: { cache: route as true } }, async () => 'r')
      await app.ready()
    } finally {
      await app.close()
    }
  }
  await t.rejects(readyWith({ perRequestHeaders: 'x-request-id' }), {
    code: 'FST_RESPONSE_CACHE_INVALID_OPTION',
    message: 'fastify-response-cache: invalid option "perRequestHeaders": expected an array of response header names, got "x-request-id"'
  })
  await t.rejects(readyWith({ perRequestHeaders: ['x request id'] }), { message: /"perRequestHeaders": expected an array of response header names, got an array/ })
  await t.rejects(readyWith({ perRequestHeaders: ['x-request-id', 'ETag'] }), {
    code: 'FST_RESPONSE_CACHE_INVALID_OPTION',
    message: /invalid option "perRequestHeaders": may not list "etag": it describes the stored response/
  })
  await t.rejects(readyWith({}, { perRequestHeaders: ['Content-Type'] }), {
    code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG',
    message: /invalid config\.cache on route "GET \/r": "perRequestHeaders" may not list "content-type"/
  })
  await t.rejects(readyWith({}, { perRequestHeaders: [1] }), { message: /"perRequestHeaders" expected an array of response header names/ })
  await t.resolves(readyWith({ perRequestHeaders: ['X-Request-Id', 'x-request-id'] }, { perRequestHeaders: ['server-timing'] }))
})

// purgeRoute: POST <path> { tags, routes, urls, tenant, soft } and PURGE <url>, behind a guard, on
// memory, Redis, a Redis Cluster and three tiered instances sharing one Redis.
import Fastify, { type FastifyInstance, type onRequestHookHandler } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { eventually } from './helpers/events.js'
import { freePort, spawnRedis } from './helpers/redis.js'
import { storeKinds } from './helpers/stores.js'

type Tap = import('tap').Test

const TOKEN = 'Bearer purge-s3cret'
const guard: onRequestHookHandler = async (request, reply) => {
  if (request.headers.authorization !== TOKEN) await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'Unauthorized' })
}
const auth = { authorization: TOKEN, 'content-type': 'application/json' }

/** Items tagged by id, a search keyed by its body, a tenant from `x-tenant`; the purge route and PURGE. */
const runs = counter()

async function purgeApp (t: Tap, options: ResponseCacheOptions, server = {}): Promise<FastifyInstance> {
  const app = await cachedApp(t, {
    tenant: (request) => request.headers['x-tenant'] as string | undefined,
    purgeRoute: { onRequest: guard, purgeMethod: true },
    ...options
  }, server)
  app.get<{ Params: { id: string } }>('/items/:id', { config: { cache: { ttl: 600, tags: (request) => [`item:${(request.params as { id: string }).id}`] } } },
    async (request) => ({ id: request.params.id, run: runs.next() }))
  app.post('/search', { config: { cache: { ttl: 600 } } }, async () => ({ run: runs.next() }))
  await app.ready()
  return app
}

const status = async (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<string> =>
  (await app.inject({ url, headers, ...(url === '/search' ? { method: 'POST', payload: { q: 1 } } : {}) })).headers['x-cache'] as string
/** Until the entry of `url` is a hit: a remote store is written after the answer. */
const stored = async (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<boolean> => {
  await status(app, url, headers)
  return await eventually(async () => await status(app, url, headers) === 'HIT')
}
const purge = async (app: FastifyInstance, body: unknown, headers: Record<string, string> = auth): Promise<{ status: number, body: any, headers: Record<string, unknown> }> => {
  const answer = await app.inject({ method: 'POST', url: '/cache/purge', headers, payload: JSON.stringify(body) })
  return { status: answer.statusCode, body: answer.json(), headers: answer.headers }
}
const PAGES = ['/items/1', '/items/1?page=2', '/items/2', '/search']

async function purgesWhatItNames (t: Tap, options: () => ResponseCacheOptions): Promise<void> {
  const app = await purgeApp(t, options())
  for (const page of PAGES) t.ok(await stored(app, page), `${page} stored`)

  // No token, a wrong one: refused by the guard, nothing dropped.
  for (const headers of [{ 'content-type': 'application/json' }, { ...auth, authorization: 'Bearer nope' }]) {
    t.equal((await purge(app, { tags: ['item:1'] }, headers)).status, 401)
    t.equal((await app.inject({ method: 'PURGE', url: '/items/1', headers })).statusCode, 401)
  }
  for (const page of PAGES) t.equal(await status(app, page), 'HIT', `${page}: still there`)

  const byTag = await purge(app, { tags: ['item:2', 'unknown'] })
  t.same([byTag.status, byTag.body], [200, { purged: 1, soft: false }])
  t.equal(byTag.headers['cache-control'], 'no-store')
  t.equal(await status(app, '/items/2'), 'MISS')
  t.same((await purge(app, { urls: ['/items/1'] })).body, { purged: 2, soft: false }, 'a URL: every query of its path')
  t.equal(await status(app, '/items/1?page=2'), 'MISS')
  t.same((await purge(app, { routes: ['/search'] })).body, { purged: 1, soft: false }, 'a route, every method')
  t.equal(await status(app, '/search'), 'MISS')

  t.ok(await stored(app, '/items/1'))
  t.ok(await stored(app, '/items/2'))
  const purged = await app.inject({ method: 'PURGE', url: '/items/1?whatever', headers: { authorization: TOKEN } })
  t.same([purged.statusCode, purged.json()], [200, { purged: 2, soft: false }], 'PURGE on a URL: /items/1 and /items/1?page=2, stored again above')
  t.equal(await status(app, '/items/1'), 'MISS')
  t.equal(await status(app, '/items/2'), 'HIT', 'and no other')
  t.same((await purge(app, { urls: ['http://localhost/items/2'] })).body, { purged: 1, soft: false }, 'an absolute URL, its default port left out')
  t.equal((await app.inject({ method: 'PURGE', url: '/items/nothing', headers: { authorization: TOKEN } })).json().purged, 0)
}

const kinds = await storeKinds(t)
for (const [name, options] of kinds) {
  t.test(`${name}: the purge route and PURGE drop what they name, behind the guard`, async (t) => { await purgesWhatItNames(t, options) })
}

/** `soft: true` in the body, and Fastly's `Fastly-Soft-Purge: 1` on PURGE: marked, answered STALE while one refresh runs. */
async function softPurgesMark (t: Tap, options: () => ResponseCacheOptions): Promise<void> {
  const app = await purgeApp(t, { ...options(), staleWhileRevalidate: 600 })
  const body = async (url: string): Promise<{ cache: unknown, run: number }> => {
    const answer = await app.inject(url)
    return { cache: answer.headers['x-cache'], run: answer.json().run }
  }
  for (const url of ['/items/1', '/items/2']) t.ok(await stored(app, url), `${url} stored`)
  const before = [(await body('/items/1')).run, (await body('/items/2')).run]

  t.same((await purge(app, { tags: ['item:1'], soft: true })).body, { purged: 1, soft: true })
  t.same(await body('/items/1'), { cache: 'STALE', run: before[0] }, 'marked, not dropped: the old answer, stale')
  t.ok(await eventually(async () => { const now = await body('/items/1'); return now.cache === 'HIT' && now.run !== before[0] }), 'refreshed')
  t.same(await body('/items/2'), { cache: 'HIT', run: before[1] }, 'another tag: untouched')

  const purged = await app.inject({ method: 'PURGE', url: '/items/2', headers: { authorization: TOKEN, 'fastly-soft-purge': '1' } })
  t.same(purged.json(), { purged: 1, soft: true }, 'PURGE with Fastly-Soft-Purge: 1')
  t.same(await body('/items/2'), { cache: 'STALE', run: before[1] })
  const hard = await app.inject({ method: 'PURGE', url: '/items/2', headers: { authorization: TOKEN, 'fastly-soft-purge': '0' } })
  t.same(hard.json().soft, false, 'any other value: a purge')
}

for (const [name, options] of kinds) {
  t.test(`${name}: a soft purge through the route or PURGE marks the entries stale`, async (t) => { await softPurgesMark(t, options) })
}

t.test('Redis Cluster: the purge route and PURGE drop what they name', async (t) => {
  const cluster = await startCluster(t)
  await purgesWhatItNames(t, () => ({ store: 'redis', redis: cluster, namespace: 'purge-cluster', timeout: 2000 }))
})

t.test('three tiered instances: a purge through the route of one is seen by the others', async (t) => {
  const port = await freePort()
  const server = await spawnRedis(port)
  t.teardown(server.kill)
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 3; i++) {
    // As the README shows it: a client straight from `new Redis(url)`, still connecting at register.
    const redis = new Redis(`redis://127.0.0.1:${port}`)
    redis.on('error', () => {})
    t.teardown(() => { redis.disconnect() })
    apps.push(await purgeApp(t, { store: 'tiered', redis, namespace: 'tiered-purge' }))
  }
  const [a, b, c] = apps
  for (const app of apps) t.ok(await stored(app, '/items/1'), 'in every memory tier')
  for (const app of apps) t.ok(await stored(app, '/items/2'))
  // Another instance may store it again at once: gone is an answer of another run of the handler.
  const changed = async (app: FastifyInstance, url: string, before: unknown): Promise<boolean> => await eventually(async () => (await app.inject(url)).json().run !== before)
  const first = [(await a.inject('/items/1')).json().run, (await a.inject('/items/2')).json().run]
  t.same((await purge(a, { tags: ['item:1'] })).body, { purged: 1, soft: false })
  for (const app of [b, c]) t.ok(await changed(app, '/items/1', first[0]), 'gone from the others\' memory')
  t.equal((await b.inject({ method: 'PURGE', url: '/items/2', headers: { authorization: TOKEN } })).json().purged, 1)
  for (const app of [a, c]) t.ok(await changed(app, '/items/2', first[1]), 'PURGE on one, gone from the others')
})

t.test('a tenant\'s purge never drops another tenant\'s entries', async (t) => {
  for (const [name, options] of kinds) {
    const app = await purgeApp(t, options())
    const of = (tenant: string): Record<string, string> => ({ 'x-tenant': tenant })
    for (const tenant of ['a', 'b']) t.ok(await stored(app, '/items/1', of(tenant)))
    t.same((await purge(app, { tags: ['item:1'], tenant: 'a' })).body, { purged: 1, soft: false }, `${name}: the body's tenant`)
    t.equal(await status(app, '/items/1', of('b')), 'HIT', `${name}: b's entry stays`)
    t.ok(await stored(app, '/items/1', of('a')))
    const other = await purge(app, { urls: ['/items/1'], tenant: 'a' }, { ...auth, ...of('b') })
    t.same([other.status, other.body.message], [403, 'a request of one tenant purges that tenant\'s entries only'], `${name}: b's request naming a`)
    t.equal(await status(app, '/items/1', of('a')), 'HIT', `${name}: nothing dropped`)
    t.same((await purge(app, { urls: ['/items/1'] }, { ...auth, ...of('b') })).body, { purged: 1, soft: false }, `${name}: b's request, b's entries`)
    t.equal(await status(app, '/items/1', of('a')), 'HIT')
    const purged = await app.inject({ method: 'PURGE', url: '/items/1', headers: { authorization: TOKEN, ...of('a') } })
    t.equal(purged.json().purged, 1, `${name}: PURGE within the request's tenant`)
    t.equal(await status(app, '/items/1', of('a')), 'MISS')
    t.ok(await stored(app, '/items/1', of('b')))
    t.same((await purge(app, { tenant: 'b' })).body, { purged: 1, soft: false }, `${name}: a tenant alone: all of it`)
  }
})

t.test('the body is checked as it came, no field dropped or coerced: 400 as Fastify answers it, nothing dropped', async (t) => {
  const app = await purgeApp(t, {})
  t.ok(await stored(app, '/items/1'))
  const bad: Array<[unknown, RegExp]> = [
    [{}, /^body Expected object to have at least 1 properties/],
    [{ soft: 'maybe' }, /^body\/soft Expected boolean/],
    [{ soft: 1, tags: ['item:1'] }, /^body\/soft Expected boolean/],
    // A typo is not dropped: `tenant` alone would purge the whole tenant.
    [{ tag: ['item:1'], tenant: 'a' }, /^body\/tag Unexpected property/],
    [{ tags: 'item:1' }, /^body\/tags Expected array/],
    [{ tags: [''] }, /^body\/tags\/0 Expected string length greater or equal to 1/],
    [{ tags: ['x'.repeat(257)] }, /^body\/tags\/0 Expected string length less or equal to 256/],
    [{ tags: ['é'.repeat(200)] }, /at most 256 bytes/],
    [{ urls: Array.from({ length: 1001 }, () => '/x') }, /^body\/urls Expected array length to be less or equal to 1000/],
    [{ urls: ['ftp://example.com/items/1'] }, /^body\/urls: expected paths/],
    [{ urls: ['items/1'] }, /^body\/urls: expected paths/],
    [{ tenant: 7 }, /^body\/tenant Expected string/],
    [[], /^body Expected object/]
  ]
  for (const [body, message] of bad) {
    const answer = await purge(app, body)
    t.equal(answer.status, 400, JSON.stringify(body).slice(0, 60))
    t.match(answer.body.message, message)
  }
  t.equal(await status(app, '/items/1'), 'HIT')
  t.same((await purge(app, { soft: true })).body, { purged: 0, soft: true }, 'soft is taken; alone it selects nothing')
  t.same((await purge(app, { tags: ['item:1'], soft: false })).body, { purged: 1, soft: false })
})

t.test('the store failing: 503 with a clear body, not a 500', async (t) => {
  const port = await freePort()
  const server = await spawnRedis(port)
  t.teardown(server.kill)
  const redis = new Redis(`redis://127.0.0.1:${port}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })
  const app = await purgeApp(t, { store: 'redis', redis })
  await server.kill()
  const answer = await purge(app, { tags: ['item:1'] })
  t.same([answer.status, answer.body], [503, { error: 'Service Unavailable', message: 'the cache store could not be asked: nothing was purged' }])
  t.equal((await app.inject({ method: 'PURGE', url: '/items/1', headers: { authorization: TOKEN } })).statusCode, 503)
})

t.test('a guard is required: ready() fails naming purgeRoute, unless public', async (t) => {
  const refused: Array<[unknown, RegExp]> = [
    [{}, /"purgeRoute": drops entries: give purgeRoute.onRequest a guard, or set purgeRoute.public: true/],
    [{ onRequest: [], purgeMethod: true }, /"purgeRoute": drops entries/],
    [{ public: false, path: '/purge' }, /"purgeRoute": drops entries/],
    [true, /"purgeRoute": expected an object/],
    [{ public: true, path: 'purge' }, /"purgeRoute.path": expected a path starting with "\/"/],
    [{ public: true, purgeMethod: 'yes' }, /"purgeRoute.purgeMethod": expected a boolean/],
    [{ public: true, methods: ['PURGE'] }, /"purgeRoute.methods": is not a known option/]
  ]
  for (const [purgeRoute, message] of refused) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(responseCache, { purgeRoute: purgeRoute as never })
    await app.ready().then(() => t.fail('ready'), (error: unknown) => { t.match(error, { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message }) })
  }
  const open = await purgeApp(t, { purgeRoute: { public: true, path: '/ops/purge', purgeMethod: true } })
  t.ok(await stored(open, '/items/1'))
  t.equal((await open.inject({ method: 'POST', url: '/ops/purge', payload: { tags: ['item:1'] } })).json().purged, 1, 'public: no guard needed')
  t.equal((await open.inject({ method: 'POST', url: '/cache/purge', payload: { tags: ['item:1'] } })).statusCode, 404, 'at its own path')
  const noMethod = await purgeApp(t, { purgeRoute: { onRequest: guard } })
  t.equal((await noMethod.inject({ method: 'PURGE', url: '/items/1', headers: { authorization: TOKEN } })).statusCode, 404, 'PURGE only with purgeMethod')
})

t.test('over a real socket, from a browser: the guard decides; a cross-site form cannot purge', async (t) => {
  const { lines, logger } = logCapture('info')
  const session: onRequestHookHandler = async (request, reply) => {
    if (request.headers.cookie !== 'admin-session=ok') await reply.code(403).send({ error: 'Forbidden' })
  }
  const app = await purgeApp(t, { purgeRoute: { onRequest: session, purgeMethod: true } }, { logger })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  // Keyed and grouped by the Host the socket's clients send.
  const host = { host: new URL(address).host }
  t.ok(await stored(app, '/items/1', host))
  const browser = {
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
    accept: '*/*',
    'accept-language': 'en-GB,en;q=0.9',
    'accept-encoding': 'gzip, deflate, br, zstd',
    origin: address,
    referer: `${address}/admin`,
    'sec-fetch-site': 'same-origin',
    'sec-fetch-mode': 'cors',
    'sec-fetch-dest': 'empty'
  }
  const send = async (method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number, text: string }> => {
    const answer = await request(address + path, { method: method as 'POST', headers, body })
    return { status: answer.statusCode, text: await answer.body.text() }
  }
  t.equal((await send('POST', '/cache/purge', { ...browser, 'content-type': 'application/json' }, '{"tags":["item:1"]}')).status, 403, 'no session')
  t.equal((await send('PURGE', '/items/1', browser)).status, 403)
  const form = await send('POST', '/cache/purge', { ...browser, cookie: 'admin-session=ok', 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' }, 'tags=item%3A1')
  t.equal(form.status, 415, 'a form post, which another site can make a browser send, is not JSON')
  t.equal(await status(app, '/items/1', host), 'HIT', 'nothing dropped')
  const fetched = await send('POST', '/cache/purge', { ...browser, cookie: 'admin-session=ok', 'content-type': 'application/json' }, '{"tags":["item:1"]}')
  t.same([fetched.status, JSON.parse(fetched.text)], [200, { purged: 1, soft: false }])
  t.ok(await stored(app, '/items/1', host))
  const purged = await send('PURGE', '/items/1', { ...browser, cookie: 'admin-session=ok' })
  t.same([purged.status, JSON.parse(purged.text)], [200, { purged: 1, soft: false }], 'the PURGE method over HTTP/1.1')
  const logged = lines.filter((line) => line.msg === 'response cache: purged')
  t.same(logged.map((line) => line.responseCache), [
    { purge: { tags: 1, routes: 0, urls: 0, tenant: false, soft: false, purged: 1 } },
    { purge: { tags: 0, routes: 0, urls: 1, tenant: false, soft: false, purged: 1 } }
  ], 'how many of each, never the tags or URLs')
  t.notMatch(JSON.stringify(logged), /item:1/)
})

t.test('an app that has PURGE already keeps it; the purge route is never cached', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.addHttpMethod('PURGE')
  await app.register(responseCache, { purgeRoute: { onRequest: guard, purgeMethod: true }, statsRoute: true })
  await app.ready()
  t.equal((await app.inject({ method: 'PURGE', url: '/anything', headers: { authorization: TOKEN } })).json().purged, 0)
  await purge(app, { tags: ['x'] })
  t.same(Object.keys(app.cache.stats().routes), [], 'no cached route')
})

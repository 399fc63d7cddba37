import type { FastifyInstance, FastifyReply } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { pathGroup, selectorTags } from '../lib/tags.js'
import { cachedApp, logCapture } from './helpers/app.js'

// What an invalidation after a write drops, rule by rule (docs/API.md, "Invalidation"): each test
// changes one thing and looks at the entries through requests, as an app's users would.

type Params = { id: string }
type Query = { status?: string, location?: string, contentLocation?: string }

interface Shop { app: FastifyInstance, runs: () => number }

/**
 * GET /items/:id is cached (tagged item:<id>); every write route answers the status and headers its
 * query asks for, and none names a tag unless the test adds one.
 */
async function shop (t: Parameters<typeof cachedApp>[0], options: Parameters<typeof cachedApp>[1] = {}, server: Parameters<typeof cachedApp>[2] = {}): Promise<Shop> {
  const app = await cachedApp(t, options, server)
  let runs = 0
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as Params).id}`] } } }, async (request) => ({ id: (request.params as Params).id, run: ++runs }))
  const write = async (request: { query: unknown }, reply: FastifyReply): Promise<void> => {
    const query = request.query as Query
    if (query.location !== undefined) reply.header('location', query.location)
    if (query.contentLocation !== undefined) reply.header('content-location', query.contentLocation)
    await reply.code(query.status === undefined ? 200 : Number(query.status)).send('done')
  }
  for (const method of ['PUT', 'PATCH', 'POST', 'DELETE'] as const) app.route({ method, url: '/items/:id', handler: write })
  app.post('/orders', write)
  return { app, runs: () => runs }
}

const xCache = async (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<string | undefined> =>
  (await app.inject({ url, headers })).headers['x-cache'] as string | undefined

/** Caches /items/1 and /items/2 and checks both are hits. */
async function fill (t: Test, app: FastifyInstance, headers: Record<string, string> = {}): Promise<void> {
  for (const url of ['/items/1', '/items/2']) {
    await xCache(app, url, headers)
    t.equal(await xCache(app, url, headers), 'HIT', `${url} cached`)
  }
}

t.test('each unsafe method drops the GET entries of its own path, with no configuration, and no other path', async (t) => {
  const { app } = await shop(t)
  for (const method of ['PUT', 'PATCH', 'POST', 'DELETE']) {
    await fill(t, app)
    const write = await app.inject({ method, url: '/items/1' })
    t.equal(write.statusCode, 200)
    t.equal(write.body, 'done', `${method}: the answer goes out unchanged`)
    t.equal(await xCache(app, '/items/1'), 'MISS', `${method} drops its path`)
    t.equal(await xCache(app, '/items/2'), 'HIT', `${method} leaves another path`)
  }
})

t.test('every non-error answer (2xx, 3xx) drops its path (RFC 9111 section 4.4); 4xx and 5xx drop nothing', async (t) => {
  const { app } = await shop(t)
  for (const status of [200, 201, 204, 299, 300, 301, 303, 304, 399]) {
    await fill(t, app)
    t.equal((await app.inject({ method: 'PUT', url: `/items/1?status=${status}` })).statusCode, status)
    t.equal(await xCache(app, '/items/1'), 'MISS', `${status} drops`)
  }
  await fill(t, app)
  for (const status of [400, 404, 409, 499, 500, 503]) {
    t.equal((await app.inject({ method: 'PUT', url: `/items/1?status=${status}` })).statusCode, status)
    t.equal(await xCache(app, '/items/1'), 'HIT', `${status} drops nothing`)
  }
})

t.test('a GET route with invalidate drops its tags, never its own path', async (t) => {
  const { app } = await shop(t)
  let runs = 0
  app.get('/refresh/:id', { config: { cache: { ttl: 60, invalidate: (request) => [`item:${(request.params as Params).id}`] } } }, async () => ({ run: ++runs }))
  await fill(t, app)
  t.equal(await xCache(app, '/refresh/1'), 'MISS')
  t.equal(await xCache(app, '/items/1'), 'MISS', 'its invalidate tag is dropped')
  t.equal(await xCache(app, '/items/2'), 'HIT')
  t.equal(await xCache(app, '/refresh/1'), 'HIT', 'a GET is not a write: its own entry stays')
  t.equal(runs, 1)
})

t.test('location and content-location: the same host only, query and default port ignored', async (t) => {
  const { app } = await shop(t)
  const cases: Array<[string, string, string | undefined]> = [
    // [query of the POST /orders, the item path it names, what GET of it answers next]
    ['location=/items/1', '/items/1', 'MISS'],
    ['contentLocation=/items/1', '/items/1', 'MISS'],
    ['location=/items/1%3Fview%3Dfull', '/items/1', 'MISS'],
    ['location=http%3A%2F%2Flocalhost%2Fitems%2F1', '/items/1', 'MISS'],
    ['location=http%3A%2F%2Flocalhost%3A80%2Fitems%2F1', '/items/1', 'MISS'],
    ['location=items%2F1', '/items/1', 'MISS'],
    ['location=http%3A%2F%2Fother.example%2Fitems%2F1', '/items/1', 'HIT'],
    ['contentLocation=http%3A%2F%2Fother.example%2Fitems%2F1', '/items/1', 'HIT'],
    ['location=http%3A%2F%2Flocalhost%3A8080%2Fitems%2F1', '/items/1', 'HIT'],
    ['location=http%3A%2F%2F%5B%2Fitems%2F1', '/items/1', 'HIT'],
    ['location=/items/2&contentLocation=/items/1', '/items/1', 'MISS'],
    ['location=/items/2&contentLocation=/items/1', '/items/2', 'MISS']
  ]
  for (const [query, path, expected] of cases) {
    await fill(t, app)
    const write = await app.inject({ method: 'POST', url: `/orders?${query}` })
    t.equal(write.statusCode, 200, query)
    t.equal(await xCache(app, path), expected, `${query}: ${path}`)
  }
})

t.test('a redirect after a write (POST, 303, location) drops the location; an error answer\'s location drops nothing', async (t) => {
  const { app } = await shop(t)
  await fill(t, app)
  await app.inject({ method: 'POST', url: '/orders?status=303&location=/items/1' })
  t.equal(await xCache(app, '/items/1'), 'MISS', 'post/redirect/get reads the new state')
  t.equal(await xCache(app, '/items/2'), 'HIT')
  await fill(t, app)
  await app.inject({ method: 'POST', url: '/orders?status=409&location=/items/1' })
  t.equal(await xCache(app, '/items/1'), 'HIT')
})

t.test('an answer from the cache never invalidates: a POST hit drops neither its tags nor its path', async (t) => {
  const { app } = await shop(t)
  let runs = 0
  app.post('/items/:id/search', { config: { cache: { ttl: 60, invalidate: ['item:2'] } } }, async () => ({ run: ++runs }))
  t.equal((await app.inject({ method: 'POST', url: '/items/1/search', payload: { q: 1 } })).headers['x-cache'], 'MISS')
  await fill(t, app)
  const hit = await app.inject({ method: 'POST', url: '/items/1/search', payload: { q: 1 } })
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(await xCache(app, '/items/2'), 'HIT', 'the hit did not drop its invalidate tag')
  const miss = await app.inject({ method: 'POST', url: '/items/1/search', payload: { q: 2 } })
  t.equal(miss.headers['x-cache'], 'MISS')
  t.equal(await xCache(app, '/items/2'), 'MISS', 'the handler\'s answer did')
  t.equal(runs, 2)
})

t.test('a stale answer never invalidates either', async (t) => {
  const { app } = await shop(t)
  app.post('/items/:id/search', { config: { cache: { ttl: 0.05, staleWhileRevalidate: 600, invalidate: ['item:2'] } } }, async () => 'found')
  await app.inject({ method: 'POST', url: '/items/1/search', payload: { q: 1 } })
  await fill(t, app)
  // Past the 50 ms TTL (time is the contract here), well inside the 600 s stale window.
  await sleep(200)
  const stale = await app.inject({ method: 'POST', url: '/items/1/search', payload: { q: 1 } })
  t.equal(stale.headers['x-cache'], 'STALE')
  t.equal(await xCache(app, '/items/2'), 'HIT')
})

t.test('writes drop within the writer\'s tenant; a tenant function that throws drops every tenant\'s', async (t) => {
  const { app } = await shop(t, {
    tenant: (request) => {
      if (request.headers['x-tenant'] === 'broken') throw new Error('no tenant')
      return request.headers['x-tenant'] as string | undefined
    }
  })
  const tenants: Array<Record<string, string>> = [{}, { 'x-tenant': 'acme' }, { 'x-tenant': 'globex' }]
  for (const headers of tenants) await fill(t, app, headers)
  await app.inject({ method: 'PUT', url: '/items/1', headers: { 'x-tenant': 'acme' } })
  t.equal(await xCache(app, '/items/1', { 'x-tenant': 'acme' }), 'MISS', 'the writer\'s tenant')
  t.equal(await xCache(app, '/items/1', { 'x-tenant': 'globex' }), 'HIT', 'another tenant')
  t.equal(await xCache(app, '/items/1'), 'HIT', 'no tenant is a tenant of its own')
  // Entries of no tenant are recorded in the every-tenant sets only, so a write of no tenant drops
  // the path for every tenant: more than it must, never less.
  await app.inject({ method: 'PUT', url: '/items/2' })
  t.equal(await xCache(app, '/items/2'), 'MISS')
  t.equal(await xCache(app, '/items/2', { 'x-tenant': 'acme' }), 'MISS')

  for (const headers of tenants) await fill(t, app, headers)
  const write = await app.inject({ method: 'PUT', url: '/items/1', headers: { 'x-tenant': 'broken' } })
  t.equal(write.statusCode, 200)
  for (const headers of tenants) t.equal(await xCache(app, '/items/1', headers), 'MISS', `dropped for ${JSON.stringify(headers)}`)
  t.equal(await xCache(app, '/items/2', { 'x-tenant': 'acme' }), 'HIT')
})

t.test('a route\'s invalidate tags are dropped within the tenant too', async (t) => {
  const { app } = await shop(t, { tenant: (request) => request.headers['x-tenant'] as string | undefined })
  app.post('/restock', { config: { cache: { invalidate: ['item:2'] } } }, async () => 'ok')
  for (const headers of [{ 'x-tenant': 'acme' }, { 'x-tenant': 'globex' }]) await fill(t, app, headers)
  await app.inject({ method: 'POST', url: '/restock', headers: { 'x-tenant': 'acme' } })
  t.equal(await xCache(app, '/items/2', { 'x-tenant': 'acme' }), 'MISS')
  t.equal(await xCache(app, '/items/2', { 'x-tenant': 'globex' }), 'HIT')
  t.equal(await xCache(app, '/items/1', { 'x-tenant': 'acme' }), 'HIT', 'its own path /restock is not /items/1')
})

t.test('an invalidate function that throws still lets the write drop its own path', async (t) => {
  const { lines, logger } = logCapture('warn')
  const { app } = await shop(t, {}, { logger })
  app.delete('/items/:id/tags', { config: { cache: { invalidate: () => { throw new Error('boom') } } } }, async () => 'gone')
  app.put('/items/:id/tags', { config: { cache: { invalidate: () => { throw new Error('boom') } } } }, async (request, reply) => await reply.header('location', '/items/2').send('ok'))
  await fill(t, app)
  const write = await app.inject({ method: 'PUT', url: '/items/1/tags' })
  t.equal(write.body, 'ok')
  t.equal(await xCache(app, '/items/2'), 'MISS', 'the path in its location is dropped')
  t.equal(await xCache(app, '/items/1'), 'HIT')
  const warned = lines.filter((line) => line.msg === 'response cache invalidate function threw')
  t.equal(warned.length, 1)
  t.match(warned[0], { level: 40, responseCache: { route: 'PUT /items/:id/tags' }, err: { message: 'boom' } })
})

t.test('the debug log says how many entries a write dropped', async (t) => {
  const { lines, logger } = logCapture('debug')
  const { app } = await shop(t, {}, { logger })
  await xCache(app, '/items/1')
  await xCache(app, '/items/1?view=full')
  await app.inject({ method: 'PATCH', url: '/items/1' })
  await app.inject({ method: 'PATCH', url: '/items/3' })
  const dropped = lines.filter((line) => line.msg === 'response cache: invalidated after a write')
  t.match(dropped, [
    { level: 20, responseCache: { route: 'PATCH /items/:id', dropped: 2 } },
    { level: 20, responseCache: { route: 'PATCH /items/:id', dropped: 0 } }
  ])
  t.equal(dropped.length, 2)
})

t.test('a store that answers invalidations in place, or with a promise, is waited for before the answer', async (t) => {
  for (const async of [false, true]) {
    const dropped: string[][] = []
    const store = {
      name: 'recording',
      get: () => undefined,
      set: () => {},
      delete: () => false,
      invalidateTags: (tags: readonly string[]) => {
        dropped.push([...tags])
        return async ? Promise.resolve(3) : 3
      },
      clear: () => {}
    }
    const { lines, logger } = logCapture('debug')
    const { app } = await shop(t, { store }, { logger })
    const write = await app.inject({ method: 'DELETE', url: '/items/1' })
    t.equal(write.statusCode, 200)
    t.equal(dropped.length, 1, `async ${String(async)}: one call, made before the answer`)
    t.equal(dropped[0].length, 1, 'one path group of no tenant')
    t.match(dropped[0][0], /^g:p:[A-Za-z0-9_-]{22}$/)
    t.match(lines.find((line) => line.msg === 'response cache: invalidated after a write'), { responseCache: { dropped: 3 } })
    t.equal(app.cache.stats().total.errors, 0)
  }
})

t.test('a throwing invalidate function adds no tag to what is dropped: only the paths the write changed', async (t) => {
  const asked: string[][] = []
  const store = {
    name: 'recording',
    get: () => undefined,
    set: () => {},
    delete: () => false,
    invalidateTags: (tags: readonly string[]) => { asked.push([...tags]); return 0 },
    clear: () => {}
  }
  const { app } = await shop(t, { store })
  app.put('/things/:id', { config: { cache: { invalidate: () => { throw new Error('boom') } } } }, async () => 'ok')
  await app.inject({ method: 'PUT', url: '/things/1' })
  t.equal(asked.length, 1)
  t.same(asked[0], selectorTags({ groups: [pathGroup('localhost:80', '/things/1')] }), 'the path group alone')
})

t.test('an informational status is no success: nothing is dropped', async (t) => {
  const { app } = await shop(t)
  await fill(t, app)
  const write = await app.inject({ method: 'PUT', url: '/items/1?status=199' })
  t.equal(write.statusCode, 199)
  t.equal(await xCache(app, '/items/1'), 'HIT')
})

t.test('a store that fails the invalidation is logged naming the call', async (t) => {
  const { lines, logger } = logCapture('warn')
  const store = {
    name: 'failing',
    get: () => undefined,
    set: () => {},
    delete: () => false,
    invalidateTags: () => { throw new Error('store down') },
    clear: () => {}
  }
  const { app } = await shop(t, { store }, { logger })
  t.equal((await app.inject({ method: 'DELETE', url: '/items/1' })).statusCode, 200)
  t.ok(lines.some((line) => (line.responseCache as { operation?: string } | undefined)?.operation === 'invalidateTags'), 'the warn line names invalidateTags')
})

t.test('every method not known to be safe drops its path: custom methods too; safe methods drop nothing', async (t) => {
  const { app } = await shop(t)
  const custom = ['PURGE', 'LOCK', 'MKCOL', 'M-SEARCH']
  const safe = ['PROPFIND', 'REPORT', 'SEARCH']
  for (const method of [...custom, ...safe]) app.addHttpMethod(method, { hasBody: method === 'MKCOL' })
  const write = async (_request: unknown, reply: FastifyReply): Promise<void> => { await reply.send('done') }
  app.route({ method: [...custom, ...safe, 'OPTIONS', 'TRACE', 'QUERY'], url: '/items/:id', handler: write })
  for (const method of custom) {
    await fill(t, app)
    t.equal((await app.inject({ method: method as 'GET', url: '/items/1' })).statusCode, 200)
    t.equal(await xCache(app, '/items/1'), 'MISS', `${method} drops its path`)
    t.equal(await xCache(app, '/items/2'), 'HIT', `${method} leaves another path`)
  }
  await fill(t, app)
  for (const method of [...safe, 'OPTIONS', 'TRACE', 'QUERY', 'GET', 'HEAD']) {
    const payload = method === 'QUERY' ? { payload: { q: 1 } } : {}
    t.equal((await app.inject({ method: method as 'GET', url: '/items/1', ...payload })).statusCode, 200, method)
    t.equal(await xCache(app, '/items/1'), 'HIT', `${method} is safe: it drops nothing`)
  }
})

t.test('a route with only a custom unsafe method gets the invalidation hook, and origin-mode entries are dropped alike', async (t) => {
  const app = await cachedApp(t)
  let runs = 0
  app.get('/doc', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => {
    reply.header('cache-control', 'max-age=600')
    return { run: ++runs }
  })
  app.addHttpMethod('PURGE')
  app.route({ method: 'PURGE', url: '/doc', handler: async () => 'purged' })
  await xCache(app, '/doc')
  t.equal(await xCache(app, '/doc'), 'HIT')
  t.equal((await app.inject({ method: 'PURGE' as 'GET', url: '/doc' })).body, 'purged')
  t.equal(await xCache(app, '/doc'), 'MISS')
  t.equal(runs, 2)
})

t.test('a route\'s invalidate tags drop after a 2xx only: a 3xx drops its path, not its tags', async (t) => {
  const app = await cachedApp(t)
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as Params).id}`] } } }, async (request) => (request.params as Params).id)
  app.put('/basket', { config: { cache: { invalidate: ['item:1'] } } }, async (request, reply) => {
    await reply.code(Number((request.query as Query).status)).send('done')
  })
  await xCache(app, '/items/1')
  await app.inject({ method: 'PUT', url: '/basket?status=303' })
  t.equal(await xCache(app, '/items/1'), 'HIT', '303: the tags stay')
  await app.inject({ method: 'PUT', url: '/basket?status=200' })
  t.equal(await xCache(app, '/items/1'), 'MISS', '200: the tags are dropped')
})

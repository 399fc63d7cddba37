import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import { MemoryStore } from '../lib/stores/memory.js'
import type { CacheStore } from '../lib/stores/store.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { deferred } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'
import { writesSent } from './helpers/redis.js'

const kinds = await storeKinds(t)

type Params = { id: string }

/** A small catalogue: cached item and list routes, and the writes that change them. */
async function catalogue (t: Parameters<typeof cachedApp>[0], options: object): Promise<{ app: FastifyInstance, runs: Record<string, number> }> {
  const app = await cachedApp(t, { ...options, tenant: (request) => request.headers['x-tenant'] as string | undefined })
  const runs: Record<string, number> = {}
  const ran = (name: string): number => (runs[name] = (runs[name] ?? 0) + 1)
  app.get('/items', { config: { cache: { tags: ['items'] } } }, async () => ({ list: ran('list') }))
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as Params).id}`] } } }, async (request) => ({ item: (request.params as Params).id, run: ran('item') }))
  app.get('/reports/:id', { config: { cache: true } }, async (request, reply) => {
    reply.cacheTags(`owner:${request.query && (request.query as { owner?: string }).owner}`, 'reports')
    return { report: ran('report') }
  })
  app.put('/items/:id', { config: { cache: { invalidate: (request) => [`item:${(request.params as Params).id}`, 'items'] } } }, async (request, reply) => {
    const status = (request.query as { status?: string }).status
    return await reply.code(status === undefined ? 200 : Number(status)).send({ ok: true })
  })
  app.patch('/items/:id', async () => ({ patched: true }))
  app.delete('/items/:id', async (request, reply) => await reply.code(204).send())
  app.post('/items', { config: { cache: { invalidate: ['items'] } } }, async (request, reply) => {
    await reply.code(201).header('location', '/items/new').send({ created: true })
  })
  app.post('/items/:id/archive', { config: { cache: { invalidate: () => { throw new Error('bad invalidate') } } } }, async () => ({ archived: true }))
  return { app, runs }
}

const xCache = async (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<string | undefined> =>
  (await app.inject({ url, headers })).headers['x-cache'] as string | undefined

for (const [kind, options] of kinds) {
  t.test(`${kind}: a route's invalidate drops its tags after a 2xx, not after a 4xx or 5xx`, async (t) => {
    const { app } = await catalogue(t, options())
    await xCache(app, '/items/1')
    await xCache(app, '/items/2')
    await xCache(app, '/items')
    t.equal(await xCache(app, '/items/1'), 'HIT')

    await app.inject({ method: 'PUT', url: '/items/1?status=409', payload: {} })
    await app.inject({ method: 'PUT', url: '/items/1?status=500', payload: {} })
    t.equal(await xCache(app, '/items/1'), 'HIT', 'a failed write changes nothing')
    t.equal(await xCache(app, '/items'), 'HIT')

    const put = await app.inject({ method: 'PUT', url: '/items/1', payload: {} })
    t.equal(put.statusCode, 200)
    t.equal(put.headers['x-cache'], undefined, 'an invalidate-only route is not cached')
    t.equal(await xCache(app, '/items/1'), 'MISS', 'the item')
    t.equal(await xCache(app, '/items'), 'MISS', 'the list that contains it')
    t.equal(await xCache(app, '/items/2'), 'HIT', 'other items stay')
  })

  t.test(`${kind}: PUT, PATCH, DELETE and POST drop the GET and HEAD entries of their own path (RFC 9111 4.4)`, async (t) => {
    // No route here names a tag to drop: only the rule for writes can drop anything.
    const app = await cachedApp(t, options())
    const runs = { item: 0 }
    app.get('/items', { config: { cache: true } }, async () => ({ list: true }))
    app.get('/items/:id', { config: { cache: true } }, async (request) => ({ item: (request.params as Params).id, run: ++runs.item }))
    app.put('/items/:id', async () => ({ put: true }))
    app.patch('/items/:id', async () => ({ patched: true }))
    app.delete('/items/:id', async (request, reply) => await reply.code(204).send())
    app.post('/items', async (request, reply) => await reply.code(201).header('location', '/items/new').send({ created: true }))
    for (const [method, url] of [['PATCH', '/items/3'], ['DELETE', '/items/3'], ['PUT', '/items/3']] as const) {
      await xCache(app, '/items/3')
      await xCache(app, '/items/3?view=full')
      await xCache(app, '/items/4')
      t.equal(await xCache(app, '/items/3'), 'HIT')
      t.equal((await app.inject({ method: 'HEAD', url: '/items/3' })).headers['x-cache'], 'HIT')
      const before = runs.item
      const write = await app.inject({ method, url, payload: method === 'DELETE' ? undefined : {} })
      t.ok(write.statusCode >= 200 && write.statusCode < 300)
      t.equal((await app.inject({ method: 'HEAD', url: '/items/3' })).headers['x-cache'], 'MISS', `${method}: HEAD too`)
      t.equal(await xCache(app, '/items/3?view=full'), 'MISS', `${method}: every query of the path`)
      t.equal(await xCache(app, '/items/4'), 'HIT', `${method}: another path stays`)
      t.equal(runs.item, before + 2)
    }
    await xCache(app, '/items/new')
    t.equal(await xCache(app, '/items/new'), 'HIT')
    await xCache(app, '/items')
    await xCache(app, '/items/4')
    const created = await app.inject({ method: 'POST', url: '/items', payload: {} })
    t.equal(created.statusCode, 201)
    t.equal(await xCache(app, '/items'), 'MISS', 'POST drops its own path')
    t.equal(await xCache(app, '/items/new'), 'MISS', 'and the path in its location header')
    t.equal(await xCache(app, '/items/4'), 'HIT', 'and nothing else')
  })

  t.test(`${kind}: a write drops its content-location, and its location only on the same host`, async (t) => {
    const app = await cachedApp(t, options())
    app.get('/items/:id', { config: { cache: true } }, async (request) => ({ item: (request.params as Params).id }))
    // Answers with the headers the request asks for.
    app.post('/moves', async (request, reply) => {
      for (const [name, value] of Object.entries(request.query as Record<string, string>)) reply.header(name, value)
      return { moved: true }
    })
    const move = async (query: Record<string, string>): Promise<void> => {
      t.equal((await app.inject({ method: 'POST', url: '/moves', query, payload: {} })).statusCode, 200)
    }
    for (const id of ['1', '2', '3', '4']) await xCache(app, `/items/${id}`)
    await move({ 'content-location': '/items/1' })
    t.equal(await xCache(app, '/items/1'), 'MISS', 'content-location')
    await move({ location: 'http://elsewhere.example/items/2', 'content-location': 'http://elsewhere.example/items/3' })
    t.equal(await xCache(app, '/items/2'), 'HIT', 'a location on another host is another resource')
    t.equal(await xCache(app, '/items/3'), 'HIT', 'so is a content-location on another host')
    await move({ location: 'http://localhost/items/4?from=move' })
    t.equal(await xCache(app, '/items/4'), 'MISS', 'the same host written out in full, default port left out')
  })

  t.test(`${kind}: an answer from the cache drops nothing, even to a POST`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.get('/search', { config: { cache: { tags: ['searches'] } } }, async () => ({ page: runs.next() }))
    app.get('/recent', { config: { cache: { tags: ['searches'] } } }, async () => ({ recent: runs.next() }))
    app.post('/search', { config: { cache: { ttl: 60, invalidate: ['searches'] } } }, async (request) => ({ found: request.body }))
    t.equal((await app.inject({ method: 'POST', url: '/search', payload: { q: 'a' } })).headers['x-cache'], 'MISS')
    await xCache(app, '/search')
    await xCache(app, '/recent')
    t.equal((await app.inject({ method: 'POST', url: '/search', payload: { q: 'a' } })).headers['x-cache'], 'HIT')
    t.equal(await xCache(app, '/search'), 'HIT', 'the GET entry of the path stays')
    t.equal(await xCache(app, '/recent'), 'HIT', 'the route\'s invalidate tags stay')
    t.equal((await app.inject({ method: 'POST', url: '/search', payload: { q: 'b' } })).headers['x-cache'], 'MISS')
    t.equal(await xCache(app, '/search'), 'MISS', 'a POST the handler answered drops both')
    t.equal(await xCache(app, '/recent'), 'MISS')
  })

  t.test(`${kind}: writes drop within the writer's tenant`, async (t) => {
    const { app } = await catalogue(t, options())
    for (const tenant of ['acme', 'globex']) await xCache(app, '/items/5', { 'x-tenant': tenant })
    await app.inject({ method: 'PUT', url: '/items/5', headers: { 'x-tenant': 'acme' }, payload: {} })
    t.equal(await xCache(app, '/items/5', { 'x-tenant': 'acme' }), 'MISS')
    t.equal(await xCache(app, '/items/5', { 'x-tenant': 'globex' }), 'HIT', 'another tenant\'s item 5 is another item')
  })

  t.test(`${kind}: reply.cacheTags adds tags decided by the handler`, async (t) => {
    const { app } = await catalogue(t, options())
    await xCache(app, '/reports/1?owner=ann')
    await xCache(app, '/reports/2?owner=bob')
    t.equal(await app.cache.invalidate({ tags: ['owner:ann'] }), 1)
    t.equal(await xCache(app, '/reports/1?owner=ann'), 'MISS')
    t.equal(await xCache(app, '/reports/2?owner=bob'), 'HIT')
    t.equal(await app.cache.invalidate({ tags: ['reports'] }), 2)
  })

  t.test(`${kind}: reply.cacheTags refuses an empty tag like any handler error`, async (t) => {
    const app = await cachedApp(t, options())
    app.get('/bad', { config: { cache: true } }, async (request, reply) => { reply.cacheTags(''); return 'x' })
    const r = await app.inject('/bad')
    t.equal(r.statusCode, 500)
    t.equal(r.json().code, 'FST_RESPONSE_CACHE_INVALID_ARGUMENT')
  })

  t.test(`${kind}: invalidate by route and by tenant drops only those entries`, async (t) => {
    const { app } = await catalogue(t, options())
    await app.cache.set('unrelated', 'value', { tenant: 'acme' })
    for (const tenant of [undefined, 'acme']) {
      const headers: Record<string, string> = tenant === undefined ? {} : { 'x-tenant': tenant }
      await xCache(app, '/items/1', headers)
      await xCache(app, '/items/2', headers)
      await xCache(app, '/items', headers)
    }
    t.equal(await app.cache.invalidate({ route: 'GET /items/:id', tenant: 'acme' }), 2)
    t.equal(await xCache(app, '/items/1'), 'HIT', 'the route for other tenants stays')
    t.equal(await xCache(app, '/items/1', { 'x-tenant': 'acme' }), 'MISS')
    t.equal(await app.cache.invalidate({ route: 'HEAD /items/:id' }), 3, 'HEAD names the GET entries')
    t.equal(await xCache(app, '/items'), 'HIT', 'another route stays')
    t.equal(await app.cache.invalidate({ route: '/items' }), 2, 'a route without a method: every method')
    await xCache(app, '/items', { 'x-tenant': 'acme' })
    t.equal(await app.cache.invalidate({ tenant: 'acme' }), 2, 'a tenant alone: its responses and values')
    t.equal(await app.cache.get('unrelated', { tenant: 'acme' }), undefined)
    t.equal(await xCache(app, '/items/2'), 'MISS', '(dropped above by route)')
    t.equal(await xCache(app, '/items/2'), 'HIT')
  })

  t.test(`${kind}: unknown tags, empty lists and tenants that never existed drop nothing, without error`, async (t) => {
    const { app } = await catalogue(t, options())
    await xCache(app, '/items/1')
    t.equal(await app.cache.invalidate({ tags: ['never-used'] }), 0)
    t.equal(await app.cache.invalidate({ tags: [] }), 0)
    t.equal(await app.cache.invalidate({}), 0)
    t.equal(await app.cache.invalidate({ tenant: 'nobody' }), 0)
    t.equal(await app.cache.invalidate({ tenant: 'nobody', tags: [] }), 0)
    t.equal(await app.cache.invalidate({ route: 'GET /nowhere' }), 0)
    t.equal(await app.cache.invalidate({ route: '*' }), 0, 'a pattern is just a name')
    t.equal(await xCache(app, '/items/1'), 'HIT')
  })

  t.test(`${kind}: an invalidate function that throws is logged; the write still answers`, async (t) => {
    const { lines, logger } = logCapture('warn')
    const app = await cachedApp(t, options(), { logger })
    app.post('/x', { config: { cache: { invalidate: () => { throw new Error('boom') } } } }, async () => 'done')
    const r = await app.inject({ method: 'POST', url: '/x' })
    t.equal(r.statusCode, 200)
    t.equal(r.body, 'done')
    t.ok(lines.some((line) => line.msg === 'response cache invalidate function threw'))
  })
}

t.test('redis: route and tenant invalidation touch only their own keys', async (t) => {
  const options = kinds[1][1]()
  const { app } = await catalogue(t, options)
  const client = options.redis as Redis
  for (let i = 0; i < 20; i++) await xCache(app, `/items/${i}`, { 'x-tenant': i % 2 === 0 ? 'even' : 'odd' })
  await xCache(app, '/items')
  await writesSent()
  const entries = async (): Promise<number> => (await client.keys(`${options.namespace as string}:*`)).filter((key) => !/:(tag|ver|lock):|:gen$/.test(key)).length
  t.equal(await entries(), 21)
  t.equal(await app.cache.invalidate({ tenant: 'odd' }), 10)
  t.equal(await entries(), 11)
  t.equal(await app.cache.invalidate({ route: 'GET /items' }), 1)
  t.equal(await entries(), 10)
})

t.test('writes on an app that caches no GET route do not touch the store', async (t) => {
  let calls = 0
  const store = {
    name: 'counting',
    get: () => undefined,
    set: () => {},
    delete: () => false,
    invalidateTags: () => { calls++; return 0 },
    clear: () => {}
  }
  const writesOnly = await cachedApp(t, { store })
  writesOnly.put('/items/:id', async () => ({ ok: true }))
  writesOnly.post('/search', { config: { cache: true } }, async () => ({ found: [] }))
  await writesOnly.inject({ method: 'PUT', url: '/items/1', payload: {} })
  await writesOnly.inject({ method: 'POST', url: '/search', payload: {} })
  t.equal(calls, 0)
  const withGet = await cachedApp(t, { store })
  withGet.put('/items/:id', async () => ({ ok: true }))
  withGet.get('/items/:id', { config: { cache: true } }, async () => ({ item: 1 }))
  await withGet.inject({ method: 'PUT', url: '/items/1', payload: {} })
  t.equal(calls, 1, 'once a GET route is cached, writes drop their path, whatever the order the routes were added in')
})

t.test('a write whose invalidation fails still answers, and the failure is counted', async (t) => {
  for (const invalidateTags of [async () => { throw new Error('store down') }, () => { throw new Error('store down') }]) {
    const store = { name: 'failing', get: () => undefined, set: () => {}, delete: () => false, invalidateTags, clear: () => {} }
    const app = await cachedApp(t, { store, tenant: () => { throw new Error('no tenant here') } })
    app.get('/items/:id', { config: { cache: true } }, async () => 'item')
    app.put('/items/:id', async () => 'saved')
    const r = await app.inject({ method: 'PUT', url: '/items/1', payload: {} })
    t.equal(r.statusCode, 200)
    t.equal(r.body, 'saved')
    t.equal(app.cache.stats().total.errors, 1)
  }
})

/** A remote store whose writes land only when the test lets them. */
function heldWrites (): { store: CacheStore, writing: Promise<void>, land: () => void } {
  const memory = new MemoryStore({ maxBytes: 1_000_000 })
  const started = deferred()
  const gate = deferred()
  const store: CacheStore = {
    name: 'held-writes',
    get: async (key) => memory.get(key),
    set: async (key, entry, options) => {
      started.resolve()
      await gate.promise
      memory.set(key, entry, options)
    },
    delete: async (key) => memory.delete(key),
    invalidateTags: async (tags) => memory.invalidateTags(tags),
    clear: async () => { memory.clear() }
  }
  return { store, writing: started.promise, land: gate.resolve }
}

/** Two turns of the event loop: what does not wait for a write is done by then. */
const turns = async (): Promise<void> => { for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve)) }

t.test('the invalidation after a write waits for a response write still on its way', async (t) => {
  const { store, writing, land } = heldWrites()
  const app = await cachedApp(t, { store, timeout: 5000 })
  const runs = counter()
  const handled = deferred()
  app.get('/items/:id', { config: { cache: true } }, async () => ({ run: runs.next() }))
  app.put('/items/:id', async () => { handled.resolve(); return 'saved' })
  t.equal((await app.inject('/items/9')).headers['x-cache'], 'MISS')
  await writing
  let answered = false
  const put = app.inject({ method: 'PUT', url: '/items/9', payload: {} }).then((r) => { answered = true; return r })
  await handled.promise
  await turns()
  t.equal(answered, false, 'the PUT\'s answer waits for the GET\'s entry to land, then drops it')
  land()
  t.equal((await put).statusCode, 200)
  t.equal((await app.inject('/items/9')).headers['x-cache'], 'MISS')
  t.equal(runs.runs, 2)
})

t.test('app.cache.invalidate and clear wait for writes on their way', async (t) => {
  for (const call of ['invalidate', 'clear'] as const) {
    const { store, writing, land } = heldWrites()
    const app = await cachedApp(t, { store, timeout: 5000 })
    const runs = counter()
    app.get('/items/:id', { config: { cache: true } }, async () => ({ run: runs.next() }))
    t.equal((await app.inject('/items/9')).headers['x-cache'], 'MISS')
    await writing
    let settled = false
    const done = (call === 'invalidate' ? app.cache.invalidate({ route: 'GET /items/:id' }) : app.cache.clear()).finally(() => { settled = true })
    await turns()
    t.equal(settled, false, `${call} waits for the write`)
    land()
    const dropped = await done
    if (call === 'invalidate') t.equal(dropped, 1, 'the entry that landed is dropped')
    t.equal((await app.inject('/items/9')).headers['x-cache'], 'MISS', `${call}: nothing is served from before it`)
    t.equal(runs.runs, 2)
  }
})

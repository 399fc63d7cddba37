import t from 'tap'
import type { CacheEntry } from '../lib/entry.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { CacheStore } from '../lib/stores/store.js'
import { cachedApp, counter } from './helpers/app.js'
import { until } from './helpers/events.js'

t.test('GET: first MISS runs the handler, then HIT serves the same bytes without it', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/items/:id', { config: { cache: true } }, async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
  const first = await app.inject('/items/1')
  const second = await app.inject('/items/1')
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(first.headers.age, undefined)
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.headers.age, '0')
  t.equal(second.statusCode, 200)
  t.equal(second.body, first.body)
  t.equal(second.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(second.headers['content-length'], first.headers['content-length'])
  t.equal(runs.runs, 1)
})

t.test('a hit skips validation, the handler and serialisation', async (t) => {
  const app = await cachedApp(t)
  let validated = 0
  let serialised = 0
  app.get('/s', {
    config: { cache: true },
    preSerialization: async (_request, _reply, payload) => { serialised++; return payload },
    schema: { querystring: { type: 'object', properties: { q: { type: 'string' } } } },
    validatorCompiler: () => () => { validated++; return true }
  }, async () => ({ ok: true }))
  await app.inject('/s?q=1')
  t.equal((await app.inject('/s?q=1')).headers['x-cache'], 'HIT')
  t.equal(validated, 1)
  t.equal(serialised, 1)
})

t.test('a route\'s preHandler hook runs on every hit (it may refuse the request); the handler and serialisation do not', async (t) => {
  const app = await cachedApp(t)
  let preHandlers = 0
  let serialised = 0
  app.get('/s', {
    config: { cache: true },
    preHandler: async () => { preHandlers++ },
    preSerialization: async (_request, _reply, payload) => { serialised++; return payload }
  }, async () => ({ ok: true }))
  await app.inject('/s?q=1')
  t.equal((await app.inject('/s?q=1')).headers['x-cache'], 'HIT')
  t.equal(preHandlers, 2)
  t.equal(serialised, 1)
})

t.test('different path parameters, queries and hosts never share an entry', async (t) => {
  const app = await cachedApp(t)
  app.get('/items/:id', { config: { cache: true } }, async (request) => ({ params: request.params, query: request.query, host: request.host }))
  const a = await app.inject('/items/1?x=1')
  const b = await app.inject('/items/2?x=1')
  const c = await app.inject('/items/1?x=2')
  const d = await app.inject({ url: '/items/1?x=1', headers: { host: 'other.example' } })
  for (const r of [a, b, c, d]) t.equal(r.headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items/1?x=1')).body, a.body)
})

t.test('the query string is keyed as sent: variants that parse alike or reorder are entries of their own', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/q', { config: { cache: true } }, async (request) => ({ url: request.url, query: request.query, run: runs.next() }))
  t.equal((await app.inject('/q?a=1&b=2')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/q?a=1&b=2')).headers['x-cache'], 'HIT')
  const reflected = await app.inject('/q?a=%31&b=2')
  t.equal(reflected.headers['x-cache'], 'MISS', 'a handler reflecting request.url answers it differently')
  t.equal(reflected.json().url, '/q?a=%31&b=2')
  t.equal((await app.inject('/q?a=1&b=2&')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/q?b=2&a=1')).headers['x-cache'], 'MISS', 'a handler serialising request.query answers it differently')
  t.equal((await app.inject('/q?a=1&a=2')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/q?a=2&a=1')).headers['x-cache'], 'MISS')
  t.equal(runs.runs, 6)
})

t.test('HEAD is answered from the GET entry, without a body', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/h', { config: { cache: true } }, async () => ({ run: runs.next(), pad: 'x'.repeat(100) }))
  const miss = await app.inject({ method: 'HEAD', url: '/h' })
  t.equal(miss.headers['x-cache'], 'MISS', 'HEAD before any GET misses')
  const get = await app.inject('/h')
  t.equal(get.headers['x-cache'], 'MISS', 'HEAD stored nothing')
  const head = await app.inject({ method: 'HEAD', url: '/h' })
  t.equal(head.headers['x-cache'], 'HIT')
  t.equal(head.body, '')
  t.equal(head.headers['content-length'], get.headers['content-length'])
  t.equal(head.headers.etag, get.headers.etag)
  t.equal(runs.runs, 2)
})

t.test('an explicit HEAD route reads the GET entry and never stores its empty body', async (t) => {
  const app = await cachedApp(t)
  app.get('/e', { config: { cache: true }, exposeHeadRoute: false }, async () => 'full body')
  app.head('/e', { config: { cache: true } }, async (_request, reply) => { reply.header('x-head', '1'); return '' })
  const head = await app.inject({ method: 'HEAD', url: '/e' })
  t.equal(head.headers['x-head'], '1')
  const get = await app.inject('/e')
  t.equal(get.headers['x-cache'], 'MISS')
  t.equal(get.body, 'full body')
  t.equal((await app.inject({ method: 'HEAD', url: '/e' })).headers['x-cache'], 'HIT')
})

t.test('POST is keyed by its body, whatever the JSON key order', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.post('/search', { config: { cache: { ttl: 10 } } }, async (request) => ({ body: request.body, run: runs.next() }))
  const a = await app.inject({ method: 'POST', url: '/search', payload: { q: 'x', page: { n: 1, size: 10 } } })
  const b = await app.inject({ method: 'POST', url: '/search', payload: { page: { size: 10, n: 1 }, q: 'x' } })
  const c = await app.inject({ method: 'POST', url: '/search', payload: { q: 'y', page: { n: 1, size: 10 } } })
  t.equal(a.headers['x-cache'], 'MISS')
  t.equal(b.headers['x-cache'], 'HIT')
  t.equal(b.body, a.body)
  t.equal(c.headers['x-cache'], 'MISS')
  t.equal(runs.runs, 2)
})

t.test('POST bodies of other types: text and binary are keyed by their bytes', async (t) => {
  const app = await cachedApp(t)
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })
  const runs = counter()
  app.post('/raw', { config: { cache: true } }, async () => ({ run: runs.next() }))
  const send = async (payload: string | Buffer, type: string): Promise<string | undefined> =>
    (await app.inject({ method: 'POST', url: '/raw', payload, headers: { 'content-type': type } })).headers['x-cache'] as string | undefined
  t.equal(await send('abc', 'text/plain'), 'MISS')
  t.equal(await send('abc', 'text/plain'), 'HIT')
  t.equal(await send('abd', 'text/plain'), 'MISS')
  t.equal(await send(Buffer.from([1, 2]), 'application/octet-stream'), 'MISS')
  t.equal(await send(Buffer.from([1, 2]), 'application/octet-stream'), 'HIT')
  t.equal(await send(Buffer.from([1, 3]), 'application/octet-stream'), 'MISS')
  t.equal(runs.runs, 4)
})

t.test('POST with no body and a route with GET and POST', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.route({ method: ['GET', 'POST'], url: '/both', config: { cache: true }, handler: async (request) => ({ m: request.method, run: runs.next() }) })
  t.equal((await app.inject({ method: 'POST', url: '/both' })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ method: 'POST', url: '/both' })).headers['x-cache'], 'HIT')
  const get = await app.inject('/both')
  t.equal(get.headers['x-cache'], 'MISS')
  t.match(JSON.parse(get.body), { m: 'GET' })
  t.equal((await app.inject('/both')).headers['x-cache'], 'HIT')
  t.same(Object.keys(app.cache.stats().routes).sort(), ['GET /both', 'HEAD /both', 'POST /both'])
})

t.test('etag: every stored response carries one, and If-None-Match answers 304 with no body', async (t) => {
  const app = await cachedApp(t)
  app.get('/tagged', { config: { cache: true } }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=30').header('x-extra', 'kept')
    return { a: 1 }
  })
  app.get('/own', { config: { cache: true } }, async (_request, reply) => { reply.header('etag', 'W/"mine"'); return 'x' })
  const miss = await app.inject('/tagged')
  const etag = miss.headers.etag as string
  t.match(etag, /^"[A-Za-z0-9_-]{27}"$/)
  const hit = await app.inject('/tagged')
  t.equal(hit.headers.etag, etag)
  const notModified = await app.inject({ url: '/tagged', headers: { 'if-none-match': `"other", ${etag}` } })
  t.equal(notModified.statusCode, 304)
  t.equal(notModified.body, '')
  t.equal(notModified.headers.etag, etag)
  t.equal(notModified.headers['cache-control'], 'public, max-age=30')
  t.equal(notModified.headers['x-extra'], undefined)
  t.equal(notModified.headers['x-cache'], 'HIT')
  t.equal((await app.inject({ url: '/tagged', headers: { 'if-none-match': '*' } })).statusCode, 304)
  t.equal((await app.inject({ url: '/tagged', headers: { 'if-none-match': '"nope"' } })).statusCode, 200)

  t.equal((await app.inject('/own')).headers.etag, 'W/"mine"')
  t.equal((await app.inject({ url: '/own', headers: { 'if-none-match': '"mine"' } })).statusCode, 304, 'weak comparison')
})

t.test('a stored response keeps its status and headers but not hop-by-hop ones', async (t) => {
  const app = await cachedApp(t)
  app.get('/created', { config: { cache: { statusCodes: [201] } } }, async (_request, reply) => {
    reply.code(201).header('x-list', ['a', 'b']).header('keep-alive', 'timeout=5').header('x-num', 5)
    return 'made'
  })
  await app.inject('/created')
  const hit = await app.inject('/created')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.statusCode, 201)
  t.same(hit.headers['x-list'], ['a', 'b'])
  t.equal(hit.headers['x-num'], '5')
  t.equal(hit.headers['keep-alive'], undefined)
})

t.test('the route TTL: an expired entry is never served', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  // A TTL long enough for the HIT right after the MISS on a loaded machine.
  app.get('/short', { config: { cache: { ttl: 1 } } }, async () => ({ run: runs.next() }))
  await app.inject('/short')
  const stored = Date.now()
  t.equal((await app.inject('/short')).headers['x-cache'], 'HIT')
  await until(stored, 1000)
  t.equal((await app.inject('/short')).headers['x-cache'], 'MISS')
  t.equal(runs.runs, 2)
})

t.test('age counts whole seconds since the entry was stored', async (t) => {
  const app = await cachedApp(t)
  app.get('/aged', { config: { cache: true } }, async () => 'x')
  const before = Date.now()
  await app.inject('/aged')
  const after = Date.now()
  t.equal((await app.inject('/aged')).headers.age, '0')
  await until(after, 1000)
  const asked = Date.now()
  const age = Number((await app.inject('/aged')).headers.age)
  const answered = Date.now()
  // Stored between `before` and `after`, answered between `asked` and `answered`: on an idle machine
  // both windows are a few ms wide and the age is 1; on a loaded one it may be more, never less.
  t.ok(age >= Math.floor((asked - after) / 1000) && age <= Math.floor((answered - before) / 1000), `age ${age}`)
  t.ok(age >= 1)
})

t.test('routes without config.cache are never touched', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/plain', async () => ({ run: runs.next() }))
  app.get('/off', { config: { cache: false } }, async () => ({ run: runs.next() }))
  for (const url of ['/plain', '/plain', '/off', '/off']) {
    const r = await app.inject(url)
    t.equal(r.headers['x-cache'], undefined)
    t.equal(r.headers.etag, undefined)
  }
  t.equal(runs.runs, 4)
  t.same(app.cache.stats().routes, {})
})

t.test('PUT, PATCH and DELETE routes are never cached', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
    app.route({ method, url: '/w', config: { cache: true }, handler: async () => ({ run: runs.next() }) })
  }
  for (const method of ['PUT', 'PUT', 'PATCH', 'DELETE'] as const) {
    t.equal((await app.inject({ method, url: '/w', payload: {} })).headers['x-cache'], undefined)
  }
  t.equal(runs.runs, 4)
})

t.test('a route with only invalidate is not cached', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.post('/items', { config: { cache: { invalidate: ['items'] } } }, async () => ({ run: runs.next() }))
  await app.inject({ method: 'POST', url: '/items', payload: { a: 1 } })
  const second = await app.inject({ method: 'POST', url: '/items', payload: { a: 1 } })
  t.equal(second.headers['x-cache'], undefined)
  t.equal(runs.runs, 2)
})

t.test('routes in child plugins and with prefixes are cached under their full pattern', async (t) => {
  const app = await cachedApp(t)
  await app.register(async (child) => {
    child.get('/items/:id', { config: { cache: true } }, async (request) => request.params)
  }, { prefix: '/v1' })
  await app.inject('/v1/items/7')
  t.equal((await app.inject('/v1/items/7')).headers['x-cache'], 'HIT')
  t.ok(app.cache.stats().routes['GET /v1/items/:id'])
})

t.test('app.cache.invalidate by tags and clear', async (t) => {
  const app = await cachedApp(t)
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`, 'items'] } } }, async (request) => request.params)
  app.get('/fixed', { config: { cache: { tags: ['fixed'] } } }, async () => 'f')
  await app.inject('/items/1')
  await app.inject('/items/2')
  await app.inject('/fixed')
  t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 1)
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items/2')).headers['x-cache'], 'HIT')
  t.equal(await app.cache.invalidate({ tags: [] }), 0)
  t.equal(await app.cache.invalidate({}), 0)
  t.equal(await app.cache.invalidate({ tags: ['never-used'] }), 0)
  await app.cache.clear()
  t.equal((await app.inject('/fixed')).headers['x-cache'], 'MISS')
  t.equal(app.cache.stats().store.entries, 1)
})

t.test('what is stored is what the client got after the route\'s own onSend hooks', async (t) => {
  const stored: CacheEntry[] = []
  const memory = new MemoryStore({ maxBytes: 1_000_000 })
  const store: CacheStore = {
    name: 'recording',
    get: (key) => memory.get(key),
    set: (key, entry, options) => { stored.push(entry); memory.set(key, entry, options) },
    delete: (key) => memory.delete(key),
    invalidateTags: (tags) => memory.invalidateTags(tags),
    clear: () => { memory.clear() }
  }
  const app = await cachedApp(t, { store })
  const runs = counter()
  app.get('/hooked', {
    config: { cache: true },
    onSend: async (_request, reply, payload) => {
      reply.header('x-hooked', 'yes')
      return String(payload).toUpperCase()
    }
  }, async () => `hello ${runs.next()}`)
  const miss = await app.inject('/hooked')
  t.equal(miss.body, 'HELLO 1')
  t.equal(stored.length, 1)
  t.equal(stored[0].body.toString(), 'HELLO 1', 'the payload after the hook')
  t.equal(stored[0].headers['x-hooked'], 'yes', 'and the headers it set')
  const hit = await app.inject('/hooked')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.body, miss.body)
  t.equal(hit.headers.etag, miss.headers.etag)
})

t.test('a response that a route\'s onSend hook makes private or personal is not stored', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/private', {
    config: { cache: true },
    onSend: async (_request, reply, payload) => { reply.header('cache-control', 'private'); return payload }
  }, async () => ({ run: runs.next() }))
  app.get('/session', {
    config: { cache: true },
    onSend: async (_request, reply, payload) => { reply.header('set-cookie', `session=${runs.runs}`); return payload }
  }, async () => ({ run: runs.next() }))
  for (const url of ['/private', '/private', '/session', '/session']) t.equal((await app.inject(url)).headers['x-cache'], 'MISS', url)
  t.equal(runs.runs, 4)
  t.equal(app.cache.stats().total.stores, 0)
})

t.test('a hit answers what the miss answered, whatever the route\'s onSend hooks do', async (t) => {
  const app = await cachedApp(t)
  app.get('/suffixed', {
    config: { cache: true },
    onSend: async (_request, _reply, payload) => String(payload) + '!'
  }, async () => 'x')
  const miss = await app.inject('/suffixed')
  t.equal(miss.body, 'x!')
  for (let i = 0; i < 2; i++) {
    const hit = await app.inject('/suffixed')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.body, 'x!', 'the stored payload, not the hook applied to it again')
    t.equal(hit.headers['content-length'], '2')
  }
})

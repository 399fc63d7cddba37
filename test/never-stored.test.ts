import { Readable } from 'node:stream'
import t from 'tap'
import type { CacheEntry } from '../lib/entry.js'
import { payloadBytes } from '../lib/http/payload.js'
import { etagMatches, NOT_MODIFIED_HEADERS, storedHeaders } from '../lib/rules/storability.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { StoreSetOptions } from '../lib/stores/store.js'
import type { RouteCacheOptions } from '../lib/index.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { storeKinds } from './helpers/stores.js'

for (const [kind, storeOptions] of await storeKinds(t)) {
  t.test(`${kind}: requests with authorization bypass unless the route varies on it`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    const runs = counter()
    app.get('/a', { config: { cache: true } }, async () => ({ run: runs.next() }))
    app.get('/keyed', { config: { cache: { vary: ['Authorization'] } } }, async (request) => ({ who: request.headers.authorization }))
    await app.inject('/a')
    const withAuth = await app.inject({ url: '/a', headers: { authorization: 'Bearer x' } })
    t.equal(withAuth.headers['x-cache'], 'BYPASS')
    t.equal(JSON.parse(withAuth.body).run, 2, 'the handler ran, the shared entry was not served')
    t.equal((await app.inject('/a')).headers['x-cache'], 'HIT')

    const alice = await app.inject({ url: '/keyed', headers: { authorization: 'alice' } })
    const bob = await app.inject({ url: '/keyed', headers: { authorization: 'bob' } })
    t.equal(alice.headers['x-cache'], 'MISS')
    t.equal(bob.headers['x-cache'], 'MISS')
    const alice2 = await app.inject({ url: '/keyed', headers: { authorization: 'alice' } })
    t.equal(alice2.headers['x-cache'], 'HIT')
    t.equal(JSON.parse(alice2.body).who, 'alice')
  })

  t.test(`${kind}: requests with cookies bypass unless the route varies on them or ignores them`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    app.get('/c', { config: { cache: true } }, async () => 'c')
    app.get('/ignored', { config: { cache: { ignoreCookies: true } } }, async () => 'i')
    app.get('/varied', { config: { cache: { vary: ['cookie'] } } }, async (request) => request.headers.cookie)
    t.equal((await app.inject({ url: '/c', headers: { cookie: 's=1' } })).headers['x-cache'], 'BYPASS')
    t.equal((await app.inject({ url: '/c', headers: { cookie: 's=1' } })).headers['x-cache'], 'BYPASS')
    t.equal((await app.inject({ url: '/ignored', headers: { cookie: 's=1' } })).headers['x-cache'], 'MISS')
    t.equal((await app.inject({ url: '/ignored', headers: { cookie: 's=2' } })).headers['x-cache'], 'HIT')
    t.equal((await app.inject({ url: '/varied', headers: { cookie: 's=1' } })).headers['x-cache'], 'MISS')
    t.equal((await app.inject({ url: '/varied', headers: { cookie: 's=2' } })).headers['x-cache'], 'MISS')
    t.equal((await app.inject({ url: '/varied', headers: { cookie: 's=1' } })).body, 's=1')
  })

  t.test(`${kind}: each bypass logs its reason at debug level`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, storeOptions(), { logger })
    app.get('/c', { config: { cache: true } }, async () => 'c')
    await app.inject({ url: '/c', headers: { authorization: 'Bearer secret-token' } })
    await app.inject({ url: '/c', headers: { cookie: 'sid=secret-cookie' } })
    const reasons = lines.filter((l) => l.msg === 'response cache bypass').map((l) => (l.responseCache as { reason: string }).reason)
    t.same(reasons, ['authorization', 'cookie'])
    t.ok(lines.filter((l) => l.msg === 'response cache bypass').every((l) => l.level === 20))
    t.notMatch(JSON.stringify(lines), /secret-token|secret-cookie/, 'credentials never reach the log')
  })

  const notStored: Array<[string, (reply: import('fastify').FastifyReply) => unknown, string?]> = [
    ['set-cookie', (reply) => { reply.header('set-cookie', 'a=1'); return 'x' }],
    ['cache-control: no-store', (reply) => { reply.header('cache-control', 'no-store'); return 'x' }],
    ['cache-control: private', (reply) => { reply.header('cache-control', 'private, max-age=60'); return 'x' }],
    ['cache-control: private="x-user"', (reply) => { reply.header('cache-control', 'private="x-user"'); return 'x' }],
    ['cache-control: no-cache', (reply) => { reply.header('cache-control', 'no-cache'); return 'x' }],
    ['cache-control: max-age=0', (reply) => { reply.header('cache-control', 'max-age=0'); return 'x' }],
    ['vary: *', (reply) => { reply.header('vary', '*'); return 'x' }],
    ['a 404', (reply) => reply.code(404).send('gone')],
    ['a 500', (reply) => reply.code(500).send('broken')],
    ['a 503', (reply) => reply.code(503).send('busy')],
    ['a thrown error', () => { throw new Error('boom') }],
    // Node streams are stored once they end (test/stream-store.test.ts); web streams are not.
    ['a web stream', () => new Blob(['a', 'b']).stream()],
    ['a body over maxEntryBytes', () => 'x'.repeat(101)],
    ['a stream over maxEntryBytes', () => Readable.from(['x'.repeat(60), 'x'.repeat(60)])]
  ]

  for (const [name, handler] of notStored) {
    t.test(`${kind}: never stored: ${name}`, async (t) => {
      const app = await cachedApp(t, { ...storeOptions(), maxEntryBytes: 100 })
      const runs = counter()
      app.get('/r', { config: { cache: true } }, async (_request, reply) => { runs.next(); return await handler(reply) })
      const first = await app.inject('/r')
      const second = await app.inject('/r')
      t.equal(first.headers['x-cache'], 'MISS')
      t.equal(second.headers['x-cache'], 'MISS')
      t.equal(second.body, first.body)
      t.equal(runs.runs, 2)
      t.equal(app.cache.stats().total.stores, 0)
    })
  }

  t.test(`${kind}: 5xx is rejected in statusCodes; other listed statuses are stored`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    app.get('/nf', { config: { cache: { statusCodes: [200, 404] } } }, async (_request, reply) => reply.code(404).send('no'))
    await app.inject('/nf')
    t.equal((await app.inject('/nf')).headers['x-cache'], 'HIT')
    t.equal((await app.inject('/nf')).statusCode, 404)
  })

  t.test(`${kind}: vary on a keyed header is stored`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    app.get('/lang', { config: { cache: { vary: ['accept-language'] } } }, async (request, reply) => {
      reply.header('vary', 'Accept-Language')
      return request.headers['accept-language']
    })
    await app.inject({ url: '/lang', headers: { 'accept-language': 'fr' } })
    const en = await app.inject({ url: '/lang', headers: { 'accept-language': 'en' } })
    t.equal(en.headers['x-cache'], 'MISS')
    const fr = await app.inject({ url: '/lang', headers: { 'accept-language': 'fr' } })
    t.equal(fr.headers['x-cache'], 'HIT')
    t.equal(fr.body, 'fr')
    t.equal(fr.headers.vary, 'Accept-Language')
  })

  t.test(`${kind}: vary on an unkeyed header is stored as a variant: each value gets its own answer`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    const runs = counter()
    app.get('/lang', { config: { cache: true } }, async (request, reply) => {
      reply.header('vary', 'Accept-Language')
      return `${String(request.headers['accept-language'])} ${runs.next()}`
    })
    const get = async (lang: string): Promise<[unknown, string]> => {
      const response = await app.inject({ url: '/lang', headers: { 'accept-language': lang } })
      return [response.headers['x-cache'], response.body]
    }
    t.same(await get('fr'), ['MISS', 'fr 1'])
    t.same(await get('en'), ['MISS', 'en 2'], 'never the French answer')
    t.same(await get('fr'), ['HIT', 'fr 1'])
    t.same(await get('en'), ['HIT', 'en 2'])
  })

  t.test(`${kind}: the response's s-maxage wins over max-age, and neither lengthens the route TTL`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    app.get('/shared', { config: { cache: { ttl: 100 } } }, async (_request, reply) => { reply.header('cache-control', 'max-age=1, s-maxage=100'); return 's' })
    app.get('/long', { config: { cache: { ttl: 0.05 } } }, async (_request, reply) => { reply.header('cache-control', 'max-age=100'); return 'l' })
    await app.inject('/shared')
    await app.inject('/long')
    await new Promise((resolve) => setTimeout(resolve, 1100))
    t.equal((await app.inject('/shared')).headers['x-cache'], 'HIT', 's-maxage=100 holds past max-age=1')
    t.equal((await app.inject('/long')).headers['x-cache'], 'MISS', 'max-age=100 did not lengthen ttl 0.05')
  })

  t.test(`${kind}: s-maxage in whole seconds shortens the TTL`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    app.get('/s1', { config: { cache: { ttl: 100 } } }, async (_request, reply) => { reply.header('cache-control', 'public, s-maxage=1'); return 's' })
    await app.inject('/s1')
    t.equal((await app.inject('/s1')).headers['x-cache'], 'HIT')
    await new Promise((resolve) => setTimeout(resolve, 1100))
    t.equal((await app.inject('/s1')).headers['x-cache'], 'MISS')
  })

  t.test(`${kind}: client no-cache, max-age=0 and pragma are ignored: they cannot reach the origin at will`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    const runs = counter()
    app.get('/n', { config: { cache: true } }, async () => ({ run: runs.next() }))
    await app.inject('/n')
    for (const headers of [{ 'cache-control': 'no-cache' }, { 'cache-control': 'max-age=0' }, { pragma: 'no-cache' }, { 'cache-control': 'no-store' }]) {
      t.equal((await app.inject({ url: '/n', headers })).headers['x-cache'], 'HIT')
    }
    t.equal(runs.runs, 1)
  })

  t.test(`${kind}: a GET with a body is not keyed by it, so it bypasses the cache`, async (t) => {
    const app = await cachedApp(t, storeOptions())
    app.get('/fat', { config: { cache: true } }, async (request) => ({ q: request.query }))
    await app.inject('/fat?x=1')
    const fat = await app.inject({ method: 'GET', url: '/fat?x=1', headers: { 'content-type': 'text/plain', 'content-length': '3' }, payload: 'abc' })
    t.equal(fat.headers['x-cache'], 'BYPASS')
    const chunked = await app.inject({ method: 'GET', url: '/fat?x=1', headers: { 'transfer-encoding': 'chunked' }, payload: 'abc' })
    t.equal(chunked.headers['x-cache'], 'BYPASS')
    t.equal((await app.inject({ url: '/fat?x=1', headers: { 'content-length': '0' } })).headers['x-cache'], 'HIT')
  })
}

// Each rule of lib/rules/storability.ts on its own, on the memory store: the rule, its edge, and the reason the
// debug log gives (what an operator reads to learn why a response was not stored).

const notStoredReasons = (lines: Array<Record<string, unknown>>): string[] =>
  lines.filter((l) => l.msg === 'response cache: not stored').map((l) => (l.responseCache as { reason: string }).reason)

t.test('every not-stored reason is logged at debug with the route', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { maxEntryBytes: 100 }, { logger })
  const cases: Array<[string, (reply: import('fastify').FastifyReply) => unknown]> = [
    ['status', (reply) => reply.code(404).send('gone')],
    ['set-cookie', (reply) => reply.header('set-cookie', 'a=1').send('x')],
    ['too-large', (reply) => reply.send('x'.repeat(101))],
    ['vary-star', (reply) => reply.header('vary', 'x-a, *').send('x')],
    ['no-store', (reply) => reply.header('cache-control', 'no-store').send('x')],
    ['private', (reply) => reply.header('cache-control', 'private').send('x')],
    ['no-cache', (reply) => reply.header('cache-control', 'no-cache').send('x')],
    ['max-age', (reply) => reply.header('cache-control', 's-maxage=0, max-age=60').send('x')],
    ['stream', (reply) => reply.send(new Blob(['a']).stream())]
  ]
  for (const [reason, handler] of cases) {
    app.get(`/${reason}`, { config: { cache: { vary: ['x-a'] } } }, async (_request, reply) => await handler(reply))
  }
  for (const [reason] of cases) {
    t.equal((await app.inject(`/${reason}`)).headers['x-cache'], 'MISS', reason)
    t.equal((await app.inject(`/${reason}`)).headers['x-cache'], 'MISS', `${reason}: not stored`)
  }
  t.same(notStoredReasons(lines), cases.flatMap(([reason]) => [reason, reason]))
  const line = lines.find((l) => l.msg === 'response cache: not stored')
  t.match(line, { level: 20, responseCache: { route: 'GET /status', reason: 'status' } })
})

t.test('a route whose answers are never stored because of how it is set up warns once per reason, naming the fix', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { maxEntryBytes: 100 }, { logger })
  type Handler = (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => unknown
  const warned: Array<[string, Handler, string]> = [
    ['status', (_request, reply) => reply.code(404).send('gone'), "add 404 to the route's statusCodes to store these answers"],
    ['set-cookie', (_request, reply) => reply.header('set-cookie', 'a=1').send('x'), 'remove set-cookie from the answer, or drop cache from the route'],
    ['too-large', (_request, reply) => reply.send('x'.repeat(101)), 'raise maxEntryBytes (100 bytes, body and headers) or lower the response size'],
    ['vary-star', (_request, reply) => reply.header('vary', '*').send('x'), 'remove Vary: * (name the request headers the answer depends on instead)'],
    ['no-store', (_request, reply) => reply.header('cache-control', 'no-store').send('x'), 'remove no-store from its Cache-Control, or drop cache from the route'],
    ['private', (_request, reply) => reply.header('cache-control', 'private, max-age=60').send('x'), 'remove private from its Cache-Control, or drop cache from the route'],
    ['no-cache', (_request, reply) => reply.header('cache-control', 'no-cache').send('x'), 'remove no-cache from its Cache-Control'],
    ['stream', (_request, reply) => reply.send(new Blob(['a']).stream()), 'send a Node stream (Readable.fromWeb) or a Buffer instead of a web stream'],
    ['vary-too-many', (_request, reply) => reply.header('vary', 'a, b, c, d, e, f, g, h, i').send('x'), 'name at most 8 request headers in Vary'],
    ['vary-invalid', (_request, reply) => reply.header('vary', 'x-a, x b').send('x'), 'name only header names in Vary']
  ]
  // What a request, the normal course of things or an origin decides: debug only.
  const quiet: Array<[string, Handler, RouteCacheOptions?, Record<string, string>?]> = [
    ['max-age', (_request, reply) => reply.header('cache-control', 'max-age=0').send('x')],
    ['invalid-freshness', (_request, reply) => reply.header('cache-control', 'max-age=-1').send('x')],
    ['status', (_request, reply) => reply.code(500).send('broken')],
    ['status', (_request, reply) => reply.code(400).send('the request\'s own error')],
    ['vary-credentials', (_request, reply) => reply.header('vary', 'cookie').send('x'), { ignoreCookies: true }, { cookie: 'sid=1' }],
    ['private', (_request, reply) => reply.header('cache-control', 'private, max-age=60').send('x'), { ttl: 'origin' }],
    ['set-cookie', (_request, reply) => reply.header('set-cookie', 'a=1').header('cache-control', 'max-age=60').send('x'), { ttl: 'origin' }],
    ['request-no-store', (_request, reply) => reply.header('cache-control', 'max-age=60').send('x'), { ttl: 'origin' }, { 'cache-control': 'no-store' }]
  ]
  for (const [reason, handler] of warned) app.get(`/warned/${reason}`, { config: { cache: true } }, async (request, reply) => await handler(request, reply))
  quiet.forEach(([, handler, cache], i) => { app.get(`/quiet/${i}`, { config: { cache: cache ?? true } }, async (request, reply) => await handler(request, reply)) })
  // A Node stream past the bound is dropped by the stream store, which warns the same way.
  app.get('/warned/stream-too-large', { config: { cache: true } }, async () => Readable.from(['x'.repeat(60), 'x'.repeat(60)]))
  // Two reasons on one route: one warn each.
  let flip = 0
  app.get('/two', { config: { cache: true } }, async (_request, reply) => ++flip % 2 === 0 ? reply.code(404).send('gone') : reply.header('set-cookie', 'a=1').send('x'))
  const requests: Array<[string, Record<string, string>?]> = [
    ...warned.map(([reason]): [string] => [`/warned/${reason}`]),
    ...quiet.map(([, , , headers], i): [string, Record<string, string>?] => [`/quiet/${i}`, headers]),
    ['/warned/stream-too-large'],
    ['/two']
  ]
  for (let round = 0; round < 3; round++) {
    for (const [url, headers] of requests) t.equal((await app.inject({ url, headers })).headers['x-cache'], 'MISS', url)
  }
  const warns = lines.filter((line) => line.level === 40)
  t.same(warns.map((line) => line.responseCache), [
    ...warned.map(([reason]) => ({ route: `GET /warned/${reason}`, reason })),
    { route: 'GET /warned/stream-too-large', reason: 'too-large' },
    { route: 'GET /two', reason: 'set-cookie' },
    { route: 'GET /two', reason: 'status' }
  ], 'once per route and reason, however many requests')
  warned.forEach(([reason, , fix], i) => { t.ok((warns[i].msg as string).includes(fix), `${reason}: ${warns[i].msg as string}`) })
  t.equal(warns[0].msg, "response cache: not stored (status 404), said once for this route: add 404 to the route's statusCodes to store these answers")
  t.equal(warns[1].msg, 'response cache: not stored (set-cookie), said once for this route: remove set-cookie from the answer, or drop cache from the route')
  t.same(notStoredReasons(lines).slice(0, requests.length), [...warned.map(([reason]) => reason), ...quiet.map(([reason]) => reason), 'too-large', 'set-cookie'])
  t.equal(notStoredReasons(lines).length, requests.length * 3, 'each request is still said at debug')
})

t.test('a GET with a body logs the request-body reason; an empty one and no body use the cache', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, {}, { logger })
  app.get('/g', { config: { cache: true } }, async () => 'g')
  app.post('/p', { config: { cache: true } }, async () => 'p')
  await app.inject({ url: '/g', headers: { 'content-type': 'text/plain' }, payload: 'abc' })
  t.same(lines.filter((l) => l.msg === 'response cache bypass').map((l) => (l.responseCache as { reason: string }).reason), ['request-body'])
  t.equal((await app.inject('/g')).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ url: '/g', headers: { 'content-length': '0' } })).headers['x-cache'], 'HIT')
  // A POST is keyed by its body: a body there is no reason to bypass.
  t.equal((await app.inject({ method: 'POST', url: '/p', payload: 'abc', headers: { 'content-type': 'text/plain' } })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ method: 'POST', url: '/p', payload: 'abc', headers: { 'content-type': 'text/plain' } })).headers['x-cache'], 'HIT')
})

t.test('a route that varies on authorization still bypasses cookies, and one that ignores cookies still bypasses authorization', async (t) => {
  const app = await cachedApp(t)
  app.get('/auth', { config: { cache: { vary: ['authorization'] } } }, async () => 'a')
  app.get('/cookies', { config: { cache: { ignoreCookies: true } } }, async () => 'c')
  app.get('/both', { config: { cache: { vary: ['Authorization', 'Cookie'] } } }, async () => 'b')
  t.equal((await app.inject({ url: '/auth', headers: { authorization: 'x', cookie: 's=1' } })).headers['x-cache'], 'BYPASS')
  t.equal((await app.inject({ url: '/cookies', headers: { authorization: 'x', cookie: 's=1' } })).headers['x-cache'], 'BYPASS')
  t.equal((await app.inject({ url: '/both', headers: { authorization: 'x', cookie: 's=1' } })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ url: '/both', headers: { authorization: 'x', cookie: 's=1' } })).headers['x-cache'], 'HIT')
})

t.test('the edges of what is stored: maxEntryBytes inclusive, Vary lists as the route keys them', async (t) => {
  const app = await cachedApp(t, { maxEntryBytes: 100 })
  const stored = async (url: string, headers: Record<string, string> = {}): Promise<boolean> => {
    await app.inject({ url, headers })
    return (await app.inject({ url, headers })).headers['x-cache'] === 'HIT'
  }
  /** Stored, and a request that differs only in `header` is not answered from it. */
  const variant = async (url: string, header: string): Promise<boolean> =>
    await stored(url, { [header]: '1' }) && (await app.inject({ url, headers: { [header]: '2' } })).headers['x-cache'] === 'MISS'
  // maxEntryBytes counts the headers with the body: content-type and its value are 22 bytes.
  app.get('/exact', { config: { cache: true } }, async (_request, reply) => reply.header('content-type', 'text/plain').send('x'.repeat(78)))
  app.get('/over', { config: { cache: true } }, async (_request, reply) => reply.header('content-type', 'text/plain').send('x'.repeat(79)))
  app.get('/vary-list', { config: { cache: { vary: ['x-a', 'x-b'] } } }, async (_request, reply) => reply.header('vary', ' X-A ,, x-b, ').send('v'))
  app.get('/vary-array', { config: { cache: { vary: ['x-a', 'x-b'] } } }, async (_request, reply) => reply.header('vary', ['X-A', 'X-B']).send('v'))
  app.get('/vary-array-unkeyed', { config: { cache: { vary: ['x-a'] } } }, async (_request, reply) => reply.header('vary', ['x-a', 'x-c']).send('v'))
  app.get('/vary-one-of', { config: { cache: { vary: ['x-a'] } } }, async (_request, reply) => reply.header('vary', 'x-a, x-b').send('v'))
  app.get('/public', { config: { cache: true } }, async (_request, reply) => reply.header('cache-control', 'public').send('p'))
  app.get('/must-revalidate', { config: { cache: true } }, async (_request, reply) => reply.header('cache-control', 'public, must-revalidate, max-age=30').send('m'))
  app.get('/max-age-1', { config: { cache: true } }, async (_request, reply) => reply.header('cache-control', 'max-age=1').send('m'))
  t.ok(await stored('/exact'), 'a body and headers of exactly maxEntryBytes are stored')
  t.notOk(await stored('/over'), 'one byte more is not')
  t.ok(await stored('/vary-list'), 'names trimmed, lower-cased, empty parts skipped')
  t.ok(await stored('/vary-array'), 'a Vary given as an array')
  t.ok(await variant('/vary-array-unkeyed', 'x-c'), 'an array naming an unkeyed header: a variant per value')
  t.ok(await variant('/vary-one-of', 'x-b'), 'one keyed header does not excuse another')
  t.ok(await stored('/public'), 'cache-control with no max-age keeps the route TTL')
  t.ok(await stored('/must-revalidate'))
  t.ok(await stored('/max-age-1'), 'a positive max-age below the TTL is stored')
})

t.test('the TTL a response header gives is the TTL of the entry (as stored)', async (t) => {
  const entries: Array<{ key: string, ttl: number }> = []
  const memory = new MemoryStore({ maxBytes: 1_000_000 })
  const store = {
    name: 'recording',
    get: (key: string) => memory.get(key),
    set: (key: string, entry: CacheEntry, options: StoreSetOptions) => { entries.push({ key, ttl: entry.ttl }); memory.set(key, entry, options) },
    delete: (key: string) => memory.delete(key),
    invalidateTags: (tags: readonly string[]) => memory.invalidateTags(tags),
    clear: () => { memory.clear() }
  }
  const app = await cachedApp(t, { store, ttl: 30 })
  const routes: Array<[string, string | undefined, number]> = [
    ['/none', undefined, 30],
    ['/longer', 'max-age=100', 30],
    ['/shorter', 'max-age=5', 5],
    ['/same', 'max-age=30', 30],
    ['/shared', 'max-age=1, s-maxage=20', 20],
    ['/shared-longer', 'max-age=1, s-maxage=90', 30]
  ]
  for (const [url, cacheControl] of routes) {
    app.get(url, { config: { cache: true } }, async (_request, reply) => {
      if (cacheControl !== undefined) reply.header('cache-control', cacheControl)
      return url
    })
  }
  for (const [url] of routes) await app.inject(url)
  t.same(entries.map((e) => e.ttl), routes.map(([, , ttl]) => ttl))
})

t.test('honorClientNoCache: each request directive that refreshes, and those that do not', async (t) => {
  const app = await cachedApp(t, { honorClientNoCache: true })
  const runs = counter()
  app.get('/n', { config: { cache: true } }, async () => ({ run: runs.next() }))
  await app.inject('/n')
  const refreshes = [{ 'cache-control': 'no-cache' }, { 'cache-control': 'max-age=0' }, { 'cache-control': 'public, no-cache' }, { pragma: 'no-cache' }, { pragma: 'x, no-cache' }]
  const served = [{ 'cache-control': 'max-age=5' }, { 'cache-control': 'no-store' }, { 'cache-control': 'public' }, { pragma: 'x' }, {}]
  for (const headers of refreshes) t.equal((await app.inject({ url: '/n', headers })).headers['x-cache'], 'MISS', JSON.stringify(headers))
  for (const headers of served) t.equal((await app.inject({ url: '/n', headers })).headers['x-cache'], 'HIT', JSON.stringify(headers))
  t.equal(runs.runs, 1 + refreshes.length)
})

t.test('QUERY requests are cached and keyed by their body, like POST', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.route({ method: 'QUERY', url: '/q', config: { cache: true }, handler: async (request) => ({ body: request.body, run: runs.next() }) })
  const ask = async (q: string): Promise<string | undefined> => (await app.inject({ method: 'QUERY', url: '/q', payload: { q } })).headers['x-cache'] as string | undefined
  t.equal(await ask('a'), 'MISS')
  t.equal(await ask('a'), 'HIT')
  t.equal(await ask('b'), 'MISS')
  t.equal(runs.runs, 2)
})

t.test('storedHeaders: hop-by-hop, set-cookie, length, date and the cache\'s own headers are never stored', async (t) => {
  const dropped = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te',
    'trailer', 'transfer-encoding', 'upgrade', 'set-cookie', 'content-length', 'x-cache', 'age', 'date']
  const headers: Record<string, string | string[] | number | undefined> = { 'content-type': 'text/plain', 'x-n': 5, 'x-list': ['a', 'b'], 'x-gone': undefined }
  for (const name of dropped) headers[name] = name === 'connection' ? 'close, X-Secret ,x-other' : 'v'
  headers['x-secret'] = 'named by connection'
  headers['x-other'] = 'named by connection'
  t.strictSame(storedHeaders(headers), { 'content-type': 'text/plain', 'x-n': '5', 'x-list': ['a', 'b'] })
  t.strictSame(storedHeaders({ connection: ['x-a', 'x-b'], 'x-a': '1', 'x-b': '2', 'x-c': '3' }), { 'x-c': '3' }, 'connection given as a list')
})

t.test('a 304 carries exactly the validator and caching headers of the entry', async (t) => {
  const app = await cachedApp(t)
  const sent = {
    'cache-control': 'public, max-age=30',
    'content-location': '/doc.en',
    expires: 'Thu, 01 Jan 2099 00:00:00 GMT',
    vary: 'x-a',
    'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT',
    'x-extra': 'body header'
  }
  app.get('/doc', { config: { cache: { vary: ['x-a'] } } }, async (_request, reply) => reply.headers(sent).send('doc'))
  const miss = await app.inject('/doc')
  const notModified = await app.inject({ url: '/doc', headers: { 'if-none-match': miss.headers.etag as string } })
  t.equal(notModified.statusCode, 304)
  t.equal(notModified.headers.etag, miss.headers.etag)
  for (const name of NOT_MODIFIED_HEADERS) if (name !== 'etag') t.equal(notModified.headers[name], sent[name as keyof typeof sent], name)
  t.equal(notModified.headers['x-extra'], undefined)
  t.same([...NOT_MODIFIED_HEADERS].sort(), ['cache-control', 'content-location', 'etag', 'expires', 'last-modified', 'vary'])
})

t.test('etagMatches: weak comparison, lists, and *', async (t) => {
  const cases: Array<[string | undefined, string, boolean]> = [
    [undefined, '"a"', false],
    ['"a"', '"a"', true],
    ['"b"', '"a"', false],
    ['W/"a"', '"a"', true],
    ['"a"', 'W/"a"', true],
    ['W/"a"', 'W/"a"', true],
    ['"x", "a"', '"a"', true],
    ['"x",W/"a"', '"a"', true],
    ['  "a"  ', '"a"', true],
    ['"x", "y"', '"a"', false],
    ['*', '"a"', true],
    [' * ', '"a"', true],
    ['"*"', '"a"', false],
    ['a', '"a"', false],
    ['W/', '"a"', false],
    ['', '"a"', false]
  ]
  for (const [ifNoneMatch, etag, expected] of cases) t.equal(etagMatches(ifNoneMatch, etag), expected, `${String(ifNoneMatch)} vs ${etag}`)
})

t.test('payloadBytes: strings and views copied into bytes of their own; nothing else', async (t) => {
  t.same([...payloadBytes('héllo') as Buffer], [...Buffer.from('héllo')])
  t.equal((payloadBytes(undefined) as Buffer).length, 0)
  t.equal((payloadBytes(null) as Buffer).length, 0)
  const backing = new Uint8Array([9, 1, 2, 3, 9])
  const view = new Uint8Array(backing.buffer, 1, 3)
  const copy = payloadBytes(view) as Buffer
  t.same([...copy], [1, 2, 3], 'the view, not its whole buffer')
  backing[1] = 7
  t.same([...copy], [1, 2, 3], 'a copy')
  t.same([...payloadBytes(new Uint16Array([0x0102])) as Buffer], [...Buffer.from(new Uint16Array([0x0102]).buffer)])
  t.equal(payloadBytes(Readable.from(['a'])), undefined)
  t.equal(payloadBytes({ a: 1 }), undefined)
})

import { Readable } from 'node:stream'
import t from 'tap'
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
    ['vary on an unkeyed header', (reply) => { reply.header('vary', 'Accept-Encoding'); return 'x' }],
    ['a 404', (reply) => reply.code(404).send('gone')],
    ['a 500', (reply) => reply.code(500).send('broken')],
    ['a 503', (reply) => reply.code(503).send('busy')],
    ['a thrown error', () => { throw new Error('boom') }],
    ['a stream', () => Readable.from(['a', 'b'])],
    ['a body over maxEntryBytes', () => 'x'.repeat(101)]
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

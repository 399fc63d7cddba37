// A transparent cache: random requests against a deterministic app, with and without the plugin,
// get the same status, body and headers once x-cache, cache-status, age, etag and date are set aside.
import Fastify, { type FastifyInstance, type InjectOptions, type LightMyRequestResponse } from 'fastify'
import fc from 'fast-check'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { storeKinds } from './helpers/stores.js'

const SET_ASIDE = new Set(['x-cache', 'cache-status', 'age', 'etag', 'date'])

function deterministicApp (app: FastifyInstance, cache: boolean): void {
  const on = <T>(config: T): { cache: T | false } => ({ cache: cache ? config : false })
  app.get('/items/:id', { config: on(true) }, async (request, reply) => {
    const { id } = request.params as { id: string }
    if (id === 'missing') return await reply.code(404).send({ error: 'not found' })
    return { id, query: request.query }
  })
  app.get('/lang', { config: on({ vary: ['accept-language'] }) }, async (request, reply) => {
    reply.header('vary', 'Accept-Language')
    return { lang: request.headers['accept-language'] ?? 'none' }
  })
  // Answers what it parsed in a fixed order: bodies that differ only in key order share an entry.
  app.post('/search', { bodyLimit: 64, config: on(true) }, async (request) => {
    const body = request.body as { q?: unknown, page?: unknown } | null
    return { q: body?.q ?? null, page: body?.page ?? null }
  })
  app.get('/private', { config: on(true) }, async (_request, reply) => {
    reply.header('cache-control', 'private, max-age=60')
    return { mine: true }
  })
  app.get('/session', { config: on(true) }, async (_request, reply) => {
    reply.header('set-cookie', 'sid=fixed; HttpOnly')
    return { session: true }
  })
  app.get('/tenant', { config: on(true) }, async (request) => ({ tenant: request.headers['x-tenant'] ?? null }))
  app.get('/cookies-ignored', { config: on({ ignoreCookies: true }) }, async () => ({ same: 'for everyone' }))
  app.get('/created', { config: on({ statusCodes: [201] }) }, async (_request, reply) => reply.code(201).send({ created: true }))
}

function comparable (r: LightMyRequestResponse): { status: number, body: string, headers: Record<string, unknown> } {
  const headers: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(r.headers)) if (!SET_ASIDE.has(name)) headers[name] = value
  return { status: r.statusCode, body: r.body, headers }
}

/** Absent most of the time, so that most requests can use the cache. */
const header = (values: string[]): fc.Arbitrary<string | undefined> => fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom(...values) }
)

const requestArb: fc.Arbitrary<InjectOptions> = fc.record({
  method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST'),
  path: fc.constantFrom('/items/1', '/items/2', '/items/missing', '/items/%31', '/lang', '/private', '/session', '/tenant', '/cookies-ignored', '/created', '/search', '/nowhere'),
  query: fc.option(fc.constantFrom('?a=1', '?a=1&b=2', '?b=2&a=1', '?a=%31', '?a=1&a=2', '?a=*&b=:'), { nil: undefined }),
  lang: header(['en', 'fr', 'de;q=0.5']),
  authorization: header(['Bearer a', 'Bearer b']),
  cookie: header(['sid=1', 'sid=2']),
  tenant: header(['acme', 'globex', 'a:b']),
  // Raw bytes: key orders, whitespace, a body that does not parse, one at and one a byte over bodyLimit.
  body: fc.constantFrom(
    '{"q":"tea","page":1}', '{"page":1,"q":"tea"}', '{ "q": "tea", "page": 1 }', '{"q":"coffee","page":2}',
    '{"page":2,\n"q":"coffee"}', '{"q":"tea"', '', 'null', '{"q":"' + 'x'.repeat(56) + '"}', '{"q":"' + 'x'.repeat(57) + '"}'
  )
}).map((r) => {
  const headers: Record<string, string> = {}
  if (r.lang !== undefined) headers['accept-language'] = r.lang
  if (r.authorization !== undefined) headers.authorization = r.authorization
  if (r.cookie !== undefined) headers.cookie = r.cookie
  if (r.tenant !== undefined) headers['x-tenant'] = r.tenant
  const method = r.path === '/search' ? 'POST' : r.method === 'POST' ? 'GET' : r.method
  const options: InjectOptions = { method: method as InjectOptions['method'], url: r.path + (r.query ?? ''), headers }
  if (method === 'POST') {
    headers['content-type'] = 'application/json'
    options.payload = r.body
  }
  return options
})

for (const [kind, options] of await storeKinds(t)) {
  t.test(`${kind}: with and without the plugin, every random request gets the same answer`, async (t) => {
    const plugin: ResponseCacheOptions = { ...options(), tenant: (request) => request.headers['x-tenant'] as string | undefined }
    const cached = Fastify()
    const plain = Fastify()
    t.teardown(async () => { await Promise.all([cached.close(), plain.close()]) })
    await cached.register(responseCache, plugin)
    deterministicApp(cached, true)
    deterministicApp(plain, false)
    await Promise.all([cached.ready(), plain.ready()])
    let compared = 0
    await fc.assert(fc.asyncProperty(fc.array(requestArb, { minLength: 1, maxLength: 25 }), async (requests) => {
      for (const request of requests) {
        const [a, b] = [await cached.inject(request), await plain.inject(request)]
        compared++
        if (JSON.stringify(comparable(a)) !== JSON.stringify(comparable(b))) {
          throw new Error(`${String(request.method)} ${String(request.url)} ${JSON.stringify(request.headers)}: ${JSON.stringify(comparable(a))} != ${JSON.stringify(comparable(b))}`)
        }
      }
    }), { numRuns: 60, seed: 20261122 })
    t.ok(compared > 300, `${compared} requests compared`)
    const { total } = cached.cache.stats()
    t.ok(total.hits > 50, `hits ${total.hits}, misses ${total.misses}, bypasses ${total.bypasses}`)
  })
}

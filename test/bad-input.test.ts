import Fastify, { type FastifyInstance, type InjectOptions, type LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { counter } from './helpers/app.js'
import { storeKinds } from './helpers/stores.js'

const SET_ASIDE = new Set(['x-cache', 'cache-status', 'age', 'etag', 'date'])

function comparable (response: LightMyRequestResponse): { status: number, body: string, headers: Record<string, unknown> } {
  const headers: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(response.headers)) if (!SET_ASIDE.has(name)) headers[name] = value
  // A compressible answer the cache looked up says it varies on Accept-Encoding (the cache would
  // compress it for a client that asks: docs/API.md, Compression), whatever this request sent.
  if (response.headers.vary === 'accept-encoding' && response.statusCode < 400) delete headers.vary
  return { status: response.statusCode, body: response.body, headers }
}

/** The same routes twice: with the plugin and without it. */
async function twins (t: Test, options: ResponseCacheOptions = {}): Promise<[FastifyInstance, FastifyInstance, { runs: number }]> {
  const runs = counter()
  const build = async (withCache: boolean): Promise<FastifyInstance> => {
    const app = Fastify({ bodyLimit: 4096, routerOptions: { maxParamLength: 200 } })
    t.teardown(() => app.close())
    if (withCache) await app.register(responseCache, { maxEntryBytes: 1000, ...options })
    app.post('/search', {
      config: { cache: true },
      schema: { body: { type: 'object', required: ['q'], properties: { q: { type: 'string' } } } }
    }, async (request) => { runs.next(); return { q: (request.body as { q: string }).q } })
    app.get('/echo/:id', { config: { cache: true } }, async (request) => ({ params: request.params, query: request.query }))
    app.get('/big', { config: { cache: true } }, async () => 'x'.repeat(5000))
    await app.ready()
    return app
  }
  return [await build(true), await build(false), runs]
}

const requests: Array<[string, InjectOptions]> = [
  ['malformed JSON', { method: 'POST', url: '/search', headers: { 'content-type': 'application/json' }, payload: '{"q": ' }],
  ['JSON of the wrong shape', { method: 'POST', url: '/search', payload: { nope: 1 } }],
  ['an unsupported content type', { method: 'POST', url: '/search', headers: { 'content-type': 'application/x-nope' }, payload: 'q' }],
  ['a body over bodyLimit', { method: 'POST', url: '/search', payload: { q: 'x'.repeat(5000) } }],
  ['invalid UTF-8 in JSON', { method: 'POST', url: '/search', headers: { 'content-type': 'application/json' }, payload: Buffer.from([0x7b, 0x22, 0x71, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }],
  ['a very long URL', { url: '/echo/1?x=' + 'a'.repeat(60_000) }],
  ['a parameter over maxParamLength', { url: '/echo/' + 'a'.repeat(300) }],
  ['many query parameters', { url: '/echo/1?' + Array.from({ length: 2000 }, (_, i) => `p${i}=${i}`).join('&') }],
  ['huge headers', { url: '/echo/1', headers: { 'x-big': 'a'.repeat(15_000), 'x-many': Array.from({ length: 200 }, (_, i) => `v${i}`).join(',') } }],
  ['odd header values', { url: '/echo/1', headers: { 'x-odd': ' \t', accept: '*/*;;;', 'if-none-match': ',,,', 'content-length': '0' } }],
  ['percent-encoding that does not decode', { url: '/echo/%E0%A4%A' }],
  ['a response over maxEntryBytes', { url: '/big' }]
]

for (const [kind, storeOptions] of await storeKinds(t)) {
  t.test(`${kind}: bad input is answered exactly as Fastify answers it without the plugin, and nothing is stored`, async (t) => {
    const [cached, plain] = await twins(t, storeOptions())
    for (const [name, request] of requests) {
      const withPlugin = await cached.inject(request)
      const again = await cached.inject(request)
      const without = await plain.inject(request)
      t.same(comparable(withPlugin), comparable(without), name)
      t.same(comparable(again), comparable(without), `${name}, asked again`)
      // What Fastify refuses is never stored; what it accepts (odd but valid) may be.
      if (without.statusCode >= 400) t.not(again.headers['x-cache'], 'HIT', `${name}: not served from cache`)
    }
    // Stored: the JSON with invalid UTF-8 (Fastify decodes it) and the odd headers; the echoes of
    // the long URL and the many parameters are over maxEntryBytes.
    t.equal(cached.cache.stats().total.stores, 2)
  })
}

t.test('a throwing tenant or key function bypasses the cache instead of failing the request', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { tenant: () => { throw new Error('no tenant') } })
  app.get('/t', { config: { cache: true } }, async () => 'fine')
  app.get('/k', { config: { cache: { key: () => { throw new Error('no key') } } } }, async () => 'fine')
  for (const url of ['/t', '/k']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 200)
    t.equal(r.body, 'fine')
    t.equal(r.headers['x-cache'], 'BYPASS')
  }
})

t.test('a throwing tags function serves the response and stores nothing', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache)
  app.get('/tags', { config: { cache: { tags: () => { throw new Error('no tags') } } } }, async () => 'fine')
  const r = await app.inject('/tags')
  t.equal(r.statusCode, 200)
  t.equal(r.body, 'fine')
  t.equal((await app.inject('/tags')).headers['x-cache'], 'MISS')
})

t.test('typed arrays are stored as bytes; the handler reusing its buffer changes nothing stored', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache)
  const shared = Buffer.from('first')
  app.get('/buf', { config: { cache: true } }, async (_request, reply) => reply.type('text/plain').send(shared))
  app.get('/u8', { config: { cache: true } }, async (_request, reply) => reply.type('application/octet-stream').send(new Uint8Array([1, 2, 3])))
  await app.inject('/buf')
  shared.write('xxxxx')
  t.equal((await app.inject('/buf')).body, 'first')
  await app.inject('/u8')
  const hit = await app.inject('/u8')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.same([...hit.rawPayload], [1, 2, 3])
})

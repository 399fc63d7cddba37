// @fastify/helmet next to the cache (issue 26, point 4), registered as its README shows: hits carry
// every security header the app without the cache sends, on the memory store and on Redis; with CSP
// nonces, a cached page's nonce and its CSP header agree.
import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import responseCache, { type ResponseCacheOptions } from '../../lib/index.js'
import { startRedis } from '../helpers/redis.js'
import { CATALOGUE, counter, NAVIGATION, serve, servePair, stableHeaders } from './helpers.js'

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
let namespaces = 0

const EXPECTED = JSON.stringify(CATALOGUE)
const SECURITY_HEADERS = [
  'content-security-policy', 'cross-origin-opener-policy', 'cross-origin-resource-policy', 'origin-agent-cluster',
  'referrer-policy', 'strict-transport-security', 'x-content-type-options', 'x-dns-prefetch-control',
  'x-download-options', 'x-frame-options', 'x-permitted-cross-domain-policies', 'x-xss-protection'
]

const stores: Array<[string, (t: Test) => ResponseCacheOptions]> = [
  ['memory', () => ({ store: 'memory' })],
  ['redis', (t) => {
    const redis = new Redis(url)
    t.teardown(() => { redis.disconnect() })
    return { store: 'redis', redis, namespace: `helmet${++namespaces}`, timeout: 2000 }
  }]
]

function builder (helmet: FastifyHelmetOptions | undefined, cache: ResponseCacheOptions, runs: { next: () => number }): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    // The README's form: `fastify.register(helmet, { contentSecurityPolicy: false })`, or with no options.
    await app.register(fastifyHelmet, helmet ?? {})
    if (withCache) await app.register(responseCache, { ttl: 60, ...cache })
    app.get('/catalogue', { config: { cache: true } }, async () => {
      if (withCache) runs.next()
      return CATALOGUE
    })
    app.get('/page', { config: { cache: true } }, async (_request, reply) => {
      if (withCache) runs.next()
      return await reply.type('text/html').send('<!doctype html><title>Shop</title><h1>Shop</h1>')
    })
    return app
  }
}

for (const [storeName, cacheOptions] of stores) {
  for (const [name, helmet] of [['no options', undefined], ['the README\'s `{ contentSecurityPolicy: false }`', { contentSecurityPolicy: false }]] as const) {
    t.test(`${storeName} store, helmet with ${name}: hits carry every security header, as without the cache`, async (t) => {
      const runs = counter()
      const { cached, plain } = await servePair(t, builder(helmet, cacheOptions(t), runs))
      for (const [path, headers] of [['/catalogue', undefined], ['/page', NAVIGATION]] as const) {
        const without = await plain(path, { headers })
        t.match(await cached(path, { headers }), { status: 200, cache: 'MISS', body: without.body })
        const hit = await cached(path, { headers })
        t.match(hit, { status: 200, cache: 'HIT', body: without.body }, `${path}: HIT after MISS, the same bytes`)
        for (const header of SECURITY_HEADERS) {
          if (header === 'content-security-policy' && helmet !== undefined) t.equal(hit.headers[header], undefined, 'CSP switched off stays off')
          else t.equal(hit.headers[header], without.headers[header], `${path}: ${header} on the hit`)
        }
        t.same(stableHeaders(hit), stableHeaders(without), `${path}: every header as without the cache`)
      }
      t.equal(runs.runs, 2)
      t.equal((await cached('/catalogue')).body, EXPECTED)
    })
  }
}

t.test('CSP nonces (`enableCSPNonces: true`): the nonce in a cached page is the one its CSP header allows', async (t) => {
  const app = Fastify()
  await app.register(fastifyHelmet, { enableCSPNonces: true })
  await app.register(responseCache, { ttl: 60 })
  // The README's form: the page takes its nonces from reply.cspNonce.
  app.get('/page', { config: { cache: true } }, async (_request, reply) => {
    return await reply.type('text/html').send(`<!doctype html><script nonce="${reply.cspNonce.script}">start()</script><style nonce="${reply.cspNonce.style}">h1{}</style>`)
  })
  const cached = await serve(t, app)
  for (const expected of ['MISS', 'HIT']) {
    const answer = await cached('/page', { headers: NAVIGATION })
    t.equal(answer.cache, expected)
    const scriptNonce = /<script nonce="([^"]+)"/.exec(answer.body)?.[1] as string
    const styleNonce = /<style nonce="([^"]+)"/.exec(answer.body)?.[1] as string
    const csp = answer.headers['content-security-policy'] as string
    t.match(csp, `script-src 'self' 'nonce-${scriptNonce}'`, `${expected}: the script's nonce is allowed`)
    t.match(csp, `style-src 'self' https: 'unsafe-inline' 'nonce-${styleNonce}'`, `${expected}: the style's nonce is allowed`)
  }
})

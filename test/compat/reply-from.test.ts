// @fastify/reply-from next to the cache (issue 26, point 4), registered as its README shows: a cached
// route that proxies to an upstream Fastify app stores the proxied body (default mode, and origin
// mode as in the README's "caching reverse proxy"), on the memory store and on Redis; the browser
// gets the upstream's bytes, as through the proxy without the cache.
import fastifyReplyFrom from '@fastify/reply-from'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import responseCache, { type ResponseCacheOptions } from '../../lib/index.js'
import { startRedis } from '../helpers/redis.js'
import { CATALOGUE, counter, serve, servePair, stableHeaders } from './helpers.js'

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
let namespaces = 0
const EXPECTED = JSON.stringify(CATALOGUE)

const stores: Array<[string, (t: Test) => ResponseCacheOptions]> = [
  ['memory', () => ({ store: 'memory' })],
  ['redis', (t) => {
    const redis = new Redis(url)
    t.teardown(() => { redis.disconnect() })
    return { store: 'redis', redis, namespace: `proxy${++namespaces}`, timeout: 2000 }
  }]
]

/** The upstream: a Fastify app of its own, counting what reaches it. */
async function upstream (t: Test, runs: { next: () => number }): Promise<string> {
  const app = Fastify()
  app.get('/catalogue', async (_request, reply) => {
    runs.next()
    return await reply.header('cache-control', 'public, max-age=60').header('etag', '"catalogue-v1"').send(CATALOGUE)
  })
  app.get('/private', async (_request, reply) => {
    runs.next()
    return await reply.header('cache-control', 'private').send({ mine: true })
  })
  t.teardown(async () => { await app.close() })
  return await app.listen({ port: 0, host: '127.0.0.1' })
}

function proxy (base: string, cache: ResponseCacheOptions): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    // The README's form: `proxy.register(require('@fastify/reply-from'), { base })`, `reply.from(path)` in the route.
    await app.register(fastifyReplyFrom, { base })
    if (withCache) await app.register(responseCache, cache)
    app.get('/catalogue', { config: { cache: true } }, async (request, reply) => await reply.from(request.url))
    app.get('/private', { config: { cache: true } }, async (request, reply) => await reply.from(request.url))
    return app
  }
}

for (const [storeName, storeOptions] of stores) {
  for (const ttl of [60, 'origin'] as const) {
    t.test(`${storeName} store, ttl ${ttl}: the proxied body is cached; the browser gets the upstream's bytes`, async (t) => {
      const runs = counter()
      const base = await upstream(t, runs)
      const { cached, plain } = await servePair(t, proxy(base, { ...storeOptions(t), ttl }))
      const without = await plain('/catalogue')
      t.equal(without.body, EXPECTED)
      t.equal(runs.runs, 1)

      t.match(await cached('/catalogue'), { status: 200, cache: 'MISS', body: EXPECTED })
      const hit = await cached('/catalogue')
      t.match(hit, { status: 200, cache: 'HIT', body: without.body }, 'HIT after MISS, the upstream\'s bytes')
      t.equal(hit.headers.etag, '"catalogue-v1"', 'the upstream\'s etag')
      t.equal(hit.headers['cache-control'], 'public, max-age=60')
      t.same(stableHeaders(hit, 'transfer-encoding', 'content-length'), stableHeaders(without, 'transfer-encoding', 'content-length'))
      t.match(await cached('/catalogue', { headers: { 'if-none-match': '"catalogue-v1"' } }), { status: 304, cache: 'HIT', body: '' })
      t.equal(runs.runs, 2, 'the upstream was asked once through the cache')

      // `private` from the upstream: passed on, never stored.
      for (let i = 0; i < 2; i++) t.match(await cached('/private'), { status: 200, cache: 'MISS', body: '{"mine":true}' })
      t.equal(runs.runs, 4)
    })
  }
}

t.test('the README\'s caching reverse proxy: every path forwarded, GET cached by the origin\'s headers, writes invalidate', async (t) => {
  const runs = counter()
  const target = Fastify()
  let version = 1
  target.get('/items/:id', async (request, reply) => {
    runs.next()
    return await reply.header('cache-control', 'max-age=60').send({ id: (request.params as { id: string }).id, version })
  })
  target.put('/items/:id', async () => {
    version++
    return { ok: true }
  })
  t.teardown(async () => { await target.close() })
  const base = await target.listen({ port: 0, host: '127.0.0.1' })

  const app = Fastify()
  await app.register(fastifyReplyFrom, { base })
  await app.register(responseCache, { ttl: 'origin' })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  const forward = async (_request: unknown, reply: { from: () => unknown }): Promise<unknown> => await reply.from()
  app.get('/*', { config: { cache: true } }, forward)
  app.route({ method: app.supportedMethods.filter((m) => m !== 'GET' && m !== 'HEAD'), url: '/*', handler: forward })
  const get = await serve(t, app)

  t.match(await get('/items/1'), { status: 200, cache: 'MISS', body: '{"id":"1","version":1}' })
  t.match(await get('/items/1'), { status: 200, cache: 'HIT', body: '{"id":"1","version":1}' })
  t.match(await get('/items/1', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' }), { status: 200 })
  t.match(await get('/items/1'), { status: 200, cache: 'MISS', body: '{"id":"1","version":2}' }, 'the PUT dropped the entry')
  t.equal(runs.runs, 2)
})

// @fastify/under-pressure next to the cache (issue 26, point 4), registered as its README shows
// (thresholds, its status route, a health check): its status route answers as before next to cached
// routes, and an instance under pressure answers 503 on a cached route although the shared entry
// (Redis) exists.
import fastifyUnderPressure, { type FastifyUnderPressureOptions } from '@fastify/under-pressure'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../../lib/index.js'
import { startRedis } from '../helpers/redis.js'
import { CATALOGUE, counter, serve, servePair, stableHeaders } from './helpers.js'

// The README's thresholds, raised to what a test process may use (its 100 MB of RSS is less than tap's).
const THRESHOLDS: FastifyUnderPressureOptions = {
  maxEventLoopDelay: 1000,
  maxHeapUsedBytes: 4_000_000_000,
  maxRssBytes: 8_000_000_000,
  exposeStatusRoute: true
}

async function build (pressure: FastifyUnderPressureOptions, cache: ResponseCacheOptions | undefined, runs: { next: () => number }): Promise<FastifyInstance> {
  const app = Fastify()
  if (cache !== undefined) await app.register(responseCache, cache)
  await app.register(fastifyUnderPressure, pressure)
  app.get('/catalogue', { config: { cache: true } }, async () => {
    runs.next()
    return CATALOGUE
  })
  return app
}

t.test('its status route next to cached routes: answered as without the cache, never cached', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, async (withCache) => await build(THRESHOLDS, withCache ? { ttl: 60 } : undefined, withCache ? runs : counter()))
  const without = await plain('/catalogue')
  t.match(await cached('/catalogue'), { status: 200, cache: 'MISS', body: without.body })
  t.match(await cached('/catalogue'), { status: 200, cache: 'HIT', body: without.body })
  t.equal(runs.runs, 1)
  for (let i = 0; i < 2; i++) {
    const status = await cached('/status')
    const plainStatus = await plain('/status')
    t.match(status, { status: 200, body: '{"status":"ok"}' })
    t.equal(status.cache, undefined, 'the status route is not cached')
    t.same(stableHeaders(status), stableHeaders(plainStatus))
  }
})

t.test('Redis: an instance whose health check fails answers 503 on a cached route while the shared entry exists', async (t) => {
  const server = await startRedis(t)
  const url = `redis://${await server.getHost()}:${await server.getPort()}`
  const clients: Redis[] = []
  t.teardown(() => { for (const client of clients) client.disconnect() })
  const cache = (): ResponseCacheOptions => {
    const redis = new Redis(url)
    clients.push(redis)
    return { store: 'redis', redis, namespace: 'pressure', ttl: 60, timeout: 2000 }
  }
  let healthy = true
  // The README's health check form; the check at registration is the one that counts here.
  const checked = (ok: boolean): FastifyUnderPressureOptions => ({ ...THRESHOLDS, healthCheck: async () => ok, healthCheckInterval: 60_000 })
  const runs = counter()
  const fine = await serve(t, await build(checked(healthy), cache(), runs))
  healthy = false
  const strained = await serve(t, await build(checked(healthy), cache(), runs))
  const plainStrained = await serve(t, await build(checked(healthy), undefined, counter()))

  t.match(await fine('/catalogue'), { status: 200, cache: 'MISS', body: JSON.stringify(CATALOGUE) })
  t.match(await fine('/catalogue'), { status: 200, cache: 'HIT' }, 'the entry is in Redis')
  const refused = await strained('/catalogue')
  const plainRefused = await plainStrained('/catalogue')
  t.equal(plainRefused.status, 503)
  t.equal(refused.status, 503, 'under pressure: 503, not the shared entry')
  t.equal(refused.body, plainRefused.body)
  t.equal(refused.headers['retry-after'], plainRefused.headers['retry-after'])
  t.match(await strained('/status'), { status: 503 })
  t.match(await fine('/catalogue'), { status: 200, cache: 'HIT' }, 'the healthy instance still answers from the entry')
  t.equal(runs.runs, 1)
})

import Fastify, { type FastifyInstance } from 'fastify'
import { Redis, type RedisOptions } from 'ioredis'
import t from 'tap'
import responseCache from '../lib/index.js'
import { BREAKER_THRESHOLD, CircuitBreaker } from '../lib/stores/breaker.js'
import { counter, logCapture } from './helpers/app.js'
import { eventually } from './helpers/events.js'
import { freePort, spawnPausableRedis, spawnRedis } from './helpers/redis.js'

// The plugin's default is 100 ms; 300 keeps the setup's MISS-then-HIT clear of a loaded machine's stalls.
const TIMEOUT_MS = 300
/** A request that takes longer than this while Redis is gone counts as hanging. */
const HANG_MS = TIMEOUT_MS + 900

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function answeredInTime (app: FastifyInstance, url: string): Promise<{ status: number, cache: string }> {
  const deadline = sleep(HANG_MS).then(() => 'hung' as const)
  const response = app.inject(url).then((r) => ({ status: r.statusCode, cache: String(r.headers['x-cache']) }))
  const first = await Promise.race([response, deadline])
  if (first === 'hung') throw new Error(`${url} took longer than ${HANG_MS} ms`)
  return first
}

/**
 * An app caching `/r` and `/other` on a Redis client of `options` (connected before it answers),
 * with the warn log captured; `/r` is a HIT when it answers.
 */
async function appOnRedis (t: Tap, options: RedisOptions): Promise<{ app: FastifyInstance, client: Redis, lines: Array<Record<string, unknown>> }> {
  const client = new Redis(options)
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await new Promise((resolve) => client.once('ready', resolve))
  const { lines, logger } = logCapture('warn')
  const app = Fastify({ logger })
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis: client, timeout: TIMEOUT_MS })
  const runs = counter()
  app.get('/r', { config: { cache: true } }, async () => ({ run: runs.next() }))
  app.get('/other', { config: { cache: true } }, async () => ({ run: runs.next() }))
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  return { app, client, lines }
}
type Tap = import('tap').Test

for (const clientKind of ['recommended options', 'ioredis defaults'] as const) {
  t.test(`Redis killed mid-test, then restarted (${clientKind})`, async (t) => {
    const port = await freePort()
    let server = await spawnRedis(port)
    t.teardown(async () => { await server.kill() })
    const options = clientKind === 'ioredis defaults'
      ? { port, retryStrategy: () => 50 }
      : { port, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 }
    const { app, client, lines } = await appOnRedis(t, options)

    await server.kill()
    const during = []
    for (let i = 0; i < 30; i++) during.push(await answeredInTime(app, '/r'))
    const queue = (client as unknown as { offlineQueue: { length: number } }).offlineQueue
    // With ioredis defaults, commands in flight at the kill wait for a retry; no request adds more.
    const queuedAtKill = queue.length
    t.ok(queuedAtKill <= 1, `queued at the kill: ${queuedAtKill}`)
    const concurrent = await Promise.all(Array.from({ length: 50 }, async () => await answeredInTime(app, '/r')))
    for (const r of [...during, ...concurrent]) {
      t.equal(r.status, 200)
      t.equal(r.cache, 'BYPASS')
    }
    t.equal(queue.length, queuedAtKill, 'nothing more queued behind the dead Redis')
    const warnings = lines.filter((l) => String(l.msg).startsWith('response cache store trouble'))
    t.equal(warnings.length, 1, 'store trouble logged once, not per request')
    t.ok(app.cache.stats().total.errors >= 80)
    const down = await app.cache.health()
    t.equal(down.ok, false, 'health says the store is down')
    t.equal(down.store, 'redis')
    t.equal(down.state, 'down', 'down, not connecting: the client had been ready')
    t.match(down.error, /client is|Connection is closed|ECONNREFUSED|timed out|paused/, 'and why')
    await t.rejects(app.cache.clear(), { message: /./ }, 'clear() says it did not happen')

    server = await spawnRedis(port)
    let resumed = false
    for (let attempt = 0; attempt < 150 && !resumed; attempt++) {
      await sleep(100)
      resumed = (await answeredInTime(app, '/r')).cache !== 'BYPASS'
    }
    t.ok(resumed, 'the cache is used again once Redis is back, with no restart of the app')
    await app.inject('/r')
    t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
    const up = await app.cache.health()
    t.equal(up.ok, true)
    t.equal(up.state, 'up')
    t.ok(up.latencyMs !== undefined && up.latencyMs > 0, `a real round trip: ${String(up.latencyMs)} ms`)
  })
}

t.test('Redis paused (connected, answering nothing), then resumed', async (t) => {
  const port = await freePort()
  const server = await spawnPausableRedis(port)
  t.teardown(async () => { server.resume(); await server.kill() })
  const { app, client, lines } = await appOnRedis(t, { port, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 })

  server.pause()
  const during = []
  for (let i = 0; i < 10; i++) during.push(await answeredInTime(app, i % 2 === 0 ? '/r' : '/other'))
  t.equal(client.status, 'ready', 'the client is still connected: only slow')
  for (const r of during) {
    t.equal(r.status, 200)
    t.equal(r.cache, 'BYPASS')
  }
  const slow = await app.cache.health()
  t.equal(slow.ok, false, 'health says the store is not answering')
  t.match(slow.error, /timed out|paused|timeout/i)
  t.equal(slow.state, 'down', 'connected but not answering is down')
  t.equal(await app.cache.invalidate({ tags: ['anything'] }), undefined, 'invalidate says it could not ask the store, no hang')
  const warnings = lines.filter((l) => String(l.msg).startsWith('response cache store trouble'))
  t.equal(warnings.length, 1, 'store trouble logged once, not per request')
  t.match(warnings[0], { responseCache: { code: 'FST_RESPONSE_CACHE_STORE_TIMEOUT' } })
  await t.rejects(app.cache.clear(), { message: /./ }, 'clear() says it did not happen')

  server.resume()
  t.ok(await eventually(async () => (await answeredInTime(app, '/r')).cache === 'HIT', 15_000), 'the cache is used again once Redis answers')
  const back = await app.inject('/r')
  t.equal(back.headers['x-cache'], 'HIT')
  t.same(back.json(), { run: 1 }, 'the entry from before the pause, untouched by the late answers')
  t.equal((await app.cache.health()).ok, true)
})

t.test('circuit breaker: opens after repeated failures, probes after the pause, closes on success', async (t) => {
  const breaker = new CircuitBreaker()
  const now = 1_000_000
  for (let i = 0; i < BREAKER_THRESHOLD - 1; i++) breaker.failure(now)
  t.equal(breaker.allow(now), true, 'not open before the threshold')
  breaker.failure(now)
  t.equal(breaker.allow(now), false, 'open')
  t.equal(breaker.allow(now + 999), false)
  t.equal(breaker.allow(now + 1000), true, 'probe after 1 s')
  breaker.failure(now + 1000)
  t.equal(breaker.allow(now + 2999), false, 'a failed probe reopens for twice as long')
  t.equal(breaker.allow(now + 3000), true)
  breaker.success()
  breaker.failure(now + 3000)
  t.equal(breaker.allow(now + 3000), true, 'a success closes it: one failure is not enough again')
  let at = now
  const capped = new CircuitBreaker()
  for (let j = 0; j < BREAKER_THRESHOLD; j++) capped.failure(at)
  for (let probe = 0; probe < 10; probe++) {
    while (!capped.allow(at)) at += 100
    capped.failure(at)
  }
  const pausedAt = at
  while (!capped.allow(at)) at += 100
  t.equal(at - pausedAt, 10_000, 'failed probes double the pause up to 10 s, no further')
  const fresh = new CircuitBreaker()
  for (let i = 0; i < BREAKER_THRESHOLD * 4; i++) fresh.failure(now)
  t.equal(fresh.allow(now + 1000), true, 'failures in flight while open do not lengthen the pause')
})

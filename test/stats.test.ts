import t from 'tap'
import { cachedApp, logCapture } from './helpers/app.js'

t.test('counters in total and per route', async (t) => {
  const app = await cachedApp(t)
  app.get('/a', { config: { cache: true } }, async () => 'a')
  app.get('/b', { config: { cache: true } }, async () => 'b')
  await app.inject('/a')
  await app.inject('/a')
  await app.inject('/a')
  await app.inject('/b')
  await app.inject({ url: '/b', headers: { authorization: 'x' } })
  const stats = app.cache.stats()
  t.same(stats.routes['GET /a'], { hits: 2, misses: 1, stale: 0, bypasses: 0, stores: 1, errors: 0, hitRatio: 2 / 3, lookupStage: 'onRequest' })
  t.same(stats.routes['GET /b'], { hits: 0, misses: 1, stale: 0, bypasses: 1, stores: 1, errors: 0, hitRatio: 0, lookupStage: 'onRequest' })
  t.same(stats.total, { hits: 2, misses: 2, stale: 0, bypasses: 1, stores: 2, errors: 0, hitRatio: 0.5 })
  t.equal(stats.store.name, 'memory')
  t.equal(stats.store.entries, 2)
  t.ok(stats.store.bytes > 0)
  t.equal(stats.store.evictions, 0)
})

t.test('statsRoute: off by default, JSON when on, protected by its own onRequest hook', async (t) => {
  const off = await cachedApp(t)
  await off.ready()
  t.equal((await off.inject('/cache/stats')).statusCode, 404)

  const app = await cachedApp(t, {
    tenant: (request) => request.headers['x-tenant'] as string,
    statsRoute: {
      path: '/ops/cache',
      onRequest: async (request, reply) => { if (request.headers['x-admin'] !== 'yes') await reply.code(401).send('no') }
    }
  })
  app.get('/items/:id', { config: { cache: true } }, async () => 'x')
  await app.inject({ url: '/items/secret-item', headers: { 'x-tenant': 'tenant-acme' } })
  t.equal((await app.inject('/ops/cache')).statusCode, 401)
  const r = await app.inject({ url: '/ops/cache', headers: { 'x-admin': 'yes' } })
  t.equal(r.statusCode, 200)
  const body = JSON.parse(r.body)
  t.equal(body.routes['GET /items/:id'].misses, 1)
  t.equal(body.store.entries, 1)
  t.same(Object.keys(body.health).sort(), ['latencyMs', 'ok', 'state', 'store'])
  t.equal(body.health.state, 'up')
  t.equal(body.health.ok, true)
  t.notMatch(r.body, /tenant-acme|secret-item|rc:/, 'no keys, tenant ids or values')
})

t.test('statsRoute without an onRequest guard: a warning at ready(), naming the path', async (t) => {
  const guardWarnings = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> =>
    lines.filter((line) => line.level === 40 && String(line.msg).includes('stats route has no onRequest guard'))
  for (const [statsRoute, path] of [[true, '/cache/stats'], [{ path: '/ops/cache' }, '/ops/cache']] as const) {
    const { lines, logger } = logCapture('warn')
    const app = await cachedApp(t, { statsRoute }, { logger })
    t.equal(guardWarnings(lines).length, 0, 'not before ready()')
    await app.ready()
    t.match(guardWarnings(lines), [{ responseCache: { statsRoute: path } }])
    t.equal((await app.inject(path)).statusCode, 200, 'the route still answers: the warning is the guard the app forgot')
  }
  const { lines, logger } = logCapture('warn')
  const guarded = await cachedApp(t, { statsRoute: { path: '/ops/cache', onRequest: async () => {} } }, { logger })
  await guarded.ready()
  t.equal(guardWarnings(lines).length, 0, 'a guarded route is not warned about')
})

t.test('health() of the memory store', async (t) => {
  const app = await cachedApp(t)
  const health = await app.cache.health()
  t.equal(health.ok, true)
  t.equal(health.store, 'memory')
  t.equal(health.state, 'up')
  t.ok(health.latencyMs !== undefined && health.latencyMs >= 0 && health.latencyMs < 1000, `latency ${String(health.latencyMs)}`)
})

t.test('health() measures the store\'s ping, and reports its failure', async (t) => {
  let down = false
  const store = {
    name: 'pinged',
    get: () => undefined,
    set: () => {},
    delete: () => false,
    invalidateTags: () => 0,
    clear: () => {},
    // Answers after at least 40 ms, or fails.
    ping: async () => {
      await new Promise((resolve) => setTimeout(resolve, 40))
      if (down) throw new Error('no route to host')
      return 'PONG'
    }
  }
  const app = await cachedApp(t, { store, timeout: 5000 })
  const up = await app.cache.health()
  t.equal(up.ok, true)
  t.ok(up.latencyMs !== undefined && up.latencyMs >= 35, `the ping's own time: ${String(up.latencyMs)} ms`)
  down = true
  const failed = await app.cache.health()
  t.equal(failed.ok, false)
  t.equal(failed.error, 'no route to host')
  t.equal(failed.state, 'down', 'a store that cannot tell its state is down when its ping fails')
  t.equal(failed.latencyMs, undefined)
})

t.test('evictions count the entries the memory bound pushed out', async (t) => {
  const app = await cachedApp(t, { memory: { maxBytes: 8192 } })
  app.get('/big/:id', { config: { cache: true } }, async () => 'x'.repeat(2000))
  for (let i = 0; i < 10; i++) await app.inject(`/big/${i}`)
  const { store, total } = app.cache.stats()
  t.equal(total.stores, 10)
  t.ok(store.entries > 0 && store.entries < 10, `${store.entries} entries fit`)
  t.equal(store.evictions, 10 - store.entries, 'every entry stored and no longer there was evicted')
  t.ok(store.bytes <= 8192)
})

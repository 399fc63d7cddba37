import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import responseCache from '../lib/index.js'
import { counter } from './helpers/app.js'
import { eventually, until } from './helpers/events.js'
import { freePort, spawnPausableRedis } from './helpers/redis.js'
import { patientsApp } from './helpers/tiered.js'

// Three instances of one app on one redis-server, each written as the README shows: a client from
// `new Redis(url)` and `store: 'tiered'`.

type Tap = import('tap').Test

async function instances (t: Tap, namespace: string, count = 3, routes = (app: FastifyInstance): void => {}): Promise<{ apps: FastifyInstance[], runs: { runs: number }, pause: () => void, resume: () => void, url: string }> {
  const port = await freePort()
  const server = await spawnPausableRedis(port)
  t.teardown(async () => { server.resume(); await server.kill() })
  const url = `redis://127.0.0.1:${port}`
  const runs = counter()
  const apps: FastifyInstance[] = []
  for (let i = 0; i < count; i++) {
    const redis = new Redis(url)
    redis.on('error', () => {})
    t.teardown(() => { redis.disconnect() })
    const app = await patientsApp(t, redis, namespace, runs)
    routes(app)
    await app.ready()
    apps.push(app)
  }
  return { apps, runs, pause: server.pause, resume: server.resume, url }
}

const xCache = async (app: FastifyInstance, path: string): Promise<unknown> => (await app.inject(path)).headers['x-cache']

t.test('one instance stores, the others hit; once in memory, a hit needs no Redis', async (t) => {
  const { apps: [a, b, c], runs, pause, resume } = await instances(t, 'share')
  t.equal(await xCache(a, '/patients/1'), 'MISS')
  t.equal(await xCache(a, '/patients/1'), 'HIT')
  t.equal(await xCache(b, '/patients/1'), 'HIT', 'from Redis')
  t.equal(await xCache(c, '/patients/1'), 'HIT')
  pause()
  for (const app of [a, b, c]) {
    const r = await app.inject('/patients/1')
    t.equal(r.headers['x-cache'], 'HIT', 'from its own memory while Redis answers nothing')
    t.same(r.json(), { id: '1', run: 1 })
  }
  const miss = await b.inject('/patients/2')
  t.same([miss.statusCode, miss.json()], [200, { id: '2', run: 2 }], 'a miss runs the handler without waiting on Redis beyond the timeout')
  t.equal(await xCache(b, '/patients/2'), 'HIT', 'and is kept in memory meanwhile')
  resume()
  t.equal(runs.runs, 2)
})

/** Until `app` no longer answers the body computed by the first run: its memory copy was dropped. */
const dropped = async (app: FastifyInstance, path: string): Promise<boolean> =>
  await eventually(async () => (await app.inject(path)).json().run !== 1)

t.test('an invalidation on one instance is gone from the memory of every other', async (t) => {
  const { apps: [a, b, c], runs } = await instances(t, 'invalidate')
  for (const app of [a, b, c]) t.same((await app.inject('/patients/1')).json(), { id: '1', run: 1 })
  t.equal(await a.cache.invalidate({ tags: ['patient:1'] }), 1)
  for (const app of [b, c]) t.ok(await dropped(app, '/patients/1'), 'dropped from its memory')
  t.ok(runs.runs <= 3, 'recomputed at most once per instance')
})

t.test('a 2xx write on one instance drops the GET entries of its path from every instance', async (t) => {
  const { apps, runs } = await instances(t, 'write', 3, (app) => { app.put('/patients/:id', async () => ({ saved: true })) })
  for (const app of apps) t.same((await app.inject('/patients/7')).json(), { id: '7', run: 1 })
  t.equal((await apps[0].inject({ method: 'PUT', url: '/patients/7', payload: {} })).statusCode, 200)
  for (const app of apps.slice(1)) t.ok(await dropped(app, '/patients/7'))
  t.ok(runs.runs <= 3)
})

t.test('a copy read from Redis is dropped by its own tags only: a drop of other tags or another path leaves it in memory', async (t) => {
  const { apps: [a, b], runs, pause, resume } = await instances(t, 'own-tags', 2, (app) => { app.put('/patients/:id', async () => ({ saved: true })) })
  for (const id of [1, 2, 3]) t.same((await a.inject(`/patients/${id}`)).json(), { id: String(id), run: id })
  for (const id of [1, 2, 3]) t.equal(await xCache(b, `/patients/${id}`), 'HIT', 'b reads it from Redis and keeps a copy')
  t.equal(await a.cache.invalidate({ tags: ['patient:1'] }), 1)
  t.ok(await dropped(b, '/patients/1'), 'the tag\'s entry is gone from b')
  t.equal((await a.inject({ method: 'PUT', url: '/patients/3', payload: {} })).statusCode, 200)
  t.ok(await eventually(async () => (await b.inject('/patients/3')).json().run !== 3), 'the written path is gone from b')
  pause()
  t.teardown(resume)
  const kept = await b.inject('/patients/2')
  t.same([kept.headers['x-cache'], kept.json()], ['HIT', { id: '2', run: 2 }], 'patient 2 still answers from b\'s memory while Redis answers nothing')
  resume()
  t.ok(runs.runs >= 4)
})

t.test('an entry invalidated by tag while in its stale window is not served stale afterwards, on any instance', async (t) => {
  const failing = { now: false }
  const { apps: [a, b] } = await instances(t, 'stale-window', 2, (app) => {
    app.get('/reports/:id', { config: { cache: { ttl: 1, staleIfError: 60, tags: (request) => [`report:${(request.params as { id: string }).id}`] } } }, async (_request, reply) => {
      if (failing.now) return await reply.code(503).send({ down: true })
      return { report: 1 }
    })
  })
  t.equal((await a.inject('/reports/1')).headers['x-cache'], 'MISS')
  const stored = Date.now()
  t.ok(await eventually(async () => (await b.inject('/reports/1')).headers['x-cache'] === 'HIT'), 'b has it from Redis')
  await until(stored, 1000)
  failing.now = true
  const stale = await b.inject('/reports/1')
  t.same([stale.statusCode, stale.headers['x-cache']], [200, 'STALE'], 'past its TTL, the failing handler is covered by the stale entry')
  t.equal(await a.cache.invalidate({ tags: ['report:1'] }), 1)
  for (const app of [a, b]) {
    t.ok(await eventually(async () => (await app.inject('/reports/1')).statusCode === 503), 'invalidated: the handler\'s answer, not the stale entry')
  }
})

t.test('a lost message is noticed: a gap in a sender\'s numbers empties the memory tier', async (t) => {
  const { apps: [a, b], pause, resume, url } = await instances(t, 'gap', 2)
  await a.inject('/patients/1')
  await b.inject('/patients/1')
  const raw = new Redis(url)
  t.teardown(() => { raw.disconnect() })
  // A sender whose message 2 never arrived.
  await raw.publish('gap:bus', JSON.stringify({ v: 1, s: 'other', n: 1, k: 'k', x: ['nothing'] }))
  await raw.publish('gap:bus', JSON.stringify({ v: 1, s: 'other', n: 3, k: 'k', x: ['nothing'] }))
  // Published after the gap by the same connection: once it has landed, the gap has too.
  await raw.publish('gap:bus', JSON.stringify({ v: 1, s: 'other', n: 4, k: 'k', x: ['nothing'] }))
  await raw.publish('gap:bus', 'not json')
  pause()
  t.ok(await eventually(async () => await xCache(b, '/patients/1') !== 'HIT'), 'b no longer trusts what it held')
  resume()
})

t.test('the bus connection lost and back: what was held before is not trusted', async (t) => {
  const { apps: [a, b], url } = await instances(t, 'reconnect', 2)
  await a.inject('/patients/1')
  t.equal(await xCache(b, '/patients/1'), 'HIT')
  const raw = new Redis(url)
  t.teardown(() => { raw.disconnect() })
  // Both instances' subscriber connections killed, and the entry invalidated while they are away.
  await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  t.equal(await a.cache.invalidate({ tags: ['patient:1'] }), 1)
  t.ok(await eventually(async () => (await raw.pubsub('NUMSUB', 'reconnect:bus') as [string, number])[1] === 2), 'both subscribed again')
  // b empties its memory once its own client has read the subscription's confirmation, a moment
  // after the server counts it.
  t.ok(await eventually(async () => (await b.inject('/patients/1')).headers['x-cache'] !== 'HIT'), 'b does not answer the entry dropped while its bus was away')
})

t.test('Redis not there at start: the instances start, and once Redis comes the bus carries their changes', async (t) => {
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  const runs = counter()
  const clients: Redis[] = []
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const redis = new Redis(url)
    redis.on('error', () => {})
    t.teardown(() => { redis.disconnect() })
    clients.push(redis)
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(responseCache, { store: 'tiered', redis, namespace: 'late', readyTimeout: 200 })
    app.get('/patients/:id', { config: { cache: { ttl: 600, tags: ['patients'] } } }, async () => ({ run: runs.next() }))
    await app.ready()
    apps.push(app)
  }
  const [a, b] = apps
  t.same((await a.inject('/patients/1')).json(), { run: 1 })
  t.equal(await xCache(a, '/patients/1'), 'HIT', 'memory answers while Redis is away')
  const server = await spawnPausableRedis(port)
  t.teardown(async () => { await server.kill() })
  const raw = new Redis(url)
  t.teardown(() => { raw.disconnect() })
  t.ok(await eventually(async () => (await raw.pubsub('NUMSUB', 'late:bus') as [string, number])[1] === 2), 'both subscribed once Redis came')
  t.same((await b.inject('/patients/1')).json(), { run: 2 }, 'b computes it and stores it in Redis')
  t.ok(await eventually(async () => (await a.inject('/patients/1')).json().run === 2), 'a drops its older copy on b\'s message and reads b\'s')
  await b.cache.invalidate({ tags: ['patients'] })
  t.ok(await eventually(async () => (await a.inject('/patients/1')).json().run > 2), 'and drops that one on b\'s invalidation')
})

t.test('Redis slow (paused): a drop made meanwhile applies to memory at once, and reaches the other instances once Redis answers again', async (t) => {
  const { apps: [a, b], runs, pause, resume } = await instances(t, 'postponed', 2)
  await a.inject('/patients/1')
  t.same((await b.inject('/patients/1')).json(), { id: '1', run: 1 })
  pause()
  t.equal(await a.cache.invalidate({ tags: ['patient:1'] }), 1, 'what memory dropped, while Redis cannot be asked')
  t.same((await b.inject('/patients/1')).json().run, 1, 'b has heard nothing yet')
  resume()
  // Redis answering a read of a's lets the waiting drop go (a paused Redis sends no 'ready').
  t.ok(await eventually(async () => {
    await a.inject('/patients/2')
    return (await b.inject('/patients/1')).json().run !== 1
  }), 'b drops it once Redis has taken the drop')
  t.ok(runs.runs >= 3)
})

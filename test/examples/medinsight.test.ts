import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { build, type Endpoint } from '../../examples/medinsight/app.js'
import { eventually } from '../helpers/events.js'
import { freePort, spawnRedis } from '../helpers/redis.js'

process.env.MEDINSIGHT_OPS_TOKEN = 'ops-secret-from-the-environment'
const ops = { authorization: 'Bearer ops-secret-from-the-environment' }

const port = await freePort()
const redisServer = await spawnRedis(port)
t.teardown(async () => { await redisServer.kill() })

/** The app as server.ts runs it: a client straight from `new Redis(url)`, still connecting. */
async function start (t: { teardown: (fn: () => unknown) => void }): Promise<{ app: FastifyInstance, runs: Record<string, number> }> {
  const redis = new Redis(`redis://127.0.0.1:${port}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  const runs: Record<string, number> = {}
  const app = await build({ redis, delayMs: 20, onCompute: (endpoint) => { runs[endpoint] = (runs[endpoint] ?? 0) + 1 } })
  t.teardown(async () => {
    await app.close()
    redis.disconnect()
  })
  await app.ready()
  // One app per test on one server: each starts from an empty cache.
  await redis.flushall()
  return { app, runs }
}

const analyse = async (app: FastifyInstance, endpoint: Endpoint, body: unknown): Promise<LightMyRequestResponse> => {
  const url = { 'health-analysis': '/api/v1/analyze-health', 'drug-analysis': '/api/v1/drug/analyze', summaries: '/api/v1/summaries' }[endpoint]
  return await app.inject({ method: 'POST', url, payload: body as object })
}

t.test('the same body, keys in any order, runs the slow part once; another body runs it again', async (t) => {
  const { app, runs } = await start(t)
  const first = await analyse(app, 'health-analysis', { symptoms: ['headache', 'fever'], medications: ['aspirin', 'warfarin'] })
  const again = await analyse(app, 'health-analysis', { medications: ['aspirin', 'warfarin'], symptoms: ['headache', 'fever'] })
  t.equal(first.statusCode, 200)
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(again.headers['x-cache'], 'HIT')
  t.equal(again.body, first.body)
  t.equal(runs['health-analysis'], 1)
  const other = await analyse(app, 'health-analysis', { symptoms: ['cough'], medications: ['warfarin', 'aspirin'] })
  t.equal(other.headers['x-cache'], 'MISS')
  t.equal(runs['health-analysis'], 2, 'a different body: computed again')
  t.equal(runs['medication-interactions'], 1, 'the same medications: their interactions come from app.cache.wrap')
  await analyse(app, 'drug-analysis', { drug: 'Aspirin' })
  await analyse(app, 'drug-analysis', { drug: 'Aspirin' })
  t.equal(runs['drug-analysis'], 1)

  const stats = (await app.inject({ url: '/api/v1/cache/stats', headers: ops })).json()
  t.same(stats.usage['health-analysis'], { requests: 3, hits: 1, hitRatio: 1 / 3, errors: 0 })
  t.same(stats.usage['drug-analysis'], { requests: 2, hits: 1, hitRatio: 0.5, errors: 0 })
  t.same(stats.usage.summaries, { requests: 0, hits: 0, hitRatio: 0, errors: 0 })
})

t.test('the operations routes answer 401 without the secret from the environment', async (t) => {
  const { app } = await start(t)
  for (const [method, url] of [['GET', '/api/v1/cache/health'], ['GET', '/api/v1/cache/stats'], ['GET', '/api/v1/cache/entries/summaries'], ['DELETE', '/api/v1/cache/entries/summaries'], ['DELETE', '/api/v1/cache/entries/summaries/abc']] as const) {
    t.equal((await app.inject({ method, url })).statusCode, 401, `${method} ${url} without a token`)
    t.equal((await app.inject({ method, url, headers: { authorization: 'Bearer wrong' } })).statusCode, 401, `${method} ${url} with a wrong one`)
  }
  const health = await app.inject({ url: '/api/v1/cache/health', headers: ops })
  t.equal(health.statusCode, 200)
  t.match(health.json(), { ok: true, store: 'redis', state: 'up' })
})

t.test('an endpoint\'s entries, with age, TTL and size; dropping one endpoint or one entry', async (t) => {
  const { app, runs } = await start(t)
  const health = (await analyse(app, 'health-analysis', { symptoms: ['fever'] })).json()
  const aspirin = (await analyse(app, 'drug-analysis', { drug: 'aspirin' })).json()
  await analyse(app, 'drug-analysis', { drug: 'ibuprofen' })

  const listed = await app.inject({ url: '/api/v1/cache/entries/health-analysis', headers: ops })
  t.equal(listed.statusCode, 200)
  const { entries, cursor, source } = listed.json()
  t.equal(source, 'redis')
  t.equal(cursor, undefined)
  t.equal(entries.length, 1)
  t.match(entries[0], { kind: 'response', route: 'POST /api/v1/analyze-health', path: 'POST /api/v1/analyze-health', status: 200, tags: [`health-analysis:${String(health.requestHash)}`] })
  t.ok(entries[0].age >= 0 && entries[0].age <= 2, `age ${String(entries[0].age)}`)
  t.ok(entries[0].ttl > 3590 && entries[0].ttl <= 3600, `ttl ${String(entries[0].ttl)}: the health analysis TTL`)
  t.ok(entries[0].size > JSON.stringify(health).length, `size ${String(entries[0].size)}`)
  const drugs = (await app.inject({ url: '/api/v1/cache/entries/drug-analysis?limit=1', headers: ops })).json()
  t.equal(drugs.entries.length, 1)
  t.ok(drugs.entries[0].ttl > 86_390, 'the drug analysis TTL')
  const next = (await app.inject({ url: `/api/v1/cache/entries/drug-analysis?limit=1&cursor=${String(drugs.cursor)}`, headers: ops })).json()
  t.equal(next.entries.length, 1, 'the second page')
  t.not(next.entries[0].tags[0], drugs.entries[0].tags[0])
  t.equal((await app.inject({ url: '/api/v1/cache/entries/drug-analysis?cursor=nonsense', headers: ops })).statusCode, 400)
  t.equal((await app.inject({ url: '/api/v1/cache/entries/nothing', headers: ops })).statusCode, 404)

  // One entry, by the request hash the answer carried.
  const one = await app.inject({ method: 'DELETE', url: `/api/v1/cache/entries/drug-analysis/${String(aspirin.requestHash)}`, headers: ops })
  t.same(one.json(), { dropped: 1 })
  t.equal((await analyse(app, 'drug-analysis', { drug: 'aspirin' })).headers['x-cache'], 'MISS')
  t.equal((await analyse(app, 'drug-analysis', { drug: 'ibuprofen' })).headers['x-cache'], 'HIT', 'the other entry stays')
  t.equal(runs['drug-analysis'], 3)

  // One endpoint.
  const all = await app.inject({ method: 'DELETE', url: '/api/v1/cache/entries/health-analysis', headers: ops })
  t.same(all.json(), { dropped: 1 })
  t.equal((await app.inject({ url: '/api/v1/cache/entries/health-analysis', headers: ops })).json().entries.length, 0)
  t.equal((await analyse(app, 'health-analysis', { symptoms: ['fever'] })).headers['x-cache'], 'MISS')
  t.equal(runs['health-analysis'], 2, 'the next request ran the slow part')
  t.equal((await analyse(app, 'drug-analysis', { drug: 'ibuprofen' })).headers['x-cache'], 'HIT', 'other endpoints stay')
})

t.test('Redis stopped: every analysis still answers 200; the operations routes say the store is away', async (t) => {
  const { app, runs } = await start(t)
  await analyse(app, 'summaries', { text: 'patient reports mild fever' })
  await redisServer.kill()
  t.ok(await eventually(async () => !(await app.cache.health()).ok))
  for (let i = 0; i < 3; i++) {
    const answer = await analyse(app, 'summaries', { text: 'patient reports mild fever' })
    t.equal(answer.statusCode, 200)
    t.equal(answer.json().summary, 'patient reports mild fever')
  }
  t.equal(runs.summaries, 4, 'answered by the handler while Redis is away')
  t.equal((await app.inject({ url: '/api/v1/cache/health', headers: ops })).statusCode, 503)
  t.equal((await app.inject({ url: '/api/v1/cache/entries/summaries', headers: ops })).statusCode, 503)
  t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/cache/entries/summaries', headers: ops })).statusCode, 503)
})

t.test('without REDIS_URL: the memory store, and no token in the environment refuses every ops request', async (t) => {
  const token = process.env.MEDINSIGHT_OPS_TOKEN
  delete process.env.MEDINSIGHT_OPS_TOKEN
  t.teardown(() => { process.env.MEDINSIGHT_OPS_TOKEN = token })
  const app = await build({ delayMs: 1 })
  t.teardown(() => app.close())
  await analyse(app, 'summaries', { text: 'x' })
  t.equal((await analyse(app, 'summaries', { text: 'x' })).headers['x-cache'], 'HIT')
  t.equal((await app.inject({ url: '/api/v1/cache/health', headers: ops })).statusCode, 401)
})

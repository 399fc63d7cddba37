import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { build, ENDPOINTS, type Endpoint, type MedInsightOptions } from '../../examples/medinsight/app.js'
import { eventually } from '../helpers/events.js'
import { restartableRedis } from '../helpers/redis.js'

process.env.MEDINSIGHT_OPS_TOKEN = 'ops-secret-from-the-environment'
const ops = { authorization: 'Bearer ops-secret-from-the-environment' }

// One redis-server for the file, which the tests may stop and start again (empty).
const redisServer = await restartableRedis(t)
await redisServer.start()

type Runs = Record<string, number>
interface Teardown { teardown: (fn: () => unknown) => void }

/** The app as server.ts runs it: a client straight from `new Redis(url)`, still connecting. */
async function start (t: Teardown, options: MedInsightOptions = {}): Promise<{ app: FastifyInstance, runs: Runs, redis: Redis }> {
  const redis = new Redis(redisServer.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  redis.on('error', () => {})
  const runs: Runs = {}
  const app = await build({ redis, delayMs: 20, onCompute: (endpoint) => { runs[endpoint] = (runs[endpoint] ?? 0) + 1 }, ...options })
  t.teardown(async () => {
    await app.close()
    redis.disconnect()
  })
  await app.ready()
  // One app per test on one server: each starts from an empty cache.
  await redis.flushall()
  return { app, runs, redis }
}

const URLS = { 'health-analysis': '/api/v1/analyze-health', 'drug-analysis': '/api/v1/drug/analyze' }
const analyse = async (app: FastifyInstance, endpoint: keyof typeof URLS, body: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'POST', url: URLS[endpoint], headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) })

/** How many entries the cache holds for an endpoint, read through the ops route. */
const entriesOf = async (app: FastifyInstance, endpoint: Endpoint): Promise<number> => {
  const response = await app.inject({ url: `/api/v1/cache/entries/${endpoint}`, headers: ops })
  if (response.statusCode !== 200) throw new Error(`entries answered ${response.statusCode}`)
  return response.json().entries.length
}

/** A pino logger writing into an array, at `level`. */
function capture (level: string): { logger: { level: string, stream: Writable }, lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done() } })
  return { logger: { level, stream }, lines }
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

  const stats = (await app.inject({ url: '/api/v1/cache/stats', headers: ops })).json()
  t.same(stats.usage['health-analysis'], { requests: 3, hits: 1, hitRatio: 1 / 3, errors: 0 })
  t.same(stats.usage.summaries, { requests: 0, hits: 0, hitRatio: 0, errors: 0 })
})

t.test('bodies are keyed in their normal form: the drug\'s name, the symptoms\' case, spaces and order', async (t) => {
  const { app, runs } = await start(t)
  const first = await analyse(app, 'drug-analysis', { drug: 'aspirin' })
  t.equal(first.headers['x-cache'], 'MISS')
  for (const drug of ['Aspirin ', 'ASPIRIN', '  aspirin', 'aspirin']) {
    const answer = await analyse(app, 'drug-analysis', { drug })
    t.equal(answer.headers['x-cache'], 'HIT', JSON.stringify(drug))
    t.equal(answer.json().drug, 'aspirin')
  }
  t.equal((await analyse(app, 'drug-analysis', { drug: 'acetylsalicylic  Acid' })).json().drug, 'acetylsalicylic acid')
  t.equal((await analyse(app, 'drug-analysis', { drug: 'Acetylsalicylic acid' })).headers['x-cache'], 'HIT')
  t.equal(runs['drug-analysis'], 2)
  t.equal(await entriesOf(app, 'drug-analysis'), 2)

  await analyse(app, 'health-analysis', { symptoms: ['Headache', 'fever'], medications: ['Warfarin', 'aspirin'] })
  const same = await analyse(app, 'health-analysis', { symptoms: ['fever ', 'headache', 'HEADACHE'], medications: ['aspirin', 'warfarin'] })
  t.equal(same.headers['x-cache'], 'HIT')
  t.match(same.json(), { symptoms: ['fever', 'headache'], medications: ['aspirin', 'warfarin'] })
  t.equal(runs['health-analysis'], 1)

  const stats = (await app.inject({ url: '/api/v1/cache/stats', headers: ops })).json()
  t.same(stats.usage['drug-analysis'], { requests: 7, hits: 5, hitRatio: 5 / 7, errors: 0 })
})

t.test('bad input is a 400 with the reason: no slow part runs, nothing is cached, no session is kept', async (t) => {
  const { app, runs } = await start(t)
  const session = { 'x-session-id': 'session-of-bad-input' }
  const post = async (url: string, payload: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...session, ...headers }, payload })
  const bad: Array<[string, string, RegExp]> = [
    [URLS['health-analysis'], '{"symptoms":"headache"}', /body\/symptoms must be array/],
    [URLS['health-analysis'], 'null', /body must be object/],
    [URLS['health-analysis'], '"headache"', /body must be object/],
    [URLS['health-analysis'], '{}', /must have required property 'symptoms'/],
    [URLS['health-analysis'], '{"symptoms":[]}', /must NOT have fewer than 1 items/],
    [URLS['health-analysis'], '{"symptoms":[1]}', /must be string/],
    [URLS['health-analysis'], '{"symptoms":[" "]}', /must match pattern/],
    [URLS['health-analysis'], '{"symptoms":["fever"],"medications":"aspirin"}', /body\/medications must be array/],
    [URLS['health-analysis'], '{"symptoms":["fever"],"sessionId":"x"}', /must NOT have additional properties/],
    [URLS['drug-analysis'], '"aspirin"', /body must be object/],
    [URLS['drug-analysis'], 'aspirin', /Unexpected token|not valid JSON/],
    [URLS['drug-analysis'], 'null', /body must be object/],
    [URLS['drug-analysis'], '{"drug":5}', /body\/drug must be string/],
    [URLS['drug-analysis'], '{"drug":null}', /body\/drug must be string/],
    [URLS['drug-analysis'], '{"drug":["aspirin"]}', /body\/drug must be string/],
    [URLS['drug-analysis'], '{"name":"aspirin"}', /required property 'drug'|additional properties/],
    [URLS['drug-analysis'], `{"drug":"${'a'.repeat(101)}"}`, /must NOT have more than 100 characters/]
  ]
  for (const [url, payload, message] of bad) {
    for (let i = 0; i < 2; i++) {
      const answer = await post(url, payload)
      t.equal(answer.statusCode, 400, `${url} ${payload}`)
      t.match(answer.json().message, message)
    }
  }
  t.equal((await post(URLS['drug-analysis'], '{"drug":"aspirin"}', { 'x-session-id': 'short' })).statusCode, 400, 'a session id of the wrong form')
  t.equal((await post(`${URLS['drug-analysis']}?fresh=1`, '{"drug":"aspirin"}')).statusCode, 400, 'an unknown query parameter')
  for (const url of ['/api/v1/drug/info/%00', '/api/v1/drug/info/-aspirin', `/api/v1/drug/info/${'a'.repeat(70)}`, '/api/v1/drug/info/aspirin?v=2', '/api/v1/summaries/short', '/api/v1/summaries/a%20b%20c%20d%20e']) {
    t.equal((await app.inject(url)).statusCode, 400, url)
  }
  t.same(runs, {}, 'no slow part ran')
  for (const endpoint of Object.keys(ENDPOINTS) as Endpoint[]) t.equal(await entriesOf(app, endpoint), 0, `nothing cached for ${endpoint}`)
  t.equal((await app.inject({ url: '/api/v1/cache/session/session-of-bad-input', headers: ops })).statusCode, 404, 'no session recorded')
  // A good request after them is a miss: none of them left an entry it could be answered from.
  t.equal((await post(URLS['drug-analysis'], '{"drug":"aspirin"}')).headers['x-cache'], 'MISS')

  // The operations routes check theirs too (after the token).
  for (const [method, url] of [['GET', '/api/v1/cache/entries/nothing'], ['DELETE', '/api/v1/cache/entries/nothing'], ['GET', '/api/v1/cache/entries/summaries?limit=abc'],
    ['GET', '/api/v1/cache/entries/summaries?limit=0'], ['GET', '/api/v1/cache/entries/summaries?limit=5000'], ['GET', '/api/v1/cache/entries/summaries?cursor=nonsense'],
    ['GET', '/api/v1/cache/entries/summaries?page=2'], ['DELETE', '/api/v1/cache/entries/drug-analysis/not:a:hash'], ['GET', '/api/v1/cache/session/x'], ['GET', '/api/v1/cache/stats?all=1']] as const) {
    const answer = await app.inject({ method, url, headers: ops })
    t.equal(answer.statusCode, 400, `${method} ${url}`)
  }
})

t.test('the operations routes answer 401 without the secret from the environment', async (t) => {
  const { app } = await start(t)
  for (const [method, url] of [['GET', '/api/v1/cache/health'], ['GET', '/api/v1/cache/stats'], ['GET', '/api/v1/cache/performance'], ['GET', '/api/v1/cache/entries/summaries'],
    ['DELETE', '/api/v1/cache/entries/summaries'], ['DELETE', '/api/v1/cache/entries/summaries/abc'], ['GET', '/api/v1/cache/session/session-1234'], ['DELETE', '/api/v1/cache/session/session-1234'],
    ['GET', '/api/v1/cache/entries/nothing']] as const) {
    t.equal((await app.inject({ method, url })).statusCode, 401, `${method} ${url} without a token`)
    t.equal((await app.inject({ method, url, headers: { authorization: 'Bearer wrong' } })).statusCode, 401, `${method} ${url} with a wrong one`)
    t.equal((await app.inject({ method, url, headers: { authorization: 'ops-secret-from-the-environment' } })).statusCode, 401, `${method} ${url} without "Bearer"`)
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
  const next = (await app.inject({ url: `/api/v1/cache/entries/drug-analysis?limit=1&cursor=${encodeURIComponent(String(drugs.cursor))}`, headers: ops })).json()
  t.equal(next.entries.length, 1, 'the second page')
  t.not(next.entries[0].tags[0], drugs.entries[0].tags[0])

  // One entry, by the request hash the answer carried.
  const one = await app.inject({ method: 'DELETE', url: `/api/v1/cache/entries/drug-analysis/${String(aspirin.requestHash)}`, headers: ops })
  t.same(one.json(), { dropped: 1 })
  t.equal((await analyse(app, 'drug-analysis', { drug: 'Aspirin' })).headers['x-cache'], 'MISS')
  t.equal((await analyse(app, 'drug-analysis', { drug: 'ibuprofen' })).headers['x-cache'], 'HIT', 'the other entry stays')
  t.equal(runs['drug-analysis'], 3)

  // One endpoint.
  const all = await app.inject({ method: 'DELETE', url: '/api/v1/cache/entries/health-analysis', headers: ops })
  t.same(all.json(), { dropped: 1 })
  t.equal(await entriesOf(app, 'health-analysis'), 0)
  t.equal((await analyse(app, 'health-analysis', { symptoms: ['fever'] })).headers['x-cache'], 'MISS')
  t.equal(runs['health-analysis'], 2, 'the next request ran the slow part')
  t.equal((await analyse(app, 'drug-analysis', { drug: 'ibuprofen' })).headers['x-cache'], 'HIT', 'other endpoints stay')
})

t.test('drug info: one entry per drug whatever the spelling, unknown drugs cached too, 304 to a known etag', async (t) => {
  const { app, runs } = await start(t)
  const moved = await app.inject('/api/v1/drug/info/Aspirin%20')
  t.equal(moved.statusCode, 308)
  t.equal(moved.headers.location, '/api/v1/drug/info/aspirin')
  t.equal((await app.inject('/api/v1/drug/info/St%20Johns%20Wort')).headers.location, '/api/v1/drug/info/st-johns-wort')
  t.same(runs, {}, 'a redirect runs nothing')

  const first = await app.inject('/api/v1/drug/info/aspirin')
  t.equal(first.headers['x-cache'], 'MISS')
  t.match(first.json(), { name: 'aspirin', summary: /NSAID/ })
  const hit = await app.inject('/api/v1/drug/info/aspirin')
  t.equal(hit.headers['x-cache'], 'HIT')
  const notModified = await app.inject({ url: '/api/v1/drug/info/aspirin', headers: { 'if-none-match': String(hit.headers.etag) } })
  t.equal(notModified.statusCode, 304)
  for (let i = 0; i < 2; i++) t.equal((await app.inject('/api/v1/drug/info/unobtainium')).statusCode, 404)
  t.equal((await app.inject('/api/v1/drug/info/unobtainium')).headers['x-cache'], 'HIT', 'the 404 is cached')
  t.equal(runs['drug-info'], 2, 'one lookup per drug')
  const entries = (await app.inject({ url: '/api/v1/cache/entries/drug-info', headers: ops })).json().entries
  t.ok(entries[0].ttl > 30 * 86_400 - 10, 'kept 30 days')

  t.same((await app.inject({ method: 'DELETE', url: '/api/v1/cache/entries/drug-info/Aspirin', headers: ops })).json(), { dropped: 1 }, 'dropped by name, in any spelling')
  t.equal((await app.inject('/api/v1/drug/info/aspirin')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/api/v1/drug/info/unobtainium')).headers['x-cache'], 'HIT')
})

t.test('sessions: the requests that name one, their symptom inputs and the summary kept per session', async (t) => {
  const { app, runs } = await start(t)
  const id = 'a3c9e1f0-session'
  const session = { 'x-session-id': id }
  t.equal((await app.inject(`/api/v1/summaries/${id}`)).statusCode, 404, 'no input yet')
  await analyse(app, 'health-analysis', { symptoms: ['Headache'], medications: ['aspirin'] }, session)
  await analyse(app, 'drug-analysis', { drug: 'Warfarin' }, session)
  t.equal((await analyse(app, 'drug-analysis', { drug: 'warfarin' }, session)).headers['x-cache'], 'HIT')

  const view = await app.inject({ url: `/api/v1/cache/session/${id}`, headers: ops })
  t.equal(view.statusCode, 200)
  t.equal(view.headers['server-timing'], 'cache;desc=hit, session;desc=hit, symptoms;desc=hit', 'the reader sees the values were there')
  t.match(view.json(), {
    session: { id, requests: 3, endpoints: { 'health-analysis': 1, 'drug-analysis': 2 }, drugs: ['warfarin'] },
    symptomInputs: [{ symptoms: ['headache'], medications: ['aspirin'] }],
    summaryCached: false
  })
  t.equal((await app.inject({ url: `/api/v1/cache/session/${id}`, headers: ops })).json().session.requests, 3, 'reading a session does not count as one of its requests')

  // The AI summary, keyed by the session.
  const summary = await app.inject(`/api/v1/summaries/${id}`)
  t.equal(summary.headers['x-cache'], 'MISS')
  t.match(summary.json(), { sessionId: id, summary: 'Reported headache; taking aspirin.', basedOn: 1 })
  t.equal((await app.inject(`/api/v1/summaries/${id}`)).headers['x-cache'], 'HIT')
  t.equal(runs.summaries, 1)
  t.equal((await app.inject({ url: `/api/v1/cache/session/${id}`, headers: ops })).json().summaryCached, true)

  // A new input in the session: the summary is made again, from both.
  await analyse(app, 'health-analysis', { symptoms: ['fever'] }, session)
  const renewed = await app.inject(`/api/v1/summaries/${id}`)
  t.equal(renewed.headers['x-cache'], 'MISS')
  t.match(renewed.json(), { summary: 'Reported fever, headache; taking aspirin.', basedOn: 2 })
  t.equal(runs.summaries, 2)
  t.equal((await app.inject(`/api/v1/summaries/${'b'.repeat(16)}`)).statusCode, 404, 'another session has none')

  const missing = await app.inject({ url: '/api/v1/cache/session/no-such-session', headers: ops })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['server-timing'], 'cache;desc=miss, session;desc=miss, symptoms;desc=miss')

  // Dropping the session drops its values and its summary.
  const dropped = await app.inject({ method: 'DELETE', url: `/api/v1/cache/session/${id}`, headers: ops })
  t.same(dropped.json(), { dropped: 3 })
  t.equal((await app.inject({ url: `/api/v1/cache/session/${id}`, headers: ops })).statusCode, 404)
  t.equal((await app.inject(`/api/v1/summaries/${id}`)).statusCode, 404)
})

t.test('value lookups are in the debug log; an answer over maxEntryBytes is served, not stored, and logged', async (t) => {
  const { logger, lines } = capture('debug')
  const { app, runs } = await start(t, { logger, maxEntryBytes: 300 })
  for (let i = 0; i < 2; i++) t.equal((await analyse(app, 'health-analysis', { symptoms: ['fever', 'cough', 'headache', 'nausea', 'fatigue'], medications: ['aspirin', 'warfarin'] }, { 'x-session-id': 'session-logs' })).headers['x-cache'], 'MISS')
  t.equal(runs['health-analysis'], 2, 'not stored: computed each time')
  t.ok(lines.some((line) => line.msg === 'response cache: not stored' && line.responseCache?.reason === 'too-large'), 'the plugin says why')
  const lookups = lines.filter((line) => line.msg === 'medinsight value lookup').map((line) => `${String(line.value)} ${String(line.cache)}`)
  t.same(lookups, ['session miss', 'symptoms miss', 'interactions miss', 'session hit', 'symptoms hit', 'interactions hit'])
  t.equal((await analyse(app, 'drug-analysis', { drug: 'aspirin' })).headers['x-cache'], 'MISS')
  t.equal((await analyse(app, 'drug-analysis', { drug: 'aspirin' })).headers['x-cache'], 'HIT', 'a smaller answer is stored')
})

t.test('performance: the Redis server\'s own figures (INFO); the process\'s on the memory store', async (t) => {
  const { app } = await start(t)
  const answer = await app.inject({ url: '/api/v1/cache/performance', headers: ops })
  t.equal(answer.statusCode, 200)
  const { store, servers } = answer.json()
  t.equal(store, 'redis')
  t.equal(servers.length, 1)
  t.match(servers[0], { redis_version: /^\d+\.\d+/, used_memory: Number, used_memory_human: String, connected_clients: Number, instantaneous_ops_per_sec: Number, total_net_input_bytes: Number, mem_fragmentation_ratio: Number })

  const memory = await build({ delayMs: 1 })
  t.teardown(() => memory.close())
  await memory.inject({ method: 'POST', url: URLS['drug-analysis'], payload: { drug: 'aspirin' } })
  t.match((await memory.inject({ url: '/api/v1/cache/performance', headers: ops })).json(), { store: 'memory', process: { rssBytes: Number, heapUsedBytes: Number }, cache: { entries: 1, bytes: Number } })
})

t.test('stats show the store as it is: its entries now, none after Redis restarted empty, no figures while it is away', async (t) => {
  const { app, runs } = await start(t)
  const stats = async (): Promise<Record<string, any>> => (await app.inject({ url: '/api/v1/cache/stats', headers: ops })).json()
  t.match((await stats()).store, { name: 'redis', state: 'up', entries: 0 })
  await analyse(app, 'drug-analysis', { drug: 'aspirin' })
  await analyse(app, 'drug-analysis', { drug: 'ibuprofen' })
  await analyse(app, 'health-analysis', { symptoms: ['fever'] })
  t.match((await stats()).store, { name: 'redis', state: 'up', entries: 3 }, 'right after the writes, not 5 s later')

  await redisServer.stop()
  t.ok(await eventually(async () => !(await app.cache.health()).ok))
  const away = (await stats()).store
  t.match(away, { name: 'redis', state: 'down' })
  t.equal(away.entries, undefined, 'no figures rather than the last ones')
  for (let i = 0; i < 2; i++) t.equal((await analyse(app, 'drug-analysis', { drug: 'aspirin' })).statusCode, 200)
  t.equal(runs['drug-analysis'], 4, 'answered by the handler while Redis is away')
  t.equal((await app.inject({ url: '/api/v1/cache/health', headers: ops })).statusCode, 503)
  t.equal((await app.inject({ url: '/api/v1/cache/performance', headers: ops })).statusCode, 503)
  t.equal((await app.inject({ url: '/api/v1/cache/entries/summaries', headers: ops })).statusCode, 503)
  t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/cache/entries/summaries', headers: ops })).statusCode, 503)

  await redisServer.start()
  t.ok(await eventually(async () => (await app.cache.health()).ok, 10_000))
  t.match((await stats()).store, { name: 'redis', state: 'up', entries: 0 }, 'the restarted Redis is empty, and the stats say so')
  t.equal((await analyse(app, 'drug-analysis', { drug: 'aspirin' })).headers['x-cache'], 'MISS')
  t.match((await stats()).store, { entries: 1 })
})

t.test('without REDIS_URL: the memory store; no token in the environment warns at start and refuses every ops request', async (t) => {
  const token = process.env.MEDINSIGHT_OPS_TOKEN
  t.teardown(() => { process.env.MEDINSIGHT_OPS_TOKEN = token })
  for (const value of [undefined, '']) {
    if (value === undefined) delete process.env.MEDINSIGHT_OPS_TOKEN
    else process.env.MEDINSIGHT_OPS_TOKEN = value
    const { logger, lines } = capture('warn')
    const app = await build({ delayMs: 1, logger })
    t.teardown(() => app.close())
    t.match(lines, [{ level: 40, msg: 'MEDINSIGHT_OPS_TOKEN is not set: every /api/v1/cache request answers 401' }])
    await analyse(app, 'drug-analysis', { drug: 'x' })
    t.equal((await analyse(app, 'drug-analysis', { drug: 'X' })).headers['x-cache'], 'HIT')
    for (const authorization of [undefined, 'Bearer ', 'Bearer undefined']) {
      t.equal((await app.inject({ url: '/api/v1/cache/health', headers: authorization === undefined ? {} : { authorization } })).statusCode, 401)
    }
  }
  process.env.MEDINSIGHT_OPS_TOKEN = token
  const { logger, lines } = capture('warn')
  const app = await build({ delayMs: 1, logger })
  t.teardown(() => app.close())
  t.same(lines, [], 'with a token: no warning')
})

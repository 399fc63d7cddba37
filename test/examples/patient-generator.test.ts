import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { build, type PatientGeneratorOptions } from '../../examples/patient-generator/app.js'
import { ConfigError, readConfig } from '../../examples/patient-generator/config.js'
import { CONDITIONS, DEMOGRAPHICS, ReferenceFiles } from '../../examples/patient-generator/reference-data.js'
import { eventually } from '../helpers/events.js'
import { freePort, restartableRedis } from '../helpers/redis.js'

const TOKEN = 'ops-token-for-the-test'
const ops = { authorization: `Bearer ${TOKEN}` }

/** The app, closed when the test ends. */
async function start (t: { teardown: (fn: () => unknown) => void }, options: PatientGeneratorOptions): Promise<FastifyInstance> {
  const app = await build(options)
  t.teardown(() => app.close())
  return app
}

const xCache = async (app: FastifyInstance, url: string): Promise<string | undefined> => {
  const response = await app.inject(url)
  if (response.statusCode !== 200) throw new Error(`${url} answered ${response.statusCode}`)
  return response.headers['x-cache'] as string | undefined
}

/** The response entries Redis holds, with their TTLs in seconds. */
async function entriesIn (url: string): Promise<Record<string, number>> {
  const client = new Redis(url)
  try {
    const entries: Record<string, number> = {}
    for (const key of await client.keys('patients:*:GET:*')) entries[key.replace(/.*:GET:([^:]+):.*/, '$1')] = await client.ttl(key)
    return entries
  } finally {
    client.disconnect()
  }
}
const BOTH = ['%2Freference%2Fconditions', '%2Freference%2Fdemographics']
const holdsBoth = async (url: string): Promise<boolean> => Object.keys(await entriesIn(url)).length === 2

/** A pino logger writing into an array, at `level`. */
function capture (level: string): { logger: { level: string, stream: Writable }, lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done() } })
  return { logger: { level, stream }, lines }
}

t.test('reference data is read once, warmed before build() returns, and kept in Redis for 24 h', async (t) => {
  const redis = await restartableRedis(t)
  await redis.start()
  const files = new ReferenceFiles()
  const app = await start(t, { redisUrl: redis.url, files })
  t.equal(files.reads, 2, 'warming read both files')

  t.equal(await xCache(app, '/reference/demographics'), 'HIT', 'the first request is already a hit')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT')
  t.same((await app.inject('/reference/demographics')).json(), DEMOGRAPHICS)
  t.same((await app.inject('/reference/conditions')).json(), CONDITIONS)

  const firstResponse = await app.inject('/patients?count=5')
  t.equal(firstResponse.headers['server-timing'], 'cache;desc=hit, demographics;desc=hit, conditions;desc=hit', 'the reader sees where the reference data came from')
  const first = firstResponse.json<Array<{ id: string, age: number }>>()
  const second = (await app.inject('/patients?count=5')).json<Array<{ id: string }>>()
  t.equal(first.length, 5)
  t.equal(new Set([...first, ...second].map((patient) => patient.id)).size, 10, 'patients are generated anew on every call')
  t.ok(first.every((patient) => patient.age >= 0 && patient.age <= 95))
  t.equal(files.reads, 2, 'neither the routes nor the generator read the files again')

  const entries = await entriesIn(redis.url)
  t.same(Object.keys(entries).sort(), BOTH)
  for (const ttl of Object.values(entries)) t.ok(ttl > 86_000 && ttl <= 86_400, `a day in Redis (${ttl} s)`)

  t.match((await app.inject('/health')).json(), { status: 'ok', cache: { enabled: true, ok: true, store: 'redis', state: 'up', latencyMs: Number }, warm: { runs: 1, stored: ['/reference/demographics', '/reference/conditions'], failed: [] } })
})

t.test('CACHE_TTL is the entries\' TTL', async (t) => {
  const redis = await restartableRedis(t)
  await redis.start()
  await start(t, { redisUrl: redis.url, ttl: 120, files: new ReferenceFiles(1) })
  const entries = await entriesIn(redis.url)
  t.same(Object.keys(entries).sort(), BOTH)
  for (const ttl of Object.values(entries)) t.ok(ttl > 100 && ttl <= 120, `${ttl} s`)
})

t.test('CACHE_ENABLED=false: no cache at all, Redis untouched, the files read on every request', async (t) => {
  const redis = await restartableRedis(t)
  await redis.start()
  const files = new ReferenceFiles(1)
  const app = await start(t, { redisUrl: redis.url, enabled: false, opsToken: TOKEN, files })
  t.equal(files.reads, 0, 'nothing warmed')
  const answer = await app.inject('/reference/conditions')
  t.same(answer.json(), CONDITIONS)
  t.equal(answer.headers['x-cache'], undefined, 'no cache header: the plugin is not there')
  await app.inject('/reference/conditions')
  t.equal(files.reads, 2)
  t.equal((await app.inject('/patients')).headers['server-timing'], 'cache;desc=off, demographics;desc=off, conditions;desc=off')
  t.same(await entriesIn(redis.url), {}, 'nothing in Redis')
  t.match((await app.inject('/health')).json(), { status: 'ok', cache: { enabled: false }, warm: { runs: 0 } })
  t.equal((await app.inject({ method: 'DELETE', url: '/cache/reference/conditions', headers: ops })).statusCode, 409)
})

t.test('readConfig: CACHE_TTL and CACHE_ENABLED checked, a bad value is one clear line', async (t) => {
  t.same(readConfig({}), { ttl: 86_400, enabled: true, redisUrl: undefined, opsToken: undefined })
  t.same(readConfig({ CACHE_TTL: '3600', CACHE_ENABLED: 'False', REDIS_URL: 'redis://r:6379', PATIENT_GENERATOR_OPS_TOKEN: 'x' }), { ttl: 3600, enabled: false, redisUrl: 'redis://r:6379', opsToken: 'x' })
  t.same(readConfig({ CACHE_TTL: '', CACHE_ENABLED: '', REDIS_URL: '', PATIENT_GENERATOR_OPS_TOKEN: '' }), { ttl: 86_400, enabled: true, redisUrl: undefined, opsToken: undefined }, 'empty is unset')
  for (const word of ['true', 'TRUE', '1', 'yes', 'on']) t.equal(readConfig({ CACHE_ENABLED: word }).enabled, true, word)
  for (const word of ['false', '0', 'no', 'Off']) t.equal(readConfig({ CACHE_ENABLED: word }).enabled, false, word)
  for (const ttl of ['abc', '0', '-5', '1.5', '1e3', '31536001', '3600s']) {
    t.throws(() => readConfig({ CACHE_TTL: ttl }), new ConfigError(`CACHE_TTL must be a whole number of seconds from 1 to 31536000, not ${JSON.stringify(ttl)}`), ttl)
  }
  for (const word of ['maybe', 'enabled', '2']) {
    t.throws(() => readConfig({ CACHE_ENABLED: word }), new ConfigError(`CACHE_ENABLED must be true or false (or 1/0, yes/no, on/off), not ${JSON.stringify(word)}`), word)
  }
})

t.test('warmed entries answer real clients on the public host', async (t) => {
  const port = await freePort()
  const app = await start(t, { publicHost: `127.0.0.1:${port}` })
  await app.listen({ port, host: '127.0.0.1' })
  const get = async (host: string): Promise<unknown> => {
    const response = await request(`http://127.0.0.1:${port}/reference/conditions`, { headers: { host } })
    await response.body.dump()
    return response.headers['x-cache']
  }
  t.equal(await get(`127.0.0.1:${port}`), 'HIT')
  t.equal(await get(`localhost:${port}`), 'MISS', 'entries are per host: another name for the server is not warmed')
})

t.test('bad input is a 400: no file read, nothing stored', async (t) => {
  const files = new ReferenceFiles(1)
  const app = await start(t, { files, opsToken: TOKEN })
  const entries = async (): Promise<number> => (await app.cache.list({ route: '/reference/conditions' }))?.entries.length ?? -1
  t.equal(await entries(), 1)
  for (const url of ['/patients?count=abc', '/patients?count=0', '/patients?count=101', '/patients?count=1.5', '/patients?count=', '/patients?count=2&color=red', '/reference/conditions?x=1', '/reference/demographics?count=2', '/health?verbose=1']) {
    for (let i = 0; i < 2; i++) {
      const answer = await app.inject(url)
      t.equal(answer.statusCode, 400, url)
      t.match(answer.json(), { error: 'Bad Request', message: /querystring/ })
    }
  }
  for (const url of ['/cache/reference/patients', '/cache/reference/DEMOGRAPHICS', '/cache/reference/conditions?all=1']) {
    t.equal((await app.inject({ method: 'DELETE', url, headers: ops })).statusCode, 400, url)
  }
  t.equal(files.reads, 2, 'only the two reads of warming')
  t.equal(await entries(), 1, 'no entry for /reference/conditions?x=1')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT', 'the warmed entries are still there')
})

t.test('invalidation over HTTP: refused without the token, drops and warms again with it', async (t) => {
  const files = new ReferenceFiles(1)
  const app = await start(t, { files, opsToken: TOKEN })
  const url = '/cache/reference/demographics'
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }, { authorization: 'Bearer ' }, { authorization: `Basic ${TOKEN}` }]) {
    const refused = await app.inject({ method: 'DELETE', url, headers })
    t.equal(refused.statusCode, 401, JSON.stringify(headers))
    t.match(refused.json(), { error: /PATIENT_GENERATOR_OPS_TOKEN/ })
  }
  t.equal(files.reads, 2)
  t.equal(await xCache(app, '/reference/demographics'), 'HIT', 'nothing was dropped')

  const done = await app.inject({ method: 'DELETE', url, headers: ops })
  t.equal(done.statusCode, 200)
  t.same(done.json(), { dropped: 1, warmed: true })
  t.equal(files.reads, 3, 'the demographics read again, once')
  t.equal(await xCache(app, '/reference/demographics'), 'HIT', 'warmed again: the next client still hits')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT', 'the other route was left alone')
  t.match((await app.inject('/health')).json(), { warm: { runs: 2, lastReason: 'invalidated over HTTP: demographics', stored: ['/reference/demographics'] } })
})

t.test('no token in the environment: a warning at start, and the route refuses everyone', async (t) => {
  for (const opsToken of [undefined, '']) {
    const { logger, lines } = capture('warn')
    const app = await start(t, { files: new ReferenceFiles(1), opsToken, logger })
    t.match(lines, [{ level: 40, msg: /PATIENT_GENERATOR_OPS_TOKEN is not set/ }])
    for (const authorization of ['Bearer ', 'Bearer undefined']) {
      t.equal((await app.inject({ method: 'DELETE', url: '/cache/reference/conditions', headers: { authorization } })).statusCode, 401)
    }
  }
  const { logger, lines } = capture('warn')
  await start(t, { files: new ReferenceFiles(1), opsToken: TOKEN, logger })
  t.same(lines, [], 'with a token: no warning')
})

t.test('an answer larger than maxEntryBytes: served, not stored, and said in the log', async (t) => {
  const files = new ReferenceFiles(1)
  const { logger, lines } = capture('debug')
  const app = await start(t, { files, maxEntryBytes: 380, logger })
  // demographics (409 bytes) is over the bound, conditions is not.
  t.match((await app.inject('/health')).json(), { warm: { stored: ['/reference/conditions'], failed: [{ url: '/reference/demographics', reason: 'too-large' }] } })
  t.ok(lines.some((line) => line.level === 40 && line.reason === 'too-large' && /larger than maxEntryBytes \(380 bytes\)/.test(line.msg)), 'a warning at start')
  t.ok(lines.some((line) => line.level === 20 && line.msg === 'response cache: not stored' && line.responseCache?.reason === 'too-large'), 'the plugin\'s debug line')
  t.equal(await xCache(app, '/reference/demographics'), 'MISS')
  t.equal(await xCache(app, '/reference/demographics'), 'MISS')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT')
  t.equal(files.reads, 4)
})

t.test('Redis restarted empty: warmed again, the first request after it is a hit', async (t) => {
  const redis = await restartableRedis(t)
  await redis.start()
  const files = new ReferenceFiles(20)
  // No periodic check during the test: the client's reconnection is what warms.
  const app = await start(t, { redisUrl: redis.url, files, checkEveryMs: 600_000 })
  t.equal(await xCache(app, '/reference/demographics'), 'HIT')

  await redis.stop()
  t.equal(await xCache(app, '/reference/demographics'), 'BYPASS', 'the handler answers')
  t.equal((await app.inject('/patients?count=2')).statusCode, 200)
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.match(health.json(), { status: 'degraded', cache: { ok: false, store: 'redis', state: 'down' } })
  const readsWhileDown = files.reads
  t.ok(readsWhileDown > 2, 'from the files')

  await redis.start()
  // Waits on the store, not on the app: no request reaches the app before the first one below.
  t.ok(await eventually(async () => await holdsBoth(redis.url), 10_000), 'the new, empty Redis is warmed')
  t.equal(files.reads, readsWhileDown + 2, 'by reading each file once')
  t.equal(await xCache(app, '/reference/demographics'), 'HIT', 'the first request after the restart')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT')
  t.match((await app.inject('/health')).json(), { status: 'ok', cache: { state: 'up' }, warm: { runs: 2, lastReason: /^redis connected/ } })
})

t.test('entries gone while Redis stays up (flushed, evicted, expired): the periodic check warms them again', async (t) => {
  const redis = await restartableRedis(t)
  await redis.start()
  const files = new ReferenceFiles(1)
  const app = await start(t, { redisUrl: redis.url, files, checkEveryMs: 50 })
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  await client.flushall()
  t.ok(await eventually(async () => await holdsBoth(redis.url), 10_000), 'warmed again')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT')
  t.equal(files.reads, 4)
  t.match((await app.inject('/health')).json(), { warm: { lastReason: 'periodic check: the store did not hold demographics and conditions' } })
})

t.test('it starts while Redis is not up yet, and warms Redis when it starts', async (t) => {
  const redis = await restartableRedis(t)
  const files = new ReferenceFiles(20)
  const app = await start(t, { redisUrl: redis.url, files, checkEveryMs: 600_000 })
  // A client that has never connected is 'connecting' until its first attempt fails, then 'down'.
  t.match((await app.inject('/health')).json(), { status: 'degraded', cache: { ok: false, store: 'redis' } })
  t.equal(await xCache(app, '/reference/conditions'), 'BYPASS')
  t.equal((await app.inject('/patients')).statusCode, 200)

  await redis.start()
  t.ok(await eventually(async () => await holdsBoth(redis.url), 10_000), 'warmed once Redis is there')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT')
  t.equal(await xCache(app, '/reference/demographics'), 'HIT')
})

import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { build } from '../../examples/patient-generator/app.js'
import { CONDITIONS, DEMOGRAPHICS, ReferenceFiles } from '../../examples/patient-generator/reference-data.js'
import { eventually } from '../helpers/events.js'
import { freePort, restartableRedis } from '../helpers/redis.js'

const xCache = async (app: Awaited<ReturnType<typeof build>>, url: string): Promise<string | undefined> => {
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

t.test('reference data is read once, warmed before build() returns, and kept in Redis for 24 h', async (t) => {
  const redis = await restartableRedis(t)
  await redis.start()
  const files = new ReferenceFiles()
  const app = await build({ redisUrl: redis.url, files })
  t.teardown(() => app.close())
  t.equal(files.reads, 2, 'warming read both files')

  t.equal(await xCache(app, '/reference/demographics'), 'HIT', 'the first request is already a hit')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT')
  t.same((await app.inject('/reference/demographics')).json(), DEMOGRAPHICS)
  t.same((await app.inject('/reference/conditions')).json(), CONDITIONS)

  const first = (await app.inject('/patients?count=5')).json<Array<{ id: string, age: number }>>()
  const second = (await app.inject('/patients?count=5')).json<Array<{ id: string }>>()
  t.equal(first.length, 5)
  t.equal(new Set([...first, ...second].map((patient) => patient.id)).size, 10, 'patients are generated anew on every call')
  t.ok(first.every((patient) => patient.age >= 0 && patient.age <= 95))
  t.equal(files.reads, 2, 'neither the routes nor the generator read the files again')

  const entries = await entriesIn(redis.url)
  t.same(Object.keys(entries).sort(), ['%2Freference%2Fconditions', '%2Freference%2Fdemographics'])
  for (const ttl of Object.values(entries)) t.ok(ttl > 86_000 && ttl <= 86_400, `a day in Redis (${ttl} s)`)

  t.match((await app.inject('/health')).json(), { status: 'ok', cache: { ok: true, store: 'redis', state: 'up', latencyMs: Number } })
})

t.test('warmed entries answer real clients on the public host', async (t) => {
  const port = await freePort()
  const app = await build({ publicHost: `127.0.0.1:${port}` })
  t.teardown(() => app.close())
  await app.listen({ port, host: '127.0.0.1' })
  const get = async (host: string): Promise<unknown> => {
    const response = await request(`http://127.0.0.1:${port}/reference/conditions`, { headers: { host } })
    await response.body.dump()
    return response.headers['x-cache']
  }
  t.equal(await get(`127.0.0.1:${port}`), 'HIT')
  t.equal(await get(`localhost:${port}`), 'MISS', 'entries are per host: another name for the server is not warmed')
})

t.test('with Redis stopped it answers 200 from the files, and uses Redis again once it is back', async (t) => {
  const redis = await restartableRedis(t)
  await redis.start()
  const files = new ReferenceFiles(20)
  const app = await build({ redisUrl: redis.url, files })
  t.teardown(() => app.close())
  t.equal(await xCache(app, '/reference/demographics'), 'HIT')

  await redis.stop()
  t.equal(await xCache(app, '/reference/demographics'), 'BYPASS', 'the handler answers')
  t.equal((await app.inject('/patients?count=2')).statusCode, 200)
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.match(health.json(), { status: 'degraded', cache: { ok: false, store: 'redis', state: 'down' } })
  t.ok(files.reads > 2, 'from the files')

  await redis.start()
  t.ok(await eventually(async () => await xCache(app, '/reference/demographics') === 'MISS', 10_000), 'the new, empty Redis is asked')
  t.equal(await xCache(app, '/reference/demographics'), 'HIT')
  t.same(Object.keys(await entriesIn(redis.url)), ['%2Freference%2Fdemographics'], 'and holds the entry')
  t.match((await app.inject('/health')).json(), { status: 'ok', cache: { state: 'up' } })
})

t.test('it starts while Redis is not up yet, and picks Redis up when it starts', async (t) => {
  const redis = await restartableRedis(t)
  const files = new ReferenceFiles(20)
  const app = await build({ redisUrl: redis.url, files })
  t.teardown(() => app.close())
  // A client that has never connected is 'connecting' until its first attempt fails, then 'down'.
  t.match((await app.inject('/health')).json(), { status: 'degraded', cache: { ok: false, store: 'redis' } })
  t.equal(await xCache(app, '/reference/conditions'), 'BYPASS')
  t.equal((await app.inject('/patients')).statusCode, 200)

  await redis.start()
  t.ok(await eventually(async () => await xCache(app, '/reference/conditions') === 'MISS', 10_000), 'Redis is used once it is there')
  t.equal(await xCache(app, '/reference/conditions'), 'HIT')
  t.same(Object.keys(await entriesIn(redis.url)), ['%2Freference%2Fconditions'])
})

import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { build, type HealthBotOptions } from '../../examples/health-bot/app.js'
import { createBackends, type Backends } from '../../examples/health-bot/backends.js'
import { until } from '../helpers/events.js'
import { call, exampleApp, redisServer } from '../helpers/examples.js'

interface Teardown { teardown: (fn: () => unknown) => void }

async function botApp (t: Teardown, url: string | undefined, options: HealthBotOptions = {}): Promise<{ app: FastifyInstance, backends: Backends }> {
  const backends = createBackends(5)
  return { app: await exampleApp(t, url, async (redis) => await build({ redis, backends, ...options })), backends }
}

const say = async (app: FastifyInstance, text: string): Promise<string> => (await call(app, '/users/u1/messages', 'POST', { text })).body.reply

const redis = await redisServer(t)

for (const [store, url] of [['memory', undefined], ['tiered', redis.url]] as const) {
  t.test(`${store}: the files, the database and the API are asked once for repeated reads`, async (t) => {
    const { app, backends } = await botApp(t, url)
    const memory = await call(app, '/users/u1/memory')
    t.same(memory, { status: 200, body: { profile: { name: 'Ana', goal: 'eat more fibre' }, preferences: { units: 'metric' } } })
    t.same(await call(app, '/users/u1/memory'), memory)
    await call(app, '/users/u1/history?limit=10')
    await call(app, '/users/u1/history?limit=10')
    const foods = await Promise.all(Array.from({ length: 5 }, async () => await call(app, '/nutrition?food=apple&max=1')))
    t.ok(foods.every((food) => food.status === 200 && food.body[0].kcalPer100g === 52))
    t.same([backends.files.reads, backends.conversations.queries, backends.usda.calls], [1, 1, 1])
    t.match((await call(app, '/health')).body, { status: 'ok', cache: { ok: true, store }, values: { hits: 2, misses: 3 } })
  })

  t.test(`${store}: every write is seen by the next read: profile, preferences, new messages`, async (t) => {
    const { app } = await botApp(t, url)
    await call(app, '/users/u1/memory')
    t.equal((await call(app, '/users/u1/profile', 'PUT', { name: 'Ana Lima' })).body.profile.name, 'Ana Lima')
    t.equal((await call(app, '/users/u1/memory')).body.profile.name, 'Ana Lima')
    await call(app, '/users/u1/preferences', 'PUT', { units: 'imperial' })
    t.match((await call(app, '/users/u1/memory')).body, { profile: { name: 'Ana Lima', goal: 'eat more fibre' }, preferences: { units: 'imperial' } })

    t.same((await call(app, '/users/u1/history?limit=10')).body, [])
    t.same((await call(app, '/users/u1/history?limit=20')).body, [])
    t.equal(await say(app, 'I ate an apple'), 'Noted, Ana Lima. Recent messages: 1. Apple, raw, with skin: 52 kcal per 100 g.')
    for (const limit of [10, 20]) {
      t.same((await call(app, `/users/u1/history?limit=${limit}`)).body.map((m: { role: string }) => m.role), ['user', 'assistant'], `limit ${limit}`)
    }
    t.match(await say(app, 'Hello'), /Recent messages: 3\.$/, 'the bot reads the history its own messages changed')
  })
}

t.test('tiered: the nutrition API failing still answers from the cache, past the 24 h', async (t) => {
  const { app, backends } = await botApp(t, redis.url, { ttl: { nutrition: 0.05 } })
  const apple = await call(app, '/nutrition?food=apple')
  await say(app, 'I ate a banana')
  await until(Date.now(), 50)
  backends.usda.down = true
  t.same(await call(app, '/nutrition?food=apple'), apple, 'the stale answer, not the error')
  t.match(await say(app, 'I ate a banana again'), /Banana, raw: 89 kcal/)
  t.equal(backends.usda.calls, 4, 'the API was asked, and failed')
  t.same(await call(app, '/nutrition?food=oatmeal'), { status: 503, body: { error: 'the nutrition service is unavailable' } }, 'nothing cached: the error')
  t.match(await say(app, 'I ate oatmeal'), /I cannot look up oatmeal right now\./)
  t.equal((await call(app, '/health')).body.values.stale, 2)
  backends.usda.down = false
  t.same((await call(app, '/nutrition?food=oatmeal')).status, 200, 'the API is back')
})

t.test('tiered, Redis killed: answers keep coming from memory, and writes are still seen', async (t) => {
  const own = await redisServer(t)
  const { app, backends } = await botApp(t, own.url)
  const reads = ['/users/u1/memory', '/users/u1/history?limit=10', '/nutrition?food=banana']
  const before = await Promise.all(reads.map(async (url) => await call(app, url)))
  await own.kill()
  const during = await Promise.all(reads.map(async (url) => await call(app, url)))
  t.same(during, before, 'the same answers, with 200s')
  t.same([backends.files.reads, backends.conversations.queries, backends.usda.calls], [1, 1, 1], 'from memory: nothing asked again')

  t.equal((await call(app, '/users/u1/preferences', 'PUT', { units: 'imperial' })).status, 200)
  t.equal((await call(app, '/users/u1/memory')).body.preferences.units, 'imperial')
  t.match(await say(app, 'I ate a banana'), /Recent messages: 1\. Banana, raw/)
  t.equal((await call(app, '/users/u1/history?limit=10')).body.length, 2)
  const filesRead = backends.files.reads
  await call(app, '/users/u1/memory')
  t.equal(backends.files.reads, filesRead, 'what was computed meanwhile is kept in memory')
  const health = await call(app, '/health')
  t.equal(health.status, 200)
  t.match(health.body, { status: 'ok', cache: { ok: false, store: 'tiered' } })
})

import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { build, type HealthBotOptions } from '../../examples/health-bot/app.js'
import { createBackends, type Backends } from '../../examples/health-bot/backends.js'
import { until } from '../helpers/events.js'
import { call, exampleApp, redisServer } from '../helpers/examples.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const TOKEN = 'test-admin-token'
const ADMIN = { authorization: `Bearer ${TOKEN}` }

async function botApp (t: Teardown, url: string | undefined, options: HealthBotOptions = {}): Promise<{ app: FastifyInstance, backends: Backends }> {
  const backends = createBackends(5)
  return { app: await exampleApp(t, url, async (redis) => await build({ redis, backends, adminToken: TOKEN, ...options })), backends }
}

/** What the value cache did for a request, as the reader sees it in `server-timing`. */
const timing = async (app: FastifyInstance, url: string, method: 'GET' | 'POST' = 'GET', payload?: object): Promise<string> =>
  String((await app.inject({ method, url, payload })).headers['server-timing'])
const calls = (backends: Backends): number[] => [backends.files.reads, backends.conversations.queries, backends.usda.calls]
/** Log lines at warn and above, as the server prints them. */
function warnings (): { lines: string[], logger: HealthBotOptions['logger'] } {
  const lines: string[] = []
  return { lines, logger: { level: 'warn', stream: new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } }) } }
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
    t.match((await call(app, '/health')).body, { status: 'ok', enabled: true, cache: { ok: true, store }, values: { hits: 2, misses: 3 } })
  })

  t.test(`${store}: the reader sees each value lookup in server-timing`, async (t) => {
    const { app } = await botApp(t, url)
    t.match(await timing(app, '/users/u1/memory'), /^cache;desc=miss;dur=[\d.]+$/)
    t.match(await timing(app, '/users/u1/memory'), /^cache;desc=hit;dur=[\d.]+$/)
    t.match(await timing(app, '/nutrition?food=banana'), /^cache;desc=miss/)
    // The message saved first dropped the history, so that lookup runs again; memory and nutrition hit.
    const message = await timing(app, '/users/u1/messages', 'POST', { text: 'I ate a banana' })
    t.match(message, /^cache;desc=miss;dur=[\d.]+, cache-memory;desc=hit;dur=[\d.]+, cache-history;desc=miss;dur=[\d.]+, cache-nutrition;desc=hit;dur=[\d.]+$/)
  })

  t.test(`${store}: the message path and /nutrition share one entry per food, whatever max`, async (t) => {
    const { app, backends } = await botApp(t, url)
    t.equal((await call(app, '/nutrition?food=banana')).body.length, 1)
    t.match(await say(app, 'I ate a banana'), /Banana, raw: 89 kcal/)
    t.equal(backends.usda.calls, 1, '"I ate a banana" after /nutrition?food=banana asks no API')
    t.equal((await call(app, '/nutrition?food=apple&max=1')).body.length, 1)
    t.same((await call(app, '/nutrition?food=apple&max=5')).body.map((food: { kcalPer100g: number }) => food.kcalPer100g), [52, 243])
    t.same((await call(app, '/nutrition?food=apple')).body.length, 2)
    t.match(await say(app, 'I ate an apple'), /Apple, raw, with skin/)
    t.equal(backends.usda.calls, 2, 'max=1, max=5 and the message are one entry for apple')
  })

  t.test(`${store}: bad input answers 400 naming the field, asks no backend and stores nothing`, async (t) => {
    const { app, backends } = await botApp(t, url)
    const bad: Array<['GET' | 'POST' | 'PUT', string, unknown, RegExp]> = [
      ['GET', '/users/u%201/memory', undefined, /^params\/userId Expected string to match/],
      ['GET', '/users/u1/history?limit=ten', undefined, /^querystring\/limit Expected integer/],
      ['GET', '/users/u1/history?limit=0', undefined, /^querystring\/limit Expected integer to be greater or equal to 1/],
      ['GET', '/users/u1/history?limit=10&offset=5', undefined, /^querystring\/offset Unexpected property/],
      ['GET', '/nutrition?food=Banana!', undefined, /^querystring\/food Expected string to match/],
      ['GET', '/nutrition?food=banana&max=99', undefined, /^querystring\/max Expected integer to be less or equal to 25/],
      ['GET', '/nutrition', undefined, /^querystring\/food Expected required property/],
      ['POST', '/users/u1/messages', null, /^body Expected object/],
      ['POST', '/users/u1/messages', 'I ate a banana', /^body Expected object/],
      ['POST', '/users/u1/messages', { text: 5 }, /^body\/text Expected string/],
      ['POST', '/users/u1/messages', {}, /^body\/text Expected required property/],
      ['PUT', '/users/u1/profile', {}, /^body Expected object to have at least 1 properties/],
      ['PUT', '/users/u1/profile', { name: 7 }, /^body\/name Expected string/],
      ['PUT', '/users/u1/preferences', null, /^body Expected object/]
    ]
    for (const [method, path, body, message] of bad) {
      const response = await app.inject({ method, url: path, ...(body === undefined ? {} : { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
      t.equal(response.statusCode, 400, `${method} ${path} ${JSON.stringify(body)}`)
      t.match(response.json(), { message }, 'the message says what is wrong')
    }
    t.same(calls(backends), [0, 0, 0], 'no backend was asked')
    t.same((await app.cache.list({ tag: 'user:u1' }))?.entries, [], 'nothing was stored')
    t.same((await call(app, '/users/u1/history')).body, [], 'no message was saved')
    t.match(await timing(app, '/nutrition?food=banana'), /^cache;desc=miss/, 'the first good request is a miss')
  })

  t.test(`${store}: exists, ttl, expire, delete and clear_all for an operator, behind ADMIN_TOKEN`, async (t) => {
    const { app, backends } = await botApp(t, url)
    const admin = async (method: 'GET' | 'POST' | 'DELETE', path: string, payload?: object, headers: Record<string, string> = ADMIN) =>
      await app.inject({ method, url: path, payload, headers })
    t.equal((await admin('GET', '/cache/entries/user_memory:u1', undefined, {})).statusCode, 401, 'no token')
    t.equal((await admin('DELETE', '/cache', undefined, { authorization: 'Bearer nope' })).statusCode, 401, 'a wrong token')
    t.equal((await admin('GET', '/cache/entries/user_memory:u1')).statusCode, 404, 'not cached yet')
    t.equal((await admin('GET', '/cache/entries/anything')).statusCode, 400, 'not a key the bot caches')

    await call(app, '/users/u1/memory')
    await call(app, '/nutrition?food=apple')
    const state = await admin('GET', '/cache/entries/user_memory:u1')
    t.equal(state.statusCode, 200)
    t.match(state.json(), { key: 'user_memory:u1', tags: ['user:u1', 'key:user_memory:u1'] })
    t.ok(state.json().ttl > 3500 && state.json().ttl <= 3600, `ttl ${String(state.json().ttl)} of 3600`)

    const expired = await admin('POST', '/cache/entries/user_memory:u1/expire', { ttl: 60 })
    t.equal(expired.statusCode, 200)
    t.ok(expired.json().ttl <= 60, 'the new ttl')
    t.equal((await admin('POST', '/cache/entries/usda:oatmeal/expire', { ttl: 60 })).statusCode, 404, 'nothing to expire')
    t.equal((await admin('POST', '/cache/entries/usda:apple/expire', { ttl: 0 })).statusCode, 400)
    await call(app, '/users/u1/memory')
    t.equal(backends.files.reads, 1, 'the value is still answered')
    await call(app, '/users/u1/profile', 'PUT', { name: 'Ana Lima' })
    t.equal((await call(app, '/users/u1/memory')).body.profile.name, 'Ana Lima', 'and still dropped by its tag after expire')

    t.equal((await admin('DELETE', '/cache/entries/usda:apple')).statusCode, 204)
    t.equal((await admin('GET', '/cache/entries/usda:apple')).statusCode, 404)
    await call(app, '/nutrition?food=apple')
    t.equal(backends.usda.calls, 2, 'deleted: asked again')

    t.equal((await admin('DELETE', '/cache')).statusCode, 204)
    const before = calls(backends)
    await call(app, '/users/u1/memory')
    await call(app, '/nutrition?food=apple')
    t.same(calls(backends), [before[0] + 1, before[1], before[2] + 1], 'cleared: everything is asked again')
  })

  t.test(`${store}: ENABLE_CACHE=false: every read asks its backend, and the server says so`, async (t) => {
    const { lines, logger } = warnings()
    const { app, backends } = await botApp(t, url, { enabled: false, logger })
    t.match(lines.join(''), /the cache is off \(ENABLE_CACHE=false\)/)
    for (let i = 0; i < 2; i++) {
      await call(app, '/users/u1/memory')
      await call(app, '/nutrition?food=banana')
    }
    t.same(calls(backends), [2, 0, 2])
    t.match(await timing(app, '/users/u1/memory'), /^cache;desc=miss/)
    t.same((await app.cache.list({ tag: 'user:u1' }))?.entries, [])
    t.match((await call(app, '/health')).body, { enabled: false })
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

t.test('without ADMIN_TOKEN the server warns at start and the operations routes answer 401', async (t) => {
  for (const adminToken of [undefined, '']) {
    const { lines, logger } = warnings()
    const { app } = await botApp(t, undefined, { adminToken, logger })
    t.match(lines.join(''), /ADMIN_TOKEN is not set/)
    const refused = await app.inject({ method: 'DELETE', url: '/cache', headers: { authorization: 'Bearer ' } })
    t.same([refused.statusCode, refused.json()], [401, { error: 'set ADMIN_TOKEN to use this route' }])
  }
})

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

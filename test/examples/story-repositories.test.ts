import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { build, type StoryAppOptions } from '../../examples/story-repositories/app.js'
import { createDatabase, type Database } from '../../examples/story-repositories/database.js'
import { call, exampleApp, redisServer } from '../helpers/examples.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const TOKEN = 'test-admin-token'
const ADMIN = { authorization: `Bearer ${TOKEN}` }

async function storyApp (t: Teardown, url: string | undefined, options: StoryAppOptions = {}): Promise<{ app: FastifyInstance, db: Database }> {
  const db = createDatabase(5)
  return { app: await exampleApp(t, url, async (redis) => await build({ redis, database: db, adminToken: TOKEN, ...options })), db }
}

const get = async (app: FastifyInstance, url: string): ReturnType<typeof call> => await call(app, url)
const send = async (app: FastifyInstance, method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object): ReturnType<typeof call> => await call(app, url, method, payload)
const ids = (list: Array<{ id: string }>): string[] => list.map((entity) => entity.id).sort()
/** What the value cache did for a GET, as the reader sees it in `server-timing`. */
const timing = async (app: FastifyInstance, url: string): Promise<string | undefined> => (await app.inject(url)).headers['server-timing'] as string | undefined
const queries = (db: Database): number[] => [db.heroes.queries, db.children.queries, db.stories.queries]
const stats = async (app: FastifyInstance): Promise<any> => (await app.inject({ url: '/cache/stats', headers: ADMIN })).json()

const redis = await redisServer(t)

for (const [store, url] of [['memory', undefined], ['redis', redis.url]] as const) {
  t.test(`${store}: repeated reads query the database once: entities and whole lists`, async (t) => {
    const { app, db } = await storyApp(t, url)
    const first = await get(app, '/heroes/h1')
    t.same(first, { status: 200, body: { id: 'h1', name: 'Captain Kindness', language: 'en', description: 'Helps everyone' } })
    t.same(await get(app, '/heroes/h1'), first)
    const lists = await Promise.all(Array.from({ length: 10 }, async () => await get(app, '/heroes?language=en')))
    t.ok(lists.every((list) => list.status === 200 && list.body.length === 1 && list.body[0].id === 'h1'))
    t.equal(db.heroes.queries, 2, 'one query for the hero, one for ten concurrent reads of the list')
    for (let i = 0; i < 3; i++) t.equal((await get(app, '/stories?childId=c1')).body.length, 1)
    t.equal((await get(app, '/children/c1')).body.name, 'Emma')
    await get(app, '/children/c1')
    t.same([db.stories.queries, db.children.queries], [1, 1])
    t.same(await get(app, '/heroes/nobody'), { status: 404, body: { error: 'not found' } })
    await get(app, '/heroes/nobody')
    t.equal(db.heroes.queries, 3, '"not found" is cached too')
    // Ten concurrent reads of one list are one lookup, so one miss.
    t.match((await stats(app)).values, { hits: 5, misses: 5, errors: 0 }, 'the stats count the repositories\' hits and misses')
  })

  t.test(`${store}: the seed's other keys: a hero by name, children by name, a child by name, age and gender`, async (t) => {
    const { app, db } = await storyApp(t, url)
    t.match(await timing(app, '/heroes/by-name/Captain%20Kindness'), /^cache;desc=miss;dur=[\d.]+$/, 'the reader sees the miss')
    t.match(await timing(app, '/heroes/by-name/Captain%20Kindness'), /^cache;desc=hit;dur=[\d.]+$/, 'and the hit')
    t.equal((await get(app, '/heroes/by-name/Captain%20Kindness')).body.id, 'h1')
    t.equal(db.heroes.queries, 1)
    t.same(await get(app, `/heroes/by-name/${encodeURIComponent('Капитан Доброта')}`), { status: 200, body: { id: 'h2', name: 'Капитан Доброта', language: 'ru', description: 'Помогает всем' } })
    t.equal((await get(app, '/heroes/by-name/Nobody')).status, 404)

    for (let i = 0; i < 2; i++) t.same(ids((await get(app, '/children/by-name/Emma')).body), ['c1'])
    for (let i = 0; i < 2; i++) t.equal((await get(app, '/children/exact?name=Emma&age=7&gender=female')).body.id, 'c1')
    t.equal((await get(app, '/children/exact?name=Emma&age=8&gender=female')).status, 404, 'another age is another key')
    t.equal(db.children.queries, 3, 'one query per key')

    // A save, an update and a delete drop every lookup the entity was or is in.
    const twin = await send(app, 'POST', '/children', { name: 'Emma', age: 8, gender: 'female', interests: [] })
    t.same(ids((await get(app, '/children/by-name/Emma')).body), ids([{ id: 'c1' }, twin.body]))
    t.equal((await get(app, '/children/exact?name=Emma&age=8&gender=female')).body.id, twin.body.id)
    await send(app, 'PUT', '/children/c1', { name: 'Emily' })
    t.same(ids((await get(app, '/children/by-name/Emma')).body), [twin.body.id], 'the name it left')
    t.same(ids((await get(app, '/children/by-name/Emily')).body), ['c1'], 'the name it took')
    t.equal((await get(app, '/children/exact?name=Emma&age=7&gender=female')).status, 404)
    await send(app, 'PUT', '/heroes/h1', { name: 'Captain Calm' })
    t.equal((await get(app, '/heroes/by-name/Captain%20Kindness')).status, 404)
    t.equal((await get(app, '/heroes/by-name/Captain%20Calm')).body.id, 'h1')
    await send(app, 'DELETE', '/heroes/h1')
    t.equal((await get(app, '/heroes/by-name/Captain%20Calm')).status, 404)
  })

  t.test(`${store}: a save caches the entity it saved, an update the entity as it now is`, async (t) => {
    const { app, db } = await storyApp(t, url)
    const created = await send(app, 'POST', '/heroes', { name: 'Doctor Brave', language: 'en', description: 'Never gives up' })
    t.equal(created.status, 201)
    const afterSave = db.heroes.queries
    t.same(await get(app, `/heroes/${created.body.id as string}`), { status: 200, body: created.body })
    t.match(await timing(app, `/heroes/${created.body.id as string}`), /^cache;desc=hit/)
    t.equal(db.heroes.queries, afterSave, 'the new hero is read from the cache')
    await send(app, 'PUT', `/heroes/${created.body.id as string}`, { description: 'Brave' })
    const afterUpdate = db.heroes.queries
    t.equal((await get(app, `/heroes/${created.body.id as string}`)).body.description, 'Brave')
    t.equal(db.heroes.queries, afterUpdate, 'and so is the updated one')
  })

  t.test(`${store}: bad input answers 400 naming the field, queries nothing and stores nothing`, async (t) => {
    const { app, db } = await storyApp(t, url)
    const bad: Array<[string, 'GET' | 'POST' | 'PUT', string, unknown, RegExp]> = [
      ['a number where text is expected', 'POST', '/heroes', { name: 7, language: 'en', description: 'x' }, /body\/name Expected string/],
      ['a missing field', 'POST', '/heroes', { name: 'Doctor Brave' }, /body\/language Expected required property/],
      ['null', 'POST', '/heroes', null, /^body Expected object$/],
      ['a string where an object is expected', 'POST', '/children', 'Emma', /^body Expected object$/],
      ['an unknown field', 'POST', '/stories', { childId: 'c1', heroId: 'h1', language: 'en', title: 'x', rating: 5 }, /body\/rating Unexpected property/],
      ['an age that is no integer', 'POST', '/children', { name: 'Ana', age: 'seven', gender: 'female', interests: [] }, /body\/age Expected integer/],
      ['an age as text', 'POST', '/children', { name: 'Ana', age: '7', gender: 'female', interests: [] }, /body\/age Expected integer/],
      ['an unknown gender', 'POST', '/children', { name: 'Ana', age: 7, gender: 'robot', interests: [] }, /body\/gender/],
      ['an empty update', 'PUT', '/heroes/h1', {}, /^body Expected object to have at least 1 properties/],
      ['a null update', 'PUT', '/children/c1', null, /^body Expected object$/],
      ['an id that is no id', 'GET', '/heroes/h1%20OR%201', undefined, /^params\/id Expected string to match/],
      ['an unknown filter', 'GET', '/heroes?colour=red', undefined, /querystring\/colour Unexpected property/],
      ['two filters', 'GET', '/stories?childId=c1&language=en', undefined, /^querystring Expected object to have no more than 1 properties/],
      ['an age that is no number', 'GET', '/children/exact?name=Emma&age=seven&gender=female', undefined, /querystring\/age Expected integer/],
      ['a missing gender', 'GET', '/children/exact?name=Emma&age=7', undefined, /querystring\/gender Expected required property/]
    ]
    for (const [what, method, path, body, message] of bad) {
      const response = await app.inject({ method, url: path, ...(body === undefined ? {} : { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
      t.equal(response.statusCode, 400, what)
      t.match(response.json(), { message }, `${what}: the message says what is wrong`)
    }
    t.equal((await app.inject({ method: 'POST', url: '/heroes', payload: 'Doctor Brave', headers: { 'content-type': 'text/plain' } })).statusCode, 400, 'a text body')
    t.same(queries(db), [0, 0, 0], 'the database was not asked')
    t.same((await app.cache.list({ tag: 'hero' }))?.entries, [], 'nothing was cached')
    t.same((await app.cache.list({ tag: 'child' }))?.entries, [])
    t.match(await timing(app, '/children/exact?name=Emma&age=7&gender=female'), /^cache;desc=miss/, 'the first good request is a miss')
  })

  t.test(`${store}: the manual invalidation drops one entity or a whole kind, behind the token`, async (t) => {
    const { app, db } = await storyApp(t, url)
    for (const path of ['/heroes/h1', '/heroes/h2', '/heroes?language=en', '/heroes/by-name/Captain%20Kindness', '/children/c1']) await get(app, path)
    const invalidate = async (payload: object, headers: Record<string, string> = ADMIN) => await app.inject({ method: 'POST', url: '/cache/invalidate', payload, headers })
    t.equal((await invalidate({ kind: 'hero' }, {})).statusCode, 401, 'no token')
    t.equal((await invalidate({ kind: 'hero' }, { authorization: 'Bearer wrong' })).statusCode, 401, 'a wrong token')
    t.equal((await invalidate({ kind: 'dragon' })).statusCode, 400, 'an unknown kind')
    t.equal((await app.inject({ url: '/cache/stats' })).statusCode, 401, 'the stats route is behind the token too')
    t.same((await invalidate({ kind: 'hero', id: 'h1' })).json(), { dropped: 3 }, 'h1, the list of English heroes and its name')
    const before = queries(db)
    await get(app, '/heroes/h2')
    t.equal(db.heroes.queries, before[0], 'h2 is still cached')
    for (const path of ['/heroes/h1', '/heroes?language=en', '/heroes/by-name/Captain%20Kindness']) await get(app, path)
    t.equal(db.heroes.queries, before[0] + 3, 'what the entity was in is read again')

    t.same((await invalidate({ kind: 'hero' })).json(), { dropped: 4 }, 'every hero entry')
    await get(app, '/heroes/h2')
    await get(app, '/children/c1')
    t.same(queries(db), [before[0] + 4, before[1], 0], 'heroes are read again, children are not')
  })

  t.test(`${store}: CACHE_ENABLED=false: every read goes to the database, nothing is cached`, async (t) => {
    const lines: string[] = []
    const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
    const { app, db } = await storyApp(t, url, { enabled: false, logger: { level: 'warn', stream } })
    t.match(lines.join(''), /the cache is off/, 'said at start')
    for (let i = 0; i < 3; i++) t.equal((await get(app, '/heroes/h1')).status, 200)
    await send(app, 'POST', '/heroes', { name: 'Doctor Brave', language: 'en', description: 'Never gives up' })
    t.equal(db.heroes.queries, 4)
    t.match(await timing(app, '/heroes/h1'), /^cache;desc=miss/)
    t.same((await app.cache.list({ tag: 'hero' }))?.entries, [])
  })
}

t.test('without ADMIN_TOKEN the server warns at start and the operations routes answer 401', async (t) => {
  for (const adminToken of [undefined, '']) {
    const lines: string[] = []
    const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
    const { app } = await storyApp(t, undefined, { adminToken, logger: { level: 'warn', stream } })
    t.match(lines.join(''), /ADMIN_TOKEN is not set/)
    const refused = await app.inject({ method: 'POST', url: '/cache/invalidate', payload: { kind: 'hero' }, headers: { authorization: 'Bearer ' } })
    t.same([refused.statusCode, refused.json()], [401, { error: 'set ADMIN_TOKEN to use this route' }])
    t.equal((await app.inject({ url: '/cache/stats', headers: { authorization: 'Bearer undefined' } })).statusCode, 401)
  }
})

t.test('redis: every write is seen by the next read of the entity and of each list it was or is in', async (t) => {
  const { app } = await storyApp(t, redis.url)
  const reads = ['/heroes', '/heroes?language=en', '/heroes?language=ru', '/heroes/h1', '/heroes/h2', '/stories?childId=c1', '/stories?language=en', '/children/c1']
  for (const url of reads) t.equal((await get(app, url)).status, 200, `${url} cached`)

  t.equal((await send(app, 'PUT', '/heroes/h1', { language: 'ru' })).body.language, 'ru')
  t.equal((await get(app, '/heroes/h1')).body.language, 'ru', 'the entity')
  t.same(ids((await get(app, '/heroes?language=en')).body), [], 'the list it left')
  t.same(ids((await get(app, '/heroes?language=ru')).body), ['h1', 'h2'], 'the list it joined')
  t.equal((await get(app, '/heroes')).body.find((hero: { id: string }) => hero.id === 'h1').language, 'ru', 'the list of all')

  const created = await send(app, 'POST', '/heroes', { name: 'Doctor Brave', language: 'en', description: 'Never gives up' })
  t.equal(created.status, 201)
  t.same(ids((await get(app, '/heroes?language=en')).body), [created.body.id])
  t.equal((await get(app, '/heroes')).body.length, 3)

  t.equal((await send(app, 'DELETE', '/heroes/h2')).status, 204)
  t.equal((await get(app, '/heroes/h2')).status, 404)
  t.same(ids((await get(app, '/heroes?language=ru')).body), ['h1'])
  t.equal((await send(app, 'DELETE', '/heroes/h2')).status, 404)

  const story = await send(app, 'POST', '/stories', { childId: 'c1', heroId: 'h1', language: 'en', title: 'Emma and the Brave Doctor' })
  t.same(ids((await get(app, '/stories?childId=c1')).body), ['s1', story.body.id].sort())
  t.equal((await get(app, '/stories?language=en')).body.length, 2)
  await send(app, 'PUT', '/children/c1', { age: 8 })
  t.equal((await get(app, '/children/c1')).body.age, 8)
  t.equal((await send(app, 'PUT', '/children/nobody', { age: 8 })).status, 404)
})

t.test('redis stopped: reads fall back to the database with no error, and writes are still seen', async (t) => {
  const own = await redisServer(t)
  const { app, db } = await storyApp(t, own.url)
  t.equal((await get(app, '/heroes/h1')).status, 200)
  await get(app, '/heroes/h1')
  t.equal(db.heroes.queries, 1, 'from Redis')
  await own.kill()
  const during = [await get(app, '/heroes/h1'), await get(app, '/heroes'), await get(app, '/stories?childId=c1')]
  t.same(during.map((r) => r.status), [200, 200, 200])
  t.equal(during[0].body.name, 'Captain Kindness')
  t.equal(db.heroes.queries, 3, 'the database answered')
  t.equal((await send(app, 'PUT', '/heroes/h1', { name: 'Captain Calm' })).status, 200)
  t.equal((await get(app, '/heroes/h1')).body.name, 'Captain Calm')
  const response = await app.inject({ url: '/cache/stats', headers: ADMIN })
  t.equal(response.statusCode, 200)
  t.match(response.json().health, { ok: false, state: 'down' })
  t.ok(response.json().values.errors > 0, 'the failed store calls are counted')
  t.equal((await app.inject({ method: 'POST', url: '/cache/invalidate', payload: { kind: 'hero' }, headers: ADMIN })).statusCode, 503, 'an invalidation that could not happen says so')
})

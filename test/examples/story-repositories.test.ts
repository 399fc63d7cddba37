import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { build } from '../../examples/story-repositories/app.js'
import { createDatabase, type Database } from '../../examples/story-repositories/database.js'
import { call, exampleApp, redisServer } from '../helpers/examples.js'

interface Teardown { teardown: (fn: () => unknown) => void }

async function storyApp (t: Teardown, url: string | undefined): Promise<{ app: FastifyInstance, db: Database }> {
  const db = createDatabase(5)
  return { app: await exampleApp(t, url, async (redis) => await build({ redis, database: db })), db }
}

const get = async (app: FastifyInstance, url: string): ReturnType<typeof call> => await call(app, url)
const send = async (app: FastifyInstance, method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object): ReturnType<typeof call> => await call(app, url, method, payload)
const ids = (list: Array<{ id: string }>): string[] => list.map((entity) => entity.id).sort()

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
    const { values } = (await get(app, '/cache/stats')).body
    // Ten concurrent reads of one list are one lookup, so one miss.
    t.match(values, { hits: 5, misses: 5, errors: 0 }, 'the stats count the repositories\' hits and misses')
  })
}

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
  const stats = await get(app, '/cache/stats')
  t.equal(stats.status, 200)
  t.match(stats.body.health, { ok: false, state: 'down' })
  t.ok(stats.body.values.errors > 0, 'the failed store calls are counted')
})

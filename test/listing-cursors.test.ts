// Issue 24, point 5: a listing's cursor belongs to its listing. Another listing's cursor ends the
// listing (an empty last page); one this cache did not make (forged, edited, another cache's) throws
// FST_RESPONSE_CACHE_INVALID_ARGUMENT before any store is asked, so no cursor can trip the circuit
// breaker. Instances sharing a store share the key cursors are signed with: a user may page through
// one instance and go on through another.
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import responseCache, { type EntryPage, type ResponseCacheOptions } from '../lib/index.js'
import { startRedis, writesSent } from './helpers/redis.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`

/** A client as the README makes one, closed when the test ends. */
function redisClient (t: Teardown): Redis {
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  return redis
}

/** The tenants' catalogue: items tagged by id and `items`, one tenant per `x-tenant` header. */
async function catalogue (t: Teardown, options: ResponseCacheOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { ...options, tenant: (request) => request.headers['x-tenant'] as string | undefined })
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`, 'items'] } } },
    async (request) => ({ item: (request.params as { id: string }).id }))
  await app.ready()
  return app
}

async function fill (app: FastifyInstance, tenant: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await app.inject({ url: `/items/${i}`, headers: { 'x-tenant': tenant } })
  await writesSent()
}

const invalidCursor = { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"cursor": expected the cursor of a page that list\(\) answered/ }

/** The cursor's position, decoded as anyone can, edited, and encoded again with the rest as it was. */
function edited (cursor: string, edit: (position: unknown[]) => unknown[]): string {
  const [position, ...rest] = cursor.split('.')
  const parts = JSON.parse(Buffer.from(position, 'base64url').toString()) as unknown[]
  return [Buffer.from(JSON.stringify(edit(parts))).toString('base64url'), ...rest].join('.')
}

let n = 0
const kinds: Array<[string, (t: Teardown) => ResponseCacheOptions]> = [
  ['memory', () => ({ store: 'memory' })],
  ['redis', (t) => ({ store: 'redis', redis: redisClient(t), namespace: `c${++n}` })],
  ['tiered', (t) => ({ store: 'tiered', redis: redisClient(t), namespace: `c${++n}` })]
]

for (const [kind, options] of kinds) {
  t.test(`${kind}: another listing's cursor ends the listing; an edited one throws`, async (t) => {
    const app = await catalogue(t, options(t))
    await fill(app, 'a', 5)
    await fill(app, 'b', 5)
    const page = await app.cache.list({ tenant: 'a', limit: 2 }) as EntryPage
    t.equal(page.entries.length, 2)
    const cursor = page.cursor as string
    t.type(cursor, 'string')
    const end = { entries: [], cursor: undefined, source: kind }
    t.same(await app.cache.list({ tenant: 'b', cursor }), end, 'tenant b from tenant a\'s position: an empty last page')
    t.same(await app.cache.list({ route: 'GET /items/:id', cursor }), end, 'a route')
    t.same(await app.cache.list({ tag: 'items', cursor }), end, 'a tag')
    t.same(await app.cache.list({ tenant: 'a', tag: 'items', cursor }), end, 'the same tenant narrowed by a tag')
    const rest = await app.cache.list({ tenant: 'a', cursor }) as EntryPage
    t.equal(rest.entries.length, 3, 'its own listing goes on')

    await t.rejects(app.cache.list({ tenant: 'a', cursor: edited(cursor, (parts) => parts.map((part) => typeof part === 'number' ? part + 1 : part)) }), invalidCursor)
    await t.rejects(app.cache.list({ tenant: 'a', cursor: edited(cursor, () => [-1, 0, '0', '']) }), invalidCursor)
    await t.rejects(app.cache.list({ tenant: 'a', cursor: cursor.slice(0, -1) + (cursor.endsWith('A') ? 'B' : 'A') }), invalidCursor, 'its MAC changed')
    await t.rejects(app.cache.list({ tenant: 'a', cursor: Buffer.from(JSON.stringify([-1, 0, '0', ''])).toString('base64url') }), invalidCursor, 'an unsigned cursor')
  })
}

t.test('redis: bad cursors never reach the store nor trip its circuit breaker: requests still hit', async (t) => {
  const app = await catalogue(t, { store: 'redis', redis: redisClient(t), namespace: 'breaker' })
  await fill(app, 'a', 2)
  t.equal((await app.inject({ url: '/items/0', headers: { 'x-tenant': 'a' } })).headers['x-cache'], 'HIT')
  const unsigned = Buffer.from(JSON.stringify([-1, 0, '0', ''])).toString('base64url')
  const signedElsewhere = (await app.cache.list({ tenant: 'a', limit: 1 }) as EntryPage).cursor as string
  for (let i = 0; i < 20; i++) {
    await t.rejects(app.cache.list({ tag: 'items', cursor: unsigned }), invalidCursor)
    await t.rejects(app.cache.list({ tag: 'items', cursor: edited(signedElsewhere, () => [-1, 0, '0', '']) }), invalidCursor)
  }
  t.equal(app.cache.stats().total.errors, 0, 'no store error counted')
  const after = await app.inject({ url: '/items/0', headers: { 'x-tenant': 'a' } })
  t.equal(after.headers['x-cache'], 'HIT', 'the store is still in use')
})

for (const store of ['redis', 'tiered'] as const) {
  t.test(`${store}: a listing begun on one instance goes on on another sharing the Redis`, async (t) => {
    const namespace = `shared-${store}`
    const a = await catalogue(t, { store, redis: redisClient(t), namespace })
    const b = await catalogue(t, { store, redis: redisClient(t), namespace })
    await fill(a, 'a', 7)
    const paths: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await (pages % 2 === 0 ? a : b).cache.list({ tenant: 'a', limit: 3, cursor }) as EntryPage
      paths.push(...page.entries.map((entry) => entry.path as string))
      cursor = page.cursor
      pages++
    } while (cursor !== undefined)
    t.same(paths.sort(), Array.from({ length: 7 }, (_, i) => `GET /items/${i}`).sort(), 'each entry once, paging through both')
    t.ok(pages >= 3)
  })
}

t.test('a cursor of another cache (another namespace or store) is not this one\'s: it throws', async (t) => {
  const memory = await catalogue(t, {})
  const redis = await catalogue(t, { store: 'redis', redis: redisClient(t), namespace: 'other1' })
  const other = await catalogue(t, { store: 'redis', redis: redisClient(t), namespace: 'other2' })
  for (const app of [memory, redis, other]) await fill(app, 'a', 3)
  const fromMemory = (await memory.cache.list({ tag: 'items', limit: 1 }) as EntryPage).cursor
  const fromRedis = (await redis.cache.list({ tag: 'items', limit: 1 }) as EntryPage).cursor
  await t.rejects(redis.cache.list({ tag: 'items', cursor: fromMemory }), invalidCursor)
  await t.rejects(memory.cache.list({ tag: 'items', cursor: fromRedis }), invalidCursor)
  await t.rejects(other.cache.list({ tag: 'items', cursor: fromRedis }), invalidCursor, 'another namespace on the same Redis')
})

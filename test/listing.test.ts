import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { EntryPage, ListedEntry, ResponseCacheOptions } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { cachedApp, logCapture } from './helpers/app.js'
import { eventually } from './helpers/events.js'
import { connect, freePort, spawnRedis, startRedis, writesSent, CLIENT_OPTIONS } from './helpers/redis.js'
import { Redis } from 'ioredis'

const server = await startRedis(t)
const client = await connect(t, server)
const prefixed = await connect(t, server, { keyPrefix: 'app:' })
let n = 0
const kinds: Array<[string, () => ResponseCacheOptions]> = [
  ['memory', () => ({ store: 'memory' })],
  ['redis', () => ({ store: 'redis', redis: client, namespace: `l${++n}`, timeout: 2000 })],
  ['redis with keyPrefix', () => ({ store: 'redis', redis: prefixed, namespace: `l${++n}`, timeout: 2000 })],
  ['tiered', () => ({ store: 'tiered', redis: client, namespace: `l${++n}`, timeout: 2000 })]
]

type Params = { id: string }

/** Items and reports, tenants from a header, and values beside them. */
async function catalogue (t: Parameters<typeof cachedApp>[0], options: ResponseCacheOptions): Promise<FastifyInstance> {
  const app = await cachedApp(t, { ...options, ttl: 60, tenant: (request) => request.headers['x-tenant'] as string | undefined })
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as Params).id}`, 'items'] } } }, async (request) => ({ item: (request.params as Params).id }))
  app.post('/items/search', { config: { cache: { tags: ['items'] } } }, async (request) => ({ found: request.body }))
  app.get('/reports/:id', { config: { cache: { ttl: 30 } } }, async (request) => ({ report: (request.params as Params).id }))
  return app
}

async function all (app: FastifyInstance, selector: Parameters<FastifyInstance['cache']['list']>[0]): Promise<ListedEntry[]> {
  const entries: ListedEntry[] = []
  let cursor: string | undefined
  do {
    const page = await app.cache.list({ ...selector, cursor }) as EntryPage
    entries.push(...page.entries)
    cursor = page.cursor
  } while (cursor !== undefined)
  return entries
}

const paths = (entries: ListedEntry[]): string[] => entries.map((entry) => entry.path as string).sort()

for (const [kind, options] of kinds) {
  t.test(`${kind}: a route's entries, with what an operator wants to see`, async (t) => {
    const app = await catalogue(t, options())
    await app.inject('/items/1')
    await app.inject('/items/2?view=full')
    await app.inject({ method: 'POST', url: '/items/search', payload: { q: 'tea' } })
    await app.inject('/reports/1')
    await app.cache.set('greeting', { hello: 'world' }, { tags: ['items'], ttl: 90 })
    await writesSent()

    const page = await app.cache.list({ route: 'GET /items/:id' }) as EntryPage
    t.equal(page.cursor, undefined, 'one page holds them all')
    t.equal(page.source, kind === 'memory' ? 'memory' : 'redis')
    t.same(paths(page.entries), ['GET /items/1', 'GET /items/2?view=full'])
    const one = page.entries.find((entry) => entry.path === 'GET /items/1') as ListedEntry
    t.equal(one.kind, 'response')
    t.equal(one.route, 'GET /items/:id')
    t.equal(one.status, 200)
    t.ok(one.age >= 0 && one.age <= 1, `age ${one.age}`)
    t.ok(one.ttl > 55 && one.ttl <= 60, `ttl ${one.ttl}`)
    t.ok(one.size > '{"item":"1"}'.length, `size ${one.size}`)
    t.same(one.tags.sort(), ['item:1', 'items'])
    t.equal(one.tenant, undefined, 'no tenant unless the listing is by tenant')

    t.same(paths(await all(app, { route: '/items/search' })), ['POST /items/search'], 'a route without a method: every method')
    t.same(paths(await all(app, { route: 'HEAD /items/:id' })), ['GET /items/1', 'GET /items/2?view=full'], 'HEAD names the GET entries')
    const tagged = await all(app, { tag: 'items' })
    t.same(paths(tagged), ['GET /items/1', 'GET /items/2?view=full', 'POST /items/search', 'greeting'], 'a tag: responses and values')
    const value = tagged.find((entry) => entry.kind === 'value') as ListedEntry
    t.equal(value.route, undefined)
    t.equal(value.status, undefined)
    t.ok(value.ttl > 85 && value.ttl <= 90, `value ttl ${value.ttl}`)
    t.same(value.tags, ['items'])
    t.same(paths(await all(app, { route: '/items/:id', tag: 'item:2' })), ['GET /items/2?view=full'], 'route and tag: entries that have both')
    t.same(await app.cache.list({ tag: 'no-such-tag' }), { entries: [], cursor: undefined, source: page.source }, 'a tag with no entries: one empty last page')
  })

  t.test(`${kind}: pages of at most limit entries, and a cursor for the next`, async (t) => {
    const app = await catalogue(t, options())
    for (let i = 0; i < 25; i++) await app.inject(`/items/${i}`)
    await writesSent()
    const sizes: number[] = []
    const seen: string[] = []
    let cursor: string | undefined
    do {
      const page = await app.cache.list({ route: 'GET /items/:id', limit: 10, cursor }) as EntryPage
      sizes.push(page.entries.length)
      seen.push(...paths(page.entries))
      cursor = page.cursor
    } while (cursor !== undefined)
    t.same(sizes, [10, 10, 5])
    t.same(seen.sort(), Array.from({ length: 25 }, (_, i) => `GET /items/${i}`).sort(), 'each entry once')
    t.equal((await app.cache.list({ route: 'GET /items/:id' }) as EntryPage).entries.length, 25, 'the default limit (100) holds them')
    const exact = await app.cache.list({ route: 'GET /items/:id', limit: 25 }) as EntryPage
    t.equal(exact.cursor, undefined, 'a page that takes the last entry says so')
  })

  t.test(`${kind}: invalidated and expired entries are not listed`, async (t) => {
    const app = await catalogue(t, options())
    app.get('/brief', { config: { cache: { ttl: 1 } } }, async () => 'soon gone')
    await app.inject('/items/1')
    await app.inject('/items/2')
    await app.inject('/brief')
    await writesSent()
    t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 1)
    t.same(paths(await all(app, { tag: 'items' })), ['GET /items/2'])
    t.same(paths(await all(app, { route: 'GET /brief' })), ['GET /brief'])
    t.ok(await eventually(async () => (await all(app, { route: 'GET /brief' })).length === 0), 'gone once its TTL has passed')
    await app.cache.invalidate({ route: '/items/:id' })
    t.same(await all(app, { tag: 'items' }), [])
  })

  t.test(`${kind}: by tenant, and the tenant shown only then`, async (t) => {
    const app = await catalogue(t, options())
    await app.inject({ url: '/items/1', headers: { 'x-tenant': 'acme' } })
    await app.inject({ url: '/items/2', headers: { 'x-tenant': 'globex' } })
    await app.inject({ url: '/reports/3', headers: { 'x-tenant': 'acme' } })
    await app.cache.set('plan', 'gold', { tenant: 'acme' })
    await writesSent()
    const acme = await all(app, { tenant: 'acme' })
    t.same(paths(acme), ['GET /items/1', 'GET /reports/3', 'plan'])
    t.ok(acme.every((entry) => entry.tenant === 'acme'))
    t.same(paths(await all(app, { tenant: 'acme', route: 'GET /items/:id' })), ['GET /items/1'])
    t.same(paths(await all(app, { tenant: 'globex', tag: 'items' })), ['GET /items/2'])
    const unscoped = await all(app, { route: 'GET /items/:id' })
    t.equal(unscoped.length, 2)
    t.ok(unscoped.every((entry) => !('tenant' in entry)), 'no tenant, not even its hash')
  })
}

t.test('wrong arguments throw, naming them', async (t) => {
  const app = await catalogue(t, {})
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /"list"/],
    [{}, /"list": expected at least one of route, tag and tenant/],
    [{ limit: 5 }, /"list"/],
    [{ route: '' }, /"route"/],
    [{ tag: 7 }, /"tag"/],
    [{ tenant: {} }, /"tenant"/],
    [{ tag: 'a', limit: 0 }, /"limit": expected a whole number from 1 to 1000/],
    [{ tag: 'a', limit: 1001 }, /"limit"/],
    [{ tag: 'a', limit: 2.5 }, /"limit"/],
    [{ tag: 'a', cursor: 'not a cursor' }, /"cursor"/],
    [{ tag: 'a', cursor: Buffer.from('{"a":1}').toString('base64url') }, /"cursor"/],
    [{ tag: 'a', cursor: Buffer.from('["*"]').toString('base64url') }, /"cursor"/],
    [{ tag: 'a', cursor: Buffer.from('[]').toString('base64url') }, /"cursor"/],
    [{ tag: 'a', cursor: 'x'.repeat(600) }, /"cursor"/],
    [{ tag: 'a', cursor: 5 }, /"cursor"/],
    [{ tag: 'a', cursor: `${Buffer.from('not json').toString('base64url')}.${'A'.repeat(16)}.${'A'.repeat(22)}` }, /"cursor"/],
    [{ tag: 'a', cursor: `${Buffer.from('[0,0]').toString('base64url')}.${'A'.repeat(16)}.${'A'.repeat(22)}` }, /"cursor"/]
  ]
  for (const [selector, message] of cases) {
    await t.rejects(app.cache.list(selector as never), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message }, JSON.stringify(selector))
  }
})

t.test('a custom store without list(): a clear rejection, not a crash', async (t) => {
  const memory = new MemoryStore({ maxBytes: 1e6 })
  const store = { name: 'mine', get: memory.get.bind(memory), set: memory.set.bind(memory), delete: memory.delete.bind(memory), invalidateTags: memory.invalidateTags.bind(memory), clear: memory.clear.bind(memory) }
  const app = await cachedApp(t, { store })
  await t.rejects(app.cache.list({ tag: 'a' }), { code: 'FST_RESPONSE_CACHE_NOT_SUPPORTED', message: 'fastify-response-cache: the mine store has no list() method' })
  const listing = await cachedApp(t, { store: Object.assign(store, { name: 'lister', list: memory.list.bind(memory) }) })
  await listing.cache.set('k', 1, { tags: ['a'] })
  t.equal((await listing.cache.list({ tag: 'a' }) as EntryPage).source, 'lister', 'one that has it lists, named')
})

t.test('Redis stopped: undefined, counted and logged, never thrown; the tiered store lists its memory', async (t) => {
  const port = await freePort()
  let redis = await spawnRedis(port)
  t.teardown(async () => { await redis.kill() })
  const direct = new Redis({ port, ...CLIENT_OPTIONS })
  const forTiered = new Redis({ port, ...CLIENT_OPTIONS })
  t.teardown(() => { direct.disconnect(); forTiered.disconnect() })
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { store: 'redis', redis: direct, namespace: 'down' }, { logger })
  const tiered = await catalogue(t, { store: 'tiered', redis: forTiered, namespace: 'down2' })
  await app.ready()
  await tiered.ready()
  await app.cache.set('k', 1, { tags: ['a'] })
  await tiered.inject('/items/0')
  await tiered.inject('/items/1')
  await writesSent()
  t.equal((await app.cache.list({ tag: 'a' }) as EntryPage).entries.length, 1)
  // The store's figures are fetched now, while Redis answers: no refresh fails in the count below.
  t.ok(await eventually(() => app.cache.stats().store.entries === 1))
  const onRedis = await tiered.cache.list({ tag: 'items', limit: 1 }) as EntryPage
  t.equal(onRedis.source, 'redis')

  await redis.kill()
  await eventually(() => direct.status !== 'ready' && forTiered.status !== 'ready')
  const errors = app.cache.stats().total.errors
  t.equal(await app.cache.list({ tag: 'a' }), undefined)
  t.equal(app.cache.stats().total.errors, errors + 1, 'counted')
  t.ok(lines.some((line) => (line.responseCache as { operation?: string } | undefined)?.operation === 'list'), 'logged')

  await tiered.inject('/items/2')
  const fromMemory = await tiered.cache.list({ tag: 'items' }) as EntryPage
  t.equal(fromMemory.source, 'memory', 'says which tier it listed')
  t.same(paths(fromMemory.entries), ['GET /items/0', 'GET /items/1', 'GET /items/2'], 'the entries this instance computed')
  t.equal(await tiered.cache.list({ tag: 'items', cursor: onRedis.cursor }), undefined, 'a Redis listing cannot go on from memory')
  const first = await tiered.cache.list({ tag: 'items', limit: 2 }) as EntryPage
  const second = await tiered.cache.list({ tag: 'items', limit: 2, cursor: first.cursor }) as EntryPage
  t.same(paths([...first.entries, ...second.entries]), ['GET /items/0', 'GET /items/1', 'GET /items/2'], 'a memory listing goes on in memory')
  t.equal(second.cursor, undefined)
  t.same(await tiered.cache.list({ route: 'GET /items/:id', cursor: first.cursor }), { entries: [], cursor: undefined, source: 'tiered' }, 'another listing\'s cursor: an empty last page')

  redis = await spawnRedis(port)
  await eventually(() => direct.status === 'ready')
  t.same(await app.cache.list({ tag: 'a' }), { entries: [], cursor: undefined, source: 'redis' }, 'back: a new, empty Redis')
})

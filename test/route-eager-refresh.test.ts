import fastifyCompress from '@fastify/compress'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { startRedis } from './helpers/redis.js'
import { CATALOGUE, serve } from './compat/helpers.js'

// Route eager refresh (issue 29 point 1, `config.cache.eagerRefresh`): a hit past the route's share
// of its entry's freshness is answered as a HIT and starts one background refresh (the
// stale-while-revalidate one, one per key across instances), so a key in use never goes stale.
// Entries age for real, as in stale.test.ts: short TTLs, and `until` the share has passed, with
// seconds of freshness left for the requests that follow.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`

type Kind = 'memory' | 'redis' | 'tiered'
const KINDS: Kind[] = ['memory', 'redis', 'tiered']
let namespaces = 0

/**
 * The plugin options of a store, with a Redis client as the README makes it (`new Redis(url)`, still
 * connecting when the plugin is registered). A generous timeout: these tests are about what is
 * refreshed, not about a slow write on a loaded machine.
 */
function storeOptions (t: Test, kind: Kind, namespace = `eager${++namespaces}`): ResponseCacheOptions {
  if (kind === 'memory') return { store: 'memory' }
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  return { store: kind, redis, namespace, timeout: 2000 }
}

for (const kind of KINDS) {
  t.test(`${kind}: a hit past eagerRefresh of the ttl is a HIT and refreshes the entry once in the background`, async (t) => {
    const app = await cachedApp(t, storeOptions(t, kind))
    const runs = counter()
    const refreshing = deferred()
    app.get('/rates', { config: { cache: { ttl: 4, eagerRefresh: 0.5 } } }, async () => {
      const run = runs.next()
      if (run === 2) await refreshing.promise
      return { run }
    })
    t.equal((await app.inject('/rates')).headers['x-cache'], 'MISS')
    const stored = Date.now()
    t.ok(await eventually(() => app.cache.stats().total.stores === 1), 'stored')
    const early = await app.inject('/rates')
    t.same([early.headers['x-cache'], early.json()], ['HIT', { run: 1 }], 'a hit before the share is a plain hit')
    await until(stored, 2000)
    t.equal(runs.runs, 1, 'a hit before half the ttl started no refresh')

    const hits = await Promise.all(Array.from({ length: 10 }, async () => await app.inject('/rates')))
    for (const hit of hits) {
      t.same([hit.headers['x-cache'], hit.json()], ['HIT', { run: 1 }], 'past the share: the entry, as a HIT')
      t.match(hit.headers['cache-status'], /^fastify-response-cache;hit;ttl=[0-9]+$/, 'Cache-Status: a hit with freshness left')
    }
    t.ok(await eventually(() => runs.runs === 2), 'one refresh runs the handler')
    refreshing.resolve()
    t.ok(await eventually(() => app.cache.stats().total.stores === 2), 'the refresh stored a new entry')
    const refreshed = await app.inject('/rates')
    t.same([refreshed.headers['x-cache'], refreshed.json()], ['HIT', { run: 2 }], 'the refreshed entry, fresh again')
    t.equal(Number(refreshed.headers.age), 0)
    t.equal(runs.runs, 2, 'ten hits past the share, one refresh')
    const stats = app.cache.stats().routes['GET /rates']
    t.match(stats, { hits: 12, stale: 0, misses: 2 }, 'the hits are hits; the refresh counts as a miss, as a stale-while-revalidate one')
  })

  t.test(`${kind}: the refresh replays the request: the same tenant and vary headers, no other entry`, async (t) => {
    const app = await cachedApp(t, { ...storeOptions(t, kind), tenant: (request) => request.headers['x-tenant'] as string | undefined })
    const runs = counter()
    app.get('/page', { config: { cache: { ttl: 4, eagerRefresh: 0.5, vary: ['accept-language'] } } }, async (request) => ({
      tenant: request.headers['x-tenant'], lang: request.headers['accept-language'], run: runs.next()
    }))
    const acme = { 'x-tenant': 'acme', 'accept-language': 'fr' }
    const globex = { 'x-tenant': 'globex', 'accept-language': 'fr' }
    await app.inject({ url: '/page', headers: acme })
    await app.inject({ url: '/page', headers: globex })
    const stored = Date.now()
    t.ok(await eventually(() => app.cache.stats().total.stores === 2), 'both entries stored')
    await until(stored, 2000)
    t.match((await app.inject({ url: '/page', headers: acme })).json(), { tenant: 'acme', run: 1 })
    t.ok(await eventually(() => app.cache.stats().total.stores === 3), 'the refresh stored an entry')
    const refreshed = await app.inject({ url: '/page', headers: acme })
    t.same([refreshed.headers['x-cache'], refreshed.json()], ['HIT', { tenant: 'acme', lang: 'fr', run: 3 }], "the tenant's own entry, refreshed with its own headers")
    const other = await app.inject({ url: '/page', headers: globex })
    t.same([other.headers['x-cache'], other.json()], ['HIT', { tenant: 'globex', lang: 'fr', run: 2 }], "another tenant's entry is not touched")
  })

  t.test(`${kind}: a POST keyed by its body (looked up from its raw bytes) is refreshed with the same body`, async (t) => {
    const app = await cachedApp(t, storeOptions(t, kind))
    const runs = counter()
    app.post('/search', { config: { cache: { ttl: 4, eagerRefresh: 0.5 } } }, async (request) => ({ body: request.body, run: runs.next() }))
    const search = { method: 'POST' as const, url: '/search', payload: { q: 'aspirin' } }
    await app.inject(search)
    const stored = Date.now()
    t.ok(await eventually(async () => (await app.inject(search)).headers['x-cache'] === 'HIT'), 'stored, and answered from its raw bytes')
    await until(stored, 2000)
    t.same((await app.inject(search)).json(), { body: { q: 'aspirin' }, run: 1 })
    t.ok(await eventually(() => app.cache.stats().total.stores === 2), 'the refresh stored an entry')
    const refreshed = await app.inject(search)
    t.same([refreshed.headers['x-cache'], refreshed.json()], ['HIT', { body: { q: 'aspirin' }, run: 2 }], 'the same body replayed, under the same key')
    t.equal(app.cache.stats().routes['POST /search'].lookupStage, 'preParsing', 'looked up from the raw bytes')
  })

  t.test(`${kind}: the plugin's eagerRefresh is the routes' default; a route's false turns it off`, async (t) => {
    const app = await cachedApp(t, { ...storeOptions(t, kind), eagerRefresh: 0.5 })
    const runs = { on: counter(), off: counter() }
    app.get('/on', { config: { cache: { ttl: 4 } } }, async () => ({ run: runs.on.next() }))
    app.get('/off', { config: { cache: { ttl: 4, eagerRefresh: false } } }, async () => ({ run: runs.off.next() }))
    await app.inject('/on')
    await app.inject('/off')
    const stored = Date.now()
    t.ok(await eventually(() => app.cache.stats().total.stores === 2), 'both stored')
    await until(stored, 2000)
    t.equal((await app.inject('/off')).headers['x-cache'], 'HIT')
    t.equal((await app.inject('/on')).headers['x-cache'], 'HIT')
    t.ok(await eventually(() => app.cache.stats().total.stores === 3), 'the route of the default refreshed')
    t.equal(runs.on.runs, 2)
    t.equal(runs.off.runs, 1, 'the route that turned it off did not')
  })
}

for (const kind of ['redis', 'tiered'] as const) {
  t.test(`${kind}: three instances, hits past 80% on each: one refresh across them, never a MISS`, async (t) => {
    const runs = counter()
    const refreshing = deferred()
    const logs = logCapture()
    const namespace = `eager-three-${kind}`
    const apps: FastifyInstance[] = []
    for (let i = 0; i < 3; i++) {
      const app = await cachedApp(t, storeOptions(t, kind, namespace), { logger: logs.logger })
      app.get('/quotes/:symbol', { config: { cache: { ttl: 10, eagerRefresh: 0.8 } } }, async () => {
        const run = runs.next()
        if (run > 1) await refreshing.promise
        return { run }
      })
      await app.ready()
      apps.push(app)
    }
    const [a, b] = apps
    t.equal((await a.inject('/quotes/ACME')).headers['x-cache'], 'MISS')
    const stored = Date.now()
    t.ok(await eventually(async () => (await b.inject('/quotes/ACME')).headers['x-cache'] === 'HIT'), 'stored in Redis')
    await until(stored, 8000)
    const answers = await Promise.all(apps.flatMap((app) => Array.from({ length: 10 }, async () => await app.inject('/quotes/ACME'))))
    for (const answer of answers) t.same([answer.headers['x-cache'], answer.json()], ['HIT', { run: 1 }])
    const leftToAnother = (): number => logs.lines.filter((line) => line.msg === 'response cache refresh left to another instance').length
    t.ok(await eventually(() => leftToAnother() === 2), 'two instances left the refresh to the one that took the lock')
    t.equal(runs.runs, 2, 'thirty hits past 80% on three instances, one refresh')
    refreshing.resolve()
    for (const app of apps) {
      t.ok(await eventually(async () => (await app.inject('/quotes/ACME')).json().run === 2), 'the refreshed entry reaches every instance')
    }
    const after = await Promise.all(apps.map(async (app) => await app.inject('/quotes/ACME')))
    for (const answer of after) t.same([answer.headers['x-cache'], answer.json()], ['HIT', { run: 2 }])
    t.equal(runs.runs, 2, 'the handler ran once for the refresh')
    const misses = apps.reduce((sum, app) => sum + app.cache.stats().routes['GET /quotes/:symbol'].misses, 0)
    t.equal(misses, 2, 'the first request and the refresh: no client saw a MISS past the first')
  })
}

t.test("a browser's request behind @fastify/compress, as the README registers it: HIT, its encoding, refreshed once", async (t) => {
  const runs = counter()
  const refreshing = deferred()
  const app = Fastify()
  await app.register(fastifyCompress)
  await app.register(responseCache, { ...storeOptions(t, 'tiered'), ttl: 4, eagerRefresh: 0.5 })
  app.get('/catalogue', { config: { cache: true } }, async () => {
    const run = runs.next()
    if (run === 2) await refreshing.promise
    return { ...CATALOGUE, run }
  })
  const client = await serve(t, app)
  const browser = { origin: 'https://shop.example', 'accept-encoding': 'gzip, br' }
  const miss = await client('/catalogue', { headers: browser })
  t.equal(miss.cache, 'MISS')
  const stored = Date.now()
  t.ok(await eventually(async () => (await client('/catalogue', { headers: browser })).cache === 'HIT'), 'stored')
  await until(stored, 2000)
  const answers = await Promise.all(Array.from({ length: 5 }, async () => await client('/catalogue', { headers: browser })))
  for (const answer of answers) {
    t.equal(answer.cache, 'HIT')
    t.equal(answer.headers['content-encoding'], 'br', 'the encoding the browser prefers')
    t.equal(JSON.parse(answer.body).run, 1)
  }
  refreshing.resolve()
  t.ok(await eventually(async () => {
    const answer = await client('/catalogue', { headers: browser })
    return answer.cache === 'HIT' && JSON.parse(answer.body).run === 2
  }), 'the refreshed entry is served')
  const refreshed = await client('/catalogue', { headers: browser })
  t.equal(refreshed.headers['content-encoding'], 'br')
  t.same(JSON.parse(refreshed.body), { ...CATALOGUE, run: 2 }, 'decodes to the refreshed body')
  const gzip = await client('/catalogue', { headers: { 'accept-encoding': 'gzip' } })
  t.same([gzip.cache, gzip.headers['content-encoding'], JSON.parse(gzip.body).run], ['HIT', 'gzip', 2], 'each encoding of the refreshed entry')
  t.equal(runs.runs, 2)
})

for (const stage of ['onRequest', 'preHandler'] as const) {
  t.test(`an ${stage} guard: the refresh goes through it with the request's own credentials, as a stale one does`, async (t) => {
    // One-time tokens: a request's own token is spent by the time its refresh replays it.
    const tokens = new Set(['t1', 't2', 't3'])
    const guarded: Array<string | undefined> = []
    const guard = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      const token = request.headers['x-token'] as string | undefined
      guarded.push(token)
      if (token !== undefined && tokens.delete(token)) return undefined
      return await reply.code(401).send({ error: 'unauthorized' })
    }
    const app = await cachedApp(t, storeOptions(t, 'memory'))
    const runs = counter()
    app.get('/report', { [stage]: guard, config: { cache: { ttl: 4, eagerRefresh: 0.5 } } }, async () => ({ run: runs.next() }))
    t.equal((await app.inject({ url: '/report', headers: { 'x-token': 't1' } })).headers['x-cache'], 'MISS')
    const stored = Date.now()
    await until(stored, 2000)
    const refused = await app.inject({ url: '/report', headers: { 'x-token': 't1' } })
    t.equal(refused.statusCode, 401, 'a spent token is refused before the lookup: no entry, no refresh')
    const hit = await app.inject({ url: '/report', headers: { 'x-token': 't2' } })
    t.same([hit.statusCode, hit.headers['x-cache'], hit.json()], [200, 'HIT', { run: 1 }])
    t.ok(await eventually(() => guarded.length === 4), 'the refresh ran the guard')
    t.same(guarded, ['t1', 't1', 't2', 't2'], "with the request's own token, spent by then")
    t.equal(runs.runs, 1, 'the guard refused the refresh: the handler did not run')
    const still = await app.inject({ url: '/report', headers: { 'x-token': 't3' } })
    t.same([still.headers['x-cache'], still.json()], ['HIT', { run: 1 }], 'the refused refresh replaced nothing')
  })
}

for (const kind of KINDS) {
  t.test(`${kind}, ttl 'origin': the share is of the response's own freshness lifetime (max-age, less the age it came with)`, async (t) => {
    const app = await cachedApp(t, { ...storeOptions(t, kind), ttl: 'origin', eagerRefresh: 0.8 })
    const runs = counter()
    const conditions: Array<string | undefined> = []
    app.get('/feed', { config: { cache: true } }, async (request, reply) => {
      runs.next()
      conditions.push(request.headers['if-none-match'])
      // max-age=10 that arrives 7 s old: fresh 3 s here, and due its refresh at an age of 8, 1 s on.
      reply.header('cache-control', 'public, max-age=10').header('etag', '"v1"')
      if (runs.runs === 1) reply.header('age', '7')
      if (request.headers['if-none-match'] === '"v1"') return await reply.code(304).send()
      return { items: ['a', 'b'] }
    })
    t.equal((await app.inject('/feed')).headers['x-cache'], 'MISS')
    const stored = Date.now()
    t.ok(await eventually(() => app.cache.stats().total.stores === 1), 'stored')
    await until(stored, 1000)
    const hit = await app.inject('/feed')
    t.same([hit.headers['x-cache'], hit.json()], ['HIT', { items: ['a', 'b'] }], 'still fresh: a HIT')
    t.ok(Number(hit.headers.age) >= 8, 'the age it arrived with counts')
    t.ok(await eventually(() => runs.runs === 2), 'past 80% of max-age: one refresh (not at 80% of the 3 s left)')
    t.same(conditions, [undefined, '"v1"'], "the refresh revalidates the entry with the origin's validator")
    t.ok(await eventually(async () => Number((await app.inject('/feed')).headers.age) <= 1), 'the revalidated entry, fresh for max-age=10 again')
    const after = await app.inject('/feed')
    t.same([after.headers['x-cache'], after.json()], ['HIT', { items: ['a', 'b'] }])
    t.equal(runs.runs, 2)
  })
}

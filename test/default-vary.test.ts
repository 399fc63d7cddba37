// The default mode (a number `ttl`) with a response `Vary` the route does not key: each variant is
// stored beside the others, as in origin mode (test/origin-vary.test.ts), through real requests on
// the memory and Redis stores; and @fastify/cors, whose `Vary: Origin` made such routes uncacheable.
import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import type { RouteCacheOptions } from '../lib/index.js'
import { VARIANT_MARK } from '../lib/key.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'

type Headers = Record<string, string>
type Runs = ReturnType<typeof counter>

/** A page the app makes per device, saying so in its Vary; the route keys nothing but the URL. */
function page (app: FastifyInstance, runs: Runs, cache: RouteCacheOptions = {}, url = '/page'): void {
  app.get(url, { config: { cache: { ttl: 60, ...cache } } }, async (request, reply) => {
    reply.header('vary', 'X-Device')
    return { device: request.headers['x-device'] ?? null, run: runs.next() }
  })
}

const get = async (app: FastifyInstance, headers: Headers = {}, url = '/page', method: 'GET' | 'HEAD' = 'GET'): Promise<{ cache: unknown, body: { device: unknown, run: number } | undefined }> => {
  const response = await app.inject({ method, url, headers })
  return { cache: response.headers['x-cache'], body: method === 'HEAD' ? undefined : response.json() }
}
const phone = { 'x-device': 'phone' }
const desktop = { 'x-device': 'desktop' }

const kinds = await storeKinds(t)

for (const [kind, options] of kinds) {
  t.test(`${kind}: each variant is stored and served to its own requests, HEAD included`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    page(app, runs)
    t.same(await get(app, phone), { cache: 'MISS', body: { device: 'phone', run: 1 } })
    t.same(await get(app, desktop), { cache: 'MISS', body: { device: 'desktop', run: 2 } })
    t.same(await get(app), { cache: 'MISS', body: { device: null, run: 3 } }, 'no X-Device is a variant of its own')
    t.same(await get(app, phone), { cache: 'HIT', body: { device: 'phone', run: 1 } })
    t.same(await get(app, desktop), { cache: 'HIT', body: { device: 'desktop', run: 2 } })
    t.same(await get(app), { cache: 'HIT', body: { device: null, run: 3 } })
    t.equal((await get(app, phone, '/page', 'HEAD')).cache, 'HIT', 'HEAD follows the marker to its variant')
    t.equal((await get(app, { 'x-device': 'tablet' }, '/page', 'HEAD')).cache, 'MISS')
    t.equal((await get(app, { 'x-device': 'tablet' }, '/page', 'HEAD')).cache, 'MISS', 'and stores none')
    t.equal(runs.runs, 5)
    const listed = await app.cache.list({ route: 'GET /page' })
    t.same(listed?.entries.map((entry) => entry.vary), ['X-Device', 'X-Device', 'X-Device'], 'three variants, the marker not listed')
  })

  t.test(`${kind}: concurrent misses wait for the first; each is handed its answer only if its own headers select it`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    const leading = deferred()
    const release = deferred()
    let arrived = 0
    app.addHook('onRequest', async () => { arrived++ })
    app.get('/page', { config: { cache: { ttl: 60 } } }, async (request, reply) => {
      const run = runs.next()
      if (run === 1) {
        leading.resolve()
        await release.promise
      }
      reply.header('vary', 'x-device')
      return { device: request.headers['x-device'] ?? null, run }
    })
    const leader = get(app, phone)
    await leading.promise
    const waiting = [get(app, phone), get(app, desktop), get(app, desktop), get(app)]
    t.ok(await eventually(() => arrived === 5))
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve))
    release.resolve()
    t.same(await leader, { cache: 'MISS', body: { device: 'phone', run: 1 } })
    const [samePhone, desktop1, desktop2, none] = await Promise.all(waiting)
    t.same(samePhone, { cache: 'HIT', body: { device: 'phone', run: 1 } }, 'the same device: answered from the leader')
    t.same([desktop1.body?.device, desktop2.body?.device], ['desktop', 'desktop'], 'another one: never the leader\'s variant')
    t.equal(desktop1.body?.run, desktop2.body?.run, 'the two desktop requests ran the handler once between them')
    t.equal(none.body?.device, null)
    t.equal(runs.runs, 3)
  })

  t.test(`${kind}: invalidation by tag, route, tenant or a write to the path drops every variant and the marker`, async (t) => {
    const app = await cachedApp(t, { ...options(), tenant: (request) => request.headers['x-tenant'] as string | undefined })
    const runs = counter()
    page(app, runs, { tags: ['pages'] })
    app.put('/page', async () => 'written')
    const devices = [phone, desktop, {}].map((headers) => ({ ...headers, 'x-tenant': 'a' }))
    for (const invalidate of [
      async () => await app.cache.invalidate({ tags: ['pages'], tenant: 'a' }),
      async () => await app.cache.invalidate({ route: '/page' }),
      async () => await app.cache.invalidate({ tenant: 'a' }),
      async () => await app.inject({ method: 'PUT', url: '/page', headers: { 'x-tenant': 'a' } })
    ]) {
      for (const headers of devices) await get(app, headers)
      for (const headers of devices) t.equal((await get(app, headers)).cache, 'HIT')
      await invalidate()
      for (const headers of devices) t.equal((await get(app, headers)).cache, 'MISS', 'every variant is gone')
      await app.cache.invalidate({ route: '/page' })
    }
    if (kind === 'memory') t.equal(app.cache.stats().store.entries, 0, 'the marker went with them')
  })

  t.test(`${kind}: POST keyed by its body, looked up by its raw bytes, reads its own variant`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.post('/search', { config: { cache: { ttl: 60 } } }, async (request, reply) => {
      reply.header('vary', 'x-device')
      return { device: request.headers['x-device'], q: (request.body as { q: string }).q, run: runs.next() }
    })
    const search = async (headers: Headers, payload = '{"q":"tea"}'): Promise<{ cache: unknown, body: unknown }> => {
      const response = await app.inject({ method: 'POST', url: '/search', headers: { 'content-type': 'application/json', ...headers }, payload })
      return { cache: response.headers['x-cache'], body: response.json() }
    }
    t.same(await search(phone), { cache: 'MISS', body: { device: 'phone', q: 'tea', run: 1 } })
    t.same(await search(phone), { cache: 'HIT', body: { device: 'phone', q: 'tea', run: 1 } })
    t.same(await search(desktop), { cache: 'MISS', body: { device: 'desktop', q: 'tea', run: 2 } }, 'the same bytes from another device')
    t.same(await search(desktop), { cache: 'HIT', body: { device: 'desktop', q: 'tea', run: 2 } })
    // Other bytes for the same body, first seen by a request that reads a variant: the bytes name
    // the resource, never that variant.
    const spaced = '{ "q": "tea" }'
    t.same(await search({ 'x-device': 'tablet' }, spaced), { cache: 'MISS', body: { device: 'tablet', q: 'tea', run: 3 } })
    t.ok(await eventually(() => app.cache.stats().routes['POST /search'].stores === 3))
    t.same(await search(phone, spaced), { cache: 'HIT', body: { device: 'phone', q: 'tea', run: 1 } })
    t.same(await search(desktop, spaced), { cache: 'HIT', body: { device: 'desktop', q: 'tea', run: 2 } })
    // And bytes first seen by a request its variant answers.
    const tabbed = '{\t"q":"tea"}'
    t.same(await search(phone, tabbed), { cache: 'HIT', body: { device: 'phone', q: 'tea', run: 1 } })
    t.same(await search(desktop, tabbed), { cache: 'HIT', body: { device: 'desktop', q: 'tea', run: 2 } })
  })

  t.test(`${kind}: a stale variant is served while its own request refreshes it, and stands in for a failure`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    let failing = false
    app.get('/page', { config: { cache: { ttl: 1, staleWhileRevalidate: 30 } } }, async (request, reply) => {
      reply.header('vary', 'x-device')
      return { device: request.headers['x-device'] ?? null, run: runs.next() }
    })
    app.get('/flaky', { config: { cache: { ttl: 1, staleIfError: 30 } } }, async (request, reply) => {
      if (failing) return await reply.code(503).send({ device: 'none', run: 0 })
      reply.header('vary', 'x-device')
      return { device: request.headers['x-device'] ?? null, run: runs.next() }
    })
    await get(app, phone)
    await get(app, desktop)
    await get(app, phone, '/flaky')
    await get(app, desktop, '/flaky')
    const stored = Date.now()
    await until(stored, 1000)
    t.same(await get(app, phone), { cache: 'STALE', body: { device: 'phone', run: 1 } })
    t.ok(await eventually(async () => (await get(app, phone)).body?.run === 5), 'refreshed with its own X-Device')
    t.same(await get(app, phone), { cache: 'HIT', body: { device: 'phone', run: 5 } })
    t.same((await get(app, desktop)).body, { device: 'desktop', run: 2 }, 'the other variant is its own')
    failing = true
    t.same(await get(app, desktop, '/flaky'), { cache: 'STALE', body: { device: 'desktop', run: 4 } })
    t.same(await get(app, phone, '/flaky'), { cache: 'STALE', body: { device: 'phone', run: 3 } })
  })
}

t.test('redis: a variant and its marker are written by one script call', async (t) => {
  const [, [, redisOptions]] = kinds
  const shared = redisOptions()
  const redis = shared.redis as Redis
  const monitor = await redis.monitor()
  t.teardown(async () => { await monitor.disconnect() })
  const calls: string[][] = []
  monitor.on('monitor', (_time: string, args: string[]) => { if (/^evalsha$/i.test(args[0])) calls.push(args) })
  const app = await cachedApp(t, shared)
  page(app, counter())
  // The first answer makes the marker; the second adds a variant to it.
  for (const headers of [phone, desktop]) {
    t.equal((await get(app, headers)).cache, 'MISS')
    const both = (args: string[]): boolean => args.some((variant) => variant.includes(VARIANT_MARK) && args.includes(variant.slice(0, variant.indexOf(VARIANT_MARK))))
    t.ok(await eventually(() => calls.some(both)), `${headers['x-device']}: the variant's key and its resource's in one call`)
    calls.length = 0
  }
  t.equal((await get(app, desktop)).cache, 'HIT')
})

t.test('redis: a process waiting on another\'s lock is handed the marker and reads its own variant', async (t) => {
  const [, [, redisOptions]] = kinds
  const shared = redisOptions()
  const runs = counter()
  const leading = deferred()
  const release = deferred()
  const apps: FastifyInstance[] = []
  for (const name of ['a', 'b']) {
    const app = await cachedApp(t, shared)
    app.get('/page', { config: { cache: { ttl: 60 } } }, async (request, reply) => {
      const run = runs.next()
      if (run === 1) {
        leading.resolve()
        await release.promise
      }
      reply.header('vary', 'x-device')
      return { device: request.headers['x-device'] ?? null, by: name, run }
    })
    apps.push(app)
  }
  const [a, b] = apps
  const leader = a.inject({ url: '/page', headers: phone })
  await leading.promise
  // b's requests find a's lock, wait for what a stores and look for it every 25 ms.
  const waiting = [b.inject({ url: '/page', headers: desktop }), b.inject({ url: '/page', headers: phone })]
  await new Promise((resolve) => setTimeout(resolve, 100))
  release.resolve()
  t.same((await leader).json(), { device: 'phone', by: 'a', run: 1 })
  const [second, samePhone] = await Promise.all(waiting)
  t.same(second.json(), { device: 'desktop', by: 'b', run: 2 }, 'not a\'s phone answer')
  t.same([samePhone.headers['x-cache'], samePhone.json()], ['HIT', { device: 'phone', by: 'a', run: 1 }])
  t.equal(runs.runs, 2)
})

t.test('@fastify/cors over real sockets: a cached GET is cached per Origin, with its own allow-origin', async (t) => {
  const browser = {
    accept: 'application/json, text/plain, */*',
    'accept-encoding': 'gzip, deflate, br, zstd',
    'accept-language': 'en-GB,en;q=0.9',
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    'sec-fetch-mode': 'cors',
    'sec-fetch-site': 'cross-site'
  }
  const a = 'https://a.example'
  const b = 'https://b.example'
  const origins: Array<[string, true | string[]]> = [['reflect', true], ['a list', [a, b]]]
  for (const [name, origin] of origins) {
    t.test(`origin: ${name}`, async (t) => {
      const { lines, logger } = logCapture()
      const app = await cachedApp(t, {}, { logger })
      // As @fastify/cors's README registers it.
      await app.register(cors, { origin })
      const runs = counter()
      app.get('/items', { config: { cache: { ttl: 60 } } }, async () => ({ items: [1, 2], run: runs.next() }))
      await app.listen({ port: 0, host: '127.0.0.1' })
      const { port } = app.server.address() as { port: number }
      const fetchItems = async (from?: string): Promise<{ cache: unknown, allow: unknown, vary: unknown, run: number }> => {
        const headers: Headers = from === undefined ? browser : { ...browser, origin: from, referer: from + '/' }
        const response = await request(`http://127.0.0.1:${port}/items`, { headers })
        const body = await response.body.json() as { run: number }
        return { cache: response.headers['x-cache'], allow: response.headers['access-control-allow-origin'], vary: response.headers.vary, run: body.run }
      }
      t.same(await fetchItems(a), { cache: 'MISS', allow: a, vary: 'Origin', run: 1 })
      t.same(await fetchItems(b), { cache: 'MISS', allow: b, vary: 'Origin', run: 2 }, 'never a\'s answer')
      t.same(await fetchItems(), { cache: 'MISS', allow: undefined, vary: 'Origin', run: 3 }, 'no Origin: a variant of its own')
      for (let round = 0; round < 2; round++) {
        t.same(await fetchItems(a), { cache: 'HIT', allow: a, vary: 'Origin', run: 1 })
        t.same(await fetchItems(b), { cache: 'HIT', allow: b, vary: 'Origin', run: 2 })
        t.same(await fetchItems(), { cache: 'HIT', allow: undefined, vary: 'Origin', run: 3 })
      }
      if (Array.isArray(origin)) {
        const c = 'https://c.example'
        t.same(await fetchItems(c), { cache: 'MISS', allow: undefined, vary: 'Origin', run: 4 }, 'an origin not listed: no allow-origin')
        t.same(await fetchItems(c), { cache: 'HIT', allow: undefined, vary: 'Origin', run: 4 })
        t.same(await fetchItems(a), { cache: 'HIT', allow: a, vary: 'Origin', run: 1 })
      }
      t.same(lines.filter((line) => line.level as number >= 40), [], 'nothing to warn about')
    })
  }
})

// ttl: 'origin' with a response `Vary` (RFC 9111 section 4.1): each variant of a resource stored
// under a key of its own, and served only to the requests whose headers select it; through real
// requests on the memory, Redis, tiered and Cluster stores.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { request as httpRequest } from 'node:http'
import { Redis } from 'ioredis'
import t from 'tap'
import responseCache, { MemoryStore, type CacheStore, type ResponseCacheOptions, type RouteCacheOptions } from '../lib/index.js'
import { listValue, VARIANTS_HEADER, VARY_MAX_NAMES, VARY_MAX_VARIANTS } from '../lib/rules/variants.js'
import { VARIANT_MARK } from '../lib/key.js'
import { shardOf } from '../lib/stores/redis-keys.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { deferred, eventually, until } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'

type Headers = Record<string, string | string[]>
type Runs = ReturnType<typeof counter>

/**
 * A page in several languages, as an origin answers it: fresh for a minute, varying on
 * Accept-Language (or `vary`). The body says which language it was made for and which run made it.
 */
function page (app: FastifyInstance, runs: Runs, { vary = 'Accept-Language', url = '/page', cache = {} }: { vary?: string, url?: string, cache?: RouteCacheOptions } = {}): void {
  app.get(url, { config: { cache: { ttl: 'origin', ...cache } } }, async (request, reply) => {
    reply.header('vary', vary).header('cache-control', 'max-age=60')
    return { lang: request.headers['accept-language'] ?? null, run: runs.next() }
  })
}

/**
 * The page's handler, whose first run says it has started (`leading`) and then waits for `release`:
 * other requests meanwhile wait on it. `extra` adds to the body.
 */
function heldFirstRun (runs: Runs, leading: Deferred, release: Deferred, extra: () => Record<string, unknown>) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<Record<string, unknown>> => {
    const run = runs.next()
    if (run === 1) {
      leading.resolve()
      await release.promise
    }
    reply.header('vary', 'accept-language').header('cache-control', 'max-age=60')
    return { lang: request.headers['accept-language'] ?? null, ...extra(), run }
  }
}
type Deferred = ReturnType<typeof deferred<void>>

const get = async (app: FastifyInstance, headers: Headers = {}, url = '/page'): Promise<{ cache: unknown, body: { lang: unknown, run: number } }> => {
  const response = await app.inject({ url, headers })
  return { cache: response.headers['x-cache'], body: response.json() }
}
const en = { 'accept-language': 'en' }
const fr = { 'accept-language': 'fr' }

/** Why responses were not stored, from the debug log. */
const notStored = (lines: Array<Record<string, unknown>>): string[] =>
  lines.filter((line) => line.msg === 'response cache: not stored').map((line) => (line.responseCache as { reason: string }).reason)

const kinds = await storeKinds(t)
const [, [, redisOptions]] = kinds

for (const [kind, options] of kinds) {
  t.test(`${kind}: Accept-Language variants are stored side by side, each served to its own requests`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    page(app, runs)
    t.same(await get(app, en), { cache: 'MISS', body: { lang: 'en', run: 1 } })
    t.same(await get(app, fr), { cache: 'MISS', body: { lang: 'fr', run: 2 } })
    t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', run: 1 } })
    t.same(await get(app, fr), { cache: 'HIT', body: { lang: 'fr', run: 2 } })
    t.same(await get(app), { cache: 'MISS', body: { lang: null, run: 3 } }, 'no Accept-Language is a variant of its own')
    t.same(await get(app), { cache: 'HIT', body: { lang: null, run: 3 } })
    t.same(await get(app, { 'accept-language': '' }), { cache: 'MISS', body: { lang: '', run: 4 } }, 'an empty value is not an absent one (RFC 9111 4.1)')
    t.same(await get(app, { 'accept-language': '' }), { cache: 'HIT', body: { lang: '', run: 4 } })
    t.same(await get(app), { cache: 'HIT', body: { lang: null, run: 3 } })
    t.same(await get(app, { 'accept-language': 'fr, en;q=0.5' }), { cache: 'MISS', body: { lang: 'fr, en;q=0.5', run: 5 } })
    for (const spelled of ['fr,en;q=0.5', 'fr ,en ; q=0.5', 'fr,, en;q=0.5', ['fr', 'en;q=0.5']]) {
      t.same((await get(app, { 'accept-language': spelled })).body, { lang: 'fr, en;q=0.5', run: 5 }, `${JSON.stringify(spelled)}: whitespace, empty elements and field lines are not the value`)
    }
    t.equal((await get(app, { 'accept-language': 'FR, en;q=0.5' })).cache, 'MISS', 'anything else is: the value as sent')
    t.equal(runs.runs, 6)
    t.ok(await eventually(() => app.cache.stats().routes['GET /page'].stores === 6), 'six variants stored')
  })

  t.test(`${kind}: the default mode stores the variants too; Vary: * is stored in neither`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, options(), { logger })
    const runs = counter()
    page(app, runs, { cache: { ttl: 60 } })
    page(app, runs, { url: '/star', vary: '*' })
    t.same(await get(app, en), { cache: 'MISS', body: { lang: 'en', run: 1 } })
    t.same(await get(app, fr), { cache: 'MISS', body: { lang: 'fr', run: 2 } })
    t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', run: 1 } })
    t.same(await get(app, fr), { cache: 'HIT', body: { lang: 'fr', run: 2 } })
    t.equal((await get(app, en, '/star')).cache, 'MISS')
    t.equal((await get(app, en, '/star')).cache, 'MISS', 'Vary: * is not stored in origin mode either')
    t.same(notStored(lines), ['vary-star', 'vary-star'])
  })

  t.test(`${kind}: a response varying only on the route's own vary headers stays one plain entry`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    page(app, runs, { cache: { vary: ['accept-language'] }, vary: 'accept-language, Accept-Language' })
    await get(app, en)
    await get(app, fr)
    t.same(await get(app, fr), { cache: 'HIT', body: { lang: 'fr', run: 2 } })
    const page1 = await app.cache.list({ route: 'GET /page' })
    t.equal(page1?.entries.length, 2)
    t.same(page1?.entries.map((entry) => entry.vary), [undefined, undefined], 'not variants: no marker, no second read')
  })

  t.test(`${kind}: a request waiting on another's miss is handed its answer only if its own headers select it`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    const leading = deferred()
    const release = deferred()
    let arrived = 0
    app.addHook('onRequest', async () => { arrived++ })
    app.get('/page', { config: { cache: { ttl: 'origin' } } }, heldFirstRun(runs, leading, release, () => ({})))
    const leader = get(app, en)
    await leading.promise
    const waiting = [get(app, en), get(app, fr), get(app, fr), get(app)]
    t.ok(await eventually(() => arrived === 5))
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve))
    release.resolve()
    t.same(await leader, { cache: 'MISS', body: { lang: 'en', run: 1 } })
    const [sameLanguage, french, french2, none] = await Promise.all(waiting)
    t.same(sameLanguage, { cache: 'HIT', body: { lang: 'en', run: 1 } }, 'the same Accept-Language: answered from the leader')
    t.same([french.body.lang, french2.body.lang], ['fr', 'fr'], 'another one: never the leader\'s variant')
    t.equal(french.body.run, french2.body.run, 'the two French requests ran the handler once between them')
    t.equal(none.body.lang, null)
    t.equal(runs.runs, 3)
  })

  t.test(`${kind}: HEAD reads the GET request's variant`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    page(app, runs)
    const head = async (headers: Headers): Promise<unknown> => (await app.inject({ method: 'HEAD', url: '/page', headers })).headers['x-cache']
    await get(app, en)
    t.equal(await head(en), 'HIT')
    t.equal(await head(fr), 'MISS', 'no French variant yet')
    t.equal(await head(fr), 'MISS', 'and HEAD stores none')
    await get(app, fr)
    t.equal(await head(fr), 'HIT')
    t.equal(await head({}), 'MISS')
    t.equal(runs.runs, 5)
  })

  t.test(`${kind}: invalidation by route, tag or a write to the path drops every variant, and the marker`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    page(app, runs, { cache: { tags: ['pages'] } })
    app.put('/page', async () => 'written')
    const languages = [en, fr, { 'accept-language': 'de' }]
    const fill = async (): Promise<void> => {
      for (const headers of languages) await get(app, headers)
      for (const headers of languages) t.equal((await get(app, headers)).cache, 'HIT')
    }
    for (const invalidate of [
      async () => await app.cache.invalidate({ route: '/page' }),
      async () => await app.cache.invalidate({ tags: ['pages'] }),
      async () => await app.inject({ method: 'PUT', url: '/page' })
    ]) {
      await fill()
      t.equal((await app.cache.list({ route: 'GET /page' }))?.entries.length, 3)
      await invalidate()
      for (const headers of languages) t.equal((await get(app, headers)).cache, 'MISS', 'every variant is gone')
      t.equal((await app.cache.list({ route: 'GET /page' }))?.entries.length, 3, 'and stored anew')
      await app.cache.invalidate({ route: '/page' })
    }
    if (kind === 'memory') t.equal(app.cache.stats().store.entries, 0, 'the marker went with them')
  })

  t.test(`${kind}: app.cache.list lists the variants, not the marker`, async (t) => {
    const app = await cachedApp(t, options())
    page(app, counter())
    await get(app, en)
    await get(app, fr)
    const listed = await app.cache.list({ route: 'GET /page' })
    t.same(listed?.entries.map(({ path, vary, status }) => ({ path, vary, status })), [
      { path: 'GET /page', vary: 'Accept-Language', status: 200 },
      { path: 'GET /page', vary: 'Accept-Language', status: 200 }
    ])
  })

  t.test(`${kind}: at most ${VARY_MAX_VARIANTS} live variants of one resource`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, { ...options(), honorClientNoCache: true }, { logger })
    const runs = counter()
    page(app, runs, { vary: 'x-variant' })
    const variant = (n: number, more: Headers = {}): Headers => ({ 'x-variant': String(n), ...more })
    for (let n = 1; n <= VARY_MAX_VARIANTS; n++) await get(app, variant(n))
    for (let n = 1; n <= VARY_MAX_VARIANTS; n++) t.equal((await get(app, variant(n))).cache, 'HIT', `variant ${n}`)
    const over = VARY_MAX_VARIANTS + 1
    t.equal((await get(app, variant(over))).cache, 'MISS')
    t.ok(await eventually(() => notStored(lines).includes('vary-variants')), 'one more is not stored')
    t.equal((await get(app, variant(over))).cache, 'MISS')
    const refreshed = await get(app, variant(1, { 'cache-control': 'no-cache' }))
    t.ok(await eventually(() => app.cache.stats().routes['GET /page'].stores === VARY_MAX_VARIANTS + 1), 'a variant already counted is replaced')
    t.same(await get(app, variant(1)), { cache: 'HIT', body: refreshed.body })
    t.equal((await get(app, variant(2))).cache, 'HIT')
  })

  t.test(`${kind}: variants stored at the same moment are all counted`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, options(), { logger })
    page(app, counter(), { vary: 'x-variant' })
    const variants = Array.from({ length: VARY_MAX_VARIANTS }, (_, n) => ({ 'x-variant': String(n) }))
    await Promise.all(variants.map(async (headers) => await get(app, headers)))
    t.ok(await eventually(() => app.cache.stats().routes['GET /page'].stores === VARY_MAX_VARIANTS))
    const over = { 'x-variant': 'over' }
    await get(app, over)
    t.ok(await eventually(() => notStored(lines).includes('vary-variants')), 'the list the marker holds has every one of them')
    t.equal((await get(app, over)).cache, 'MISS')
  })

  t.test(`${kind}: Vary names request headers the route does not key, at most ${VARY_MAX_NAMES}`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, options(), { logger })
    const runs = counter()
    const names = Array.from({ length: VARY_MAX_NAMES + 1 }, (_, i) => `x-${String.fromCharCode(97 + i)}`)
    page(app, runs, { url: '/too-many', vary: names.join(', ') })
    page(app, runs, { url: '/eight', vary: names.slice(1).join(', ') })
    page(app, runs, { url: '/keyed', vary: names.join(', '), cache: { vary: ['x-a'] } })
    page(app, runs, { url: '/invalid', vary: 'x-a, x b' })
    for (const url of ['/too-many', '/eight', '/keyed', '/invalid']) await get(app, en, url)
    t.equal((await get(app, en, '/too-many')).cache, 'MISS')
    t.equal((await get(app, en, '/eight')).cache, 'HIT')
    t.equal((await get(app, en, '/keyed')).cache, 'HIT', 'the route\'s own vary headers do not count')
    t.equal((await get(app, en, '/invalid')).cache, 'MISS', 'a name that is not a token')
    t.same(notStored(lines), ['vary-too-many', 'vary-invalid', 'vary-too-many', 'vary-invalid'])
  })

  t.test(`${kind}: a request that followed the marker to an answer that no longer varies replaces the marker`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    let vary: string | undefined = 'accept-language'
    app.get('/page', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      if (vary !== undefined) reply.header('vary', vary)
      reply.header('cache-control', 'max-age=60')
      return { lang: request.headers['accept-language'] ?? null, run: runs.next() }
    })
    await get(app, en)
    vary = undefined
    t.same(await get(app, fr), { cache: 'MISS', body: { lang: 'fr', run: 2 } })
    t.same(await get(app, { 'accept-language': 'de' }), { cache: 'HIT', body: { lang: 'fr', run: 2 } }, 'one entry for every language now')
    t.same(await get(app, en), { cache: 'HIT', body: { lang: 'fr', run: 2 } })
    vary = 'accept-language, x-device'
    await app.cache.invalidate({ route: '/page' })
    await get(app, { ...en, 'x-device': 'phone' })
    t.same(await get(app, { ...en, 'x-device': 'phone' }), { cache: 'HIT', body: { lang: 'en', run: 3 } })
    t.equal((await get(app, { ...en, 'x-device': 'desktop' })).cache, 'MISS', 'two headers select it')
  })

  t.test(`${kind}: a request waiting on its variant's key is handed a variant of other headers: it runs the handler`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    const leading = deferred()
    const release = deferred()
    let vary = 'accept-language'
    app.get('/page', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      const run = runs.next()
      if (run === 2) {
        leading.resolve()
        await release.promise
      }
      reply.header('vary', vary).header('cache-control', 'max-age=60')
      return { device: request.headers['x-device'] ?? null, run }
    })
    await get(app, en)
    // The origin now varies on the device too: both requests read the marker, which names only the
    // language, and wait on one key; the answer the first gets is for its device alone.
    vary = 'accept-language, x-device'
    const desktop = get(app, { ...fr, 'x-device': 'desktop' })
    await leading.promise
    const phone = get(app, { ...fr, 'x-device': 'phone' })
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve))
    release.resolve()
    t.same((await desktop).body, { device: 'desktop', run: 2 })
    t.same(await phone, { cache: 'MISS', body: { device: 'phone', run: 3 } })
    t.same(await get(app, { ...fr, 'x-device': 'phone' }), { cache: 'HIT', body: { device: 'phone', run: 3 } })
  })

  t.test(`${kind}: tenants, the route's vary and its key function still key the resource`, async (t) => {
    const app = await cachedApp(t, { ...options(), tenant: (request) => request.headers['x-tenant'] as string | undefined })
    const runs = counter()
    page(app, runs, { cache: { vary: ['x-device'], key: (request) => (request.query as { v?: string }).v } })
    const cases: Headers[] = [
      { ...en, 'x-tenant': 'a' },
      { ...en, 'x-tenant': 'b' },
      { ...en, 'x-tenant': 'a', 'x-device': 'phone' }
    ]
    for (const headers of cases) t.equal((await get(app, headers)).cache, 'MISS')
    for (const headers of cases) t.equal((await get(app, headers)).cache, 'HIT')
    t.equal((await get(app, { ...en, 'x-tenant': 'a' }, '/page?v=2')).cache, 'MISS')
    t.equal(runs.runs, 4)
  })

  t.test(`${kind}: a response varying on cookie or authorization is shared only between requests without them`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, options(), { logger })
    const runs = counter()
    page(app, runs, { url: '/credentials', vary: 'cookie, authorization' })
    page(app, runs, { url: '/cookies-ignored', vary: 'cookie', cache: { ignoreCookies: true } })
    await get(app, {}, '/credentials')
    t.equal((await get(app, {}, '/credentials')).cache, 'HIT')
    t.equal((await get(app, { cookie: 'sid=1' }, '/credentials')).cache, 'BYPASS')
    t.equal((await get(app, { authorization: 'Bearer 1' }, '/credentials')).cache, 'BYPASS')
    await get(app, {}, '/cookies-ignored')
    t.same(await get(app, { cookie: 'sid=1' }, '/cookies-ignored'), { cache: 'MISS', body: { lang: null, run: 5 } }, 'never the answer made without the cookie')
    t.equal((await get(app, { cookie: 'sid=1' }, '/cookies-ignored')).cache, 'MISS', 'nor one made for a cookie')
    t.equal((await get(app, {}, '/cookies-ignored')).cache, 'HIT')
    t.same(notStored(lines), ['vary-credentials', 'vary-credentials'])
  })

  t.test(`${kind}: POST keyed by its body, looked up by its raw bytes, still reads its own variant`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.post('/search', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      reply.header('vary', 'accept-language').header('cache-control', 'max-age=60')
      return { lang: request.headers['accept-language'], q: (request.body as { q: string }).q, run: runs.next() }
    })
    const search = async (headers: Headers, payload = '{"q":"tea"}'): Promise<{ cache: unknown, body: unknown }> => {
      const response = await app.inject({ method: 'POST', url: '/search', headers: { 'content-type': 'application/json', ...headers }, payload })
      return { cache: response.headers['x-cache'], body: response.json() }
    }
    t.same(await search(en), { cache: 'MISS', body: { lang: 'en', q: 'tea', run: 1 } })
    t.same(await search(en), { cache: 'HIT', body: { lang: 'en', q: 'tea', run: 1 } })
    t.same(await search(fr), { cache: 'MISS', body: { lang: 'fr', q: 'tea', run: 2 } }, 'the same bytes in another language')
    t.same(await search(fr), { cache: 'HIT', body: { lang: 'fr', q: 'tea', run: 2 } })
    t.same(await search(en), { cache: 'HIT', body: { lang: 'en', q: 'tea', run: 1 } })
    // Other bytes for the same body are first seen by a request that reads a variant: the bytes name
    // the resource, never that variant.
    const spaced = '{ "q": "tea" }'
    t.same(await search({ 'accept-language': 'de' }, spaced), { cache: 'MISS', body: { lang: 'de', q: 'tea', run: 3 } })
    t.ok(await eventually(() => app.cache.stats().routes['POST /search'].stores === 3), 'its bytes are remembered once it is stored')
    t.same(await search(en, spaced), { cache: 'HIT', body: { lang: 'en', q: 'tea', run: 1 } })
    const tabbed = '{\t"q":"tea"}'
    t.same(await search(fr, tabbed), { cache: 'HIT', body: { lang: 'fr', q: 'tea', run: 2 } })
    t.same(await search(en, tabbed), { cache: 'HIT', body: { lang: 'en', q: 'tea', run: 1 } })
  })
}

t.test('two field lines over a socket select the variant of their combined value', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  page(app, runs)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const send = async (lines: string[]): Promise<{ cache: unknown, body: unknown }> => await new Promise((resolve, reject) => {
    // Node sends an array as one field line per value.
    httpRequest({ port, host: '127.0.0.1', path: '/page', headers: { 'accept-language': lines } }, (response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => { resolve({ cache: response.headers['x-cache'], body: JSON.parse(body) }) })
    }).on('error', reject).end()
  })
  t.same(await send(['de,en;q=0.5']), { cache: 'MISS', body: { lang: 'de,en;q=0.5', run: 1 } })
  t.same(await send(['de', 'en;q=0.5']), { cache: 'HIT', body: { lang: 'de,en;q=0.5', run: 1 } })
})

t.test('list fields lose only their optional whitespace and empty elements', async (t) => {
  const cases: Array<[string, string]> = [
    ['en', 'en'],
    [' en , fr ;  q=0.5 ,', 'en,fr;q=0.5'],
    ['en,\t,fr', 'en,fr'],
    ['text/html; level="a , b ; c", */*', 'text/html;level="a , b ; c",*/*'],
    ['a; x="q\\" , "', 'a;x="q\\" , "'],
    ['en-US x', 'en-US x'],
    ['', '']
  ]
  for (const [value, normalised] of cases) t.equal(listValue(value), normalised, JSON.stringify(value))
})

t.test('a variant lives in the shard of its resource: no request header value picks a slot', async (t) => {
  const primary = 'rc:-:GET:%2Fpage:' + 'a'.repeat(43)
  const shards = new Set<number>()
  for (let i = 0; i < 200; i++) shards.add(shardOf(primary + VARIANT_MARK + String(i)))
  t.same([...shards], [shardOf(primary)])
})

t.test('the marker\'s header name cannot come from a handler either', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, {}, { logger })
  app.get('/reserved', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => {
    reply.header('response-cache variants', 'accept').header('cache-control', 'max-age=60')
    return 'r'
  })
  await app.inject('/reserved')
  t.same(notStored(lines).slice(0, 1), ['reserved-header'])
  t.equal(app.cache.stats().total.stores, 0)
})

t.test('a marker that cannot be read is a miss, and the next answer replaces it', async (t) => {
  const store = new MemoryStore({ maxBytes: 1_000_000 })
  const app = await cachedApp(t, { store })
  const runs = counter()
  page(app, runs)
  await get(app, en)
  const listed = await store.list({ sets: ['g:r:GET /page'], having: [], limit: 10 })
  const marker = listed.entries.find(({ key }) => !key.includes(VARIANT_MARK))
  if (marker === undefined) throw new Error('no marker')
  store.set(marker.key, { ...marker.entry, headers: { [VARIANTS_HEADER]: 'accept language' } }, { ttl: 60, tags: marker.tags })
  // A custom store is written after the response; what was on its way is forgotten a turn later.
  await new Promise((resolve) => setImmediate(resolve))
  t.same(await get(app, en), { cache: 'MISS', body: { lang: 'en', run: 2 } })
  t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', run: 2 } })
  // A marker whose list of variants is not one: the variants are counted afresh.
  store.set(marker.key, { ...marker.entry, body: Buffer.from('not a list') }, { ttl: 60, tags: marker.tags })
  t.same(await get(app, fr), { cache: 'MISS', body: { lang: 'fr', run: 3 } })
  t.ok(await eventually(() => app.cache.stats().routes['GET /page'].stores === 3), 'stored')
  t.same(await get(app, fr), { cache: 'HIT', body: { lang: 'fr', run: 3 } })
  t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', run: 2 } })
})

t.test('a store that fails a variant\'s writes, one at once and one later: counted as an error, nothing else', async (t) => {
  let calls = 0
  // A custom store (see CacheStore) gone bad: writes answer with a failure later, or throw at once.
  const store: CacheStore = {
    name: 'failing',
    get: () => undefined,
    set: (_key, entry) => {
      calls++
      if (entry.headers[VARIANTS_HEADER] !== undefined) throw new Error('marker refused')
      return new Promise((_resolve, reject) => { setImmediate(() => { reject(new Error('variant refused')) }) })
    },
    delete: () => false,
    invalidateTags: () => 0,
    clear: () => {}
  }
  const app = await cachedApp(t, { store })
  const runs = counter()
  page(app, runs)
  t.same(await get(app, en), { cache: 'MISS', body: { lang: 'en', run: 1 } })
  t.ok(await eventually(() => app.cache.stats().routes['GET /page'].errors === 1))
  // The variant's write fails after the marker's threw: an unhandled rejection would end the process here.
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(calls, 2)
  t.equal(app.cache.stats().routes['GET /page'].stores, 0)
  t.same(await get(app, en), { cache: 'MISS', body: { lang: 'en', run: 2 } })
})

t.test('a stale variant is served while its own request is replayed to refresh it', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/page', { config: { cache: { ttl: 'origin', staleWhileRevalidate: 30 } } }, async (request, reply) => {
    reply.header('vary', 'accept-language').header('cache-control', 'max-age=1')
    return { lang: request.headers['accept-language'] ?? null, run: runs.next() }
  })
  await get(app, en)
  await get(app, fr)
  const stored = Date.now()
  await until(stored, 1000)
  t.same(await get(app, en), { cache: 'STALE', body: { lang: 'en', run: 1 } })
  t.ok(await eventually(async () => (await get(app, en)).body.run === 3), 'refreshed with its own Accept-Language')
  t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', run: 3 } })
  t.same((await get(app, fr)).body, { lang: 'fr', run: 2 }, 'the other variant is its own')
})

t.test('a stale variant is revalidated as itself: the 304 renews that variant, and a HEAD answer too', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  let maxAge = 1
  app.get('/page', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
    runs.next()
    const lang = request.headers['accept-language'] ?? 'none'
    const etag = `"${lang}"`
    reply.header('vary', 'accept-language').header('cache-control', `max-age=${maxAge}`).header('etag', etag)
    // HEAD is answered in full: its 200 renews the stored GET answer when their validators agree.
    if (request.method === 'GET' && request.headers['if-none-match'] === etag) return await reply.code(304).send()
    return { lang, at: runs.runs }
  })
  await get(app, en)
  await get(app, fr)
  await get(app, { 'accept-language': 'de' })
  await until(Date.now(), 1000)
  maxAge = 60
  const renewed = await app.inject({ url: '/page', headers: en })
  t.same([renewed.headers['x-cache'], renewed.json()], ['REVALIDATED', { lang: 'en', at: 1 }])
  t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', at: 1 } })
  const french = await app.inject({ url: '/page', headers: fr })
  t.same([french.headers['x-cache'], french.json()], ['REVALIDATED', { lang: 'fr', at: 2 }], 'not the English variant just renewed')
  const head = await app.inject({ method: 'HEAD', url: '/page', headers: { 'accept-language': 'de' } })
  t.equal(head.headers.etag, '"de"')
  t.equal(head.headers['x-cache'], 'MISS')
  t.same(await get(app, { 'accept-language': 'de' }), { cache: 'HIT', body: { lang: 'de', at: 3 } }, 'the HEAD answer renewed the German variant')
  t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', at: 1 } }, 'and only it')
  t.equal(runs.runs, 6)
})

t.test('a 304 that makes a variant vary on too many headers answers the request and is not stored again', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, {}, { logger })
  const runs = counter()
  let vary = 'accept-language'
  app.get('/page', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
    runs.next()
    reply.header('vary', vary).header('cache-control', `max-age=${runs.runs === 1 ? 1 : 60}`).header('etag', '"v1"')
    if (request.headers['if-none-match'] === '"v1"') return await reply.code(304).send()
    return { run: runs.runs }
  })
  await get(app, en)
  await until(Date.now(), 1000)
  vary = Array.from({ length: VARY_MAX_NAMES + 1 }, (_, i) => `x-${i}`).join(', ')
  const revalidated = await app.inject({ url: '/page', headers: en })
  t.same([revalidated.headers['x-cache'], revalidated.json()], ['REVALIDATED', { run: 1 }])
  const notAgain = lines.filter((line) => line.msg === 'response cache: revalidated, not stored again')
  t.same(notAgain.map((line) => (line.responseCache as { reason: string }).reason), ['vary-too-many'])
  t.equal((await app.inject({ url: '/page', headers: en })).headers['x-cache'], 'REVALIDATED', 'the stale variant is still the one stored')
})

t.test('a stale variant\'s background refresh revalidates it as itself', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  let maxAge = 1
  app.get('/page', { config: { cache: { ttl: 'origin', staleWhileRevalidate: 30 } } }, async (request, reply) => {
    runs.next()
    const lang = request.headers['accept-language'] ?? 'none'
    reply.header('vary', 'accept-language').header('cache-control', `max-age=${maxAge}`).header('etag', `"${lang}"`)
    if (request.headers['if-none-match'] === `"${lang}"`) return await reply.code(304).send()
    return { lang, at: runs.runs }
  })
  await get(app, en)
  await get(app, fr)
  await until(Date.now(), 1000)
  maxAge = 60
  t.same(await get(app, en), { cache: 'STALE', body: { lang: 'en', at: 1 } })
  t.ok(await eventually(() => runs.runs === 3), 'the refresh ran')
  t.ok(await eventually(async () => (await get(app, en)).cache === 'HIT'), 'renewed by its 304')
  t.same(await get(app, en), { cache: 'HIT', body: { lang: 'en', at: 1 } })
  t.same(await get(app, fr), { cache: 'STALE', body: { lang: 'fr', at: 2 } }, 'the other variant is still its own, and stale')
})

t.test('memory: a variant that expired frees its place', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/page', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
    const n = Number(request.headers['x-variant'])
    reply.header('vary', 'x-variant').header('cache-control', n === 1 ? 'max-age=1' : 'max-age=60')
    return { n, run: runs.next() }
  })
  for (let n = 1; n <= VARY_MAX_VARIANTS; n++) await get(app, { 'x-variant': String(n) })
  const stored = Date.now()
  const over = { 'x-variant': String(VARY_MAX_VARIANTS + 1) }
  await get(app, over)
  t.equal((await get(app, over)).cache, 'MISS', 'the resource is full')
  await until(stored, 1000)
  await get(app, over)
  t.equal((await get(app, over)).cache, 'HIT', 'once the first variant expired')
})

t.test('redis: a process waiting on another\'s lock is handed the marker and reads its own variant', async (t) => {
  const shared = redisOptions()
  const runs = counter()
  const leading = deferred()
  const release = deferred()
  const apps: FastifyInstance[] = []
  for (const name of ['a', 'b']) {
    const app = await cachedApp(t, shared)
    app.get('/page', { config: { cache: { ttl: 'origin' } } }, heldFirstRun(runs, leading, release, () => ({ by: name })))
    apps.push(app)
  }
  const [a, b] = apps
  const leader = a.inject({ url: '/page', headers: en })
  await leading.promise
  // b's requests find a's lock, wait for what a stores and look for it every 25 ms.
  const waiting = [b.inject({ url: '/page', headers: fr }), b.inject({ url: '/page', headers: en })]
  await new Promise((resolve) => setTimeout(resolve, 100))
  release.resolve()
  t.same((await leader).json(), { lang: 'en', by: 'a', run: 1 })
  const [french, english] = await Promise.all(waiting)
  t.same(french.json(), { lang: 'fr', by: 'b', run: 2 }, 'not a\'s English answer')
  t.same([english.headers['x-cache'], english.json()], ['HIT', { lang: 'en', by: 'a', run: 1 }])
  t.equal(runs.runs, 2)
})

t.test('tiered: variants stored by one instance are served by another, and invalidated on both', async (t) => {
  const { redis, namespace } = redisOptions() as { redis: Redis, namespace: string }
  const runs = counter()
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    // As the README has it: a client of the app's own, store 'tiered'.
    const client = new Redis({ host: redis.options.host, port: redis.options.port })
    t.teardown(() => { client.disconnect() })
    const app = Fastify()
    t.teardown(async () => await app.close())
    await app.register(responseCache, { store: 'tiered', redis: client, namespace } satisfies ResponseCacheOptions)
    page(app, runs)
    await app.ready()
    apps.push(app)
  }
  const [a, b] = apps
  await get(a, en)
  await get(a, fr)
  t.ok(await eventually(async () => (await get(b, en)).cache === 'HIT'))
  t.same(await get(b, fr), { cache: 'HIT', body: { lang: 'fr', run: 2 } })
  t.same(await get(b, fr), { cache: 'HIT', body: { lang: 'fr', run: 2 } }, 'from its memory now')
  await b.cache.invalidate({ route: '/page' })
  t.ok(await eventually(async () => (await get(a, en)).cache === 'MISS'), 'gone from the other instance\'s memory too')
  t.equal((await get(a, fr)).cache, 'MISS')
})

t.test('Cluster: variants share their resource\'s slot, and work there', async (t) => {
  const cluster = await startCluster(t)
  const app = await cachedApp(t, { store: 'redis', redis: cluster, namespace: 'vary', timeout: 2000 })
  const runs = counter()
  page(app, runs)
  const languages = ['en', 'fr', 'de', 'it', 'es', 'nl'].map((lang) => ({ 'accept-language': lang }))
  for (const headers of languages) t.equal((await get(app, headers)).cache, 'MISS')
  for (const headers of languages) t.same(await get(app, headers), { cache: 'HIT', body: { lang: headers['accept-language'], run: languages.indexOf(headers) + 1 } })
  const keys: string[] = []
  for (const node of cluster.nodes('master')) keys.push(...await node.keys('vary:*'))
  const variants = keys.filter((key) => key.includes(VARIANT_MARK))
  t.equal(variants.length, languages.length)
  const marker = variants[0].slice(0, variants[0].indexOf(VARIANT_MARK))
  t.ok(keys.includes(marker), 'the marker, under the resource\'s key')
  const slots = new Set(await Promise.all([marker, ...variants].map(async (key) => await cluster.cluster('KEYSLOT', key))))
  t.equal(slots.size, 1)
  await app.cache.invalidate({ route: '/page' })
  for (const headers of languages) t.equal((await get(app, headers)).cache, 'MISS')
})

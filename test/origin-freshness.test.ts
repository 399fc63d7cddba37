// ttl: 'origin': freshness from the response's own headers (RFC 9111, as a shared cache), through
// real requests on the memory and Redis stores. The rules themselves, case by case, are in
// http-parsing.test.ts; here each kind of response is seen stored or not, fresh or stale, by a client.
import type { FastifyReply } from 'fastify'
import t from 'tap'
import { decodeEntry, encodeEntry, ENTRY_FORMAT_VERSION, type CacheEntry, VARIANTS_HEADER } from '../lib/entry.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { StoreSetOptions } from '../lib/stores/store.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { eventually, until } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'

const ago = (seconds: number): string => new Date(Date.now() - seconds * 1000).toUTCString()
const ahead = (seconds: number): string => new Date(Date.now() + seconds * 1000).toUTCString()

/** Each case: the headers its response carries, and whether a second request is a hit. */
const CASES: Record<string, [() => Record<string, string>, 'HIT' | 'MISS']> = {
  'max-age': [() => ({ 'cache-control': 'max-age=60' }), 'HIT'],
  's-maxage': [() => ({ 'cache-control': 'max-age=0, s-maxage=60' }), 'HIT'],
  'max-age quoted': [() => ({ 'cache-control': 'max-age="60"' }), 'HIT'],
  'max-age negative': [() => ({ 'cache-control': 'max-age=-1' }), 'MISS'],
  'max-age=0': [() => ({ 'cache-control': 'max-age=0' }), 'MISS'],
  'max-age twice, the first fresh': [() => ({ 'cache-control': 'max-age=60, max-age=0' }), 'HIT'],
  'expires ahead': [() => ({ expires: ahead(60), date: ago(0) }), 'HIT'],
  'expires past': [() => ({ expires: ago(60) }), 'MISS'],
  'expires invalid': [() => ({ expires: '0' }), 'MISS'],
  'age past max-age': [() => ({ 'cache-control': 'max-age=60', age: '120' }), 'MISS'],
  'date older than max-age': [() => ({ 'cache-control': 'max-age=60', date: ago(120) }), 'MISS'],
  'no freshness': [() => ({}), 'MISS'],
  'last-modified only (heuristics off)': [() => ({ 'last-modified': ago(86_400) }), 'MISS'],
  'no-cache': [() => ({ 'cache-control': 'no-cache, max-age=60' }), 'MISS'],
  private: [() => ({ 'cache-control': 'private, max-age=60' }), 'MISS'],
  'no-store': [() => ({ 'cache-control': 'no-store, max-age=60' }), 'MISS'],
  'cdn-cache-control over no-store': [() => ({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' }), 'HIT'],
  'cdn-cache-control no-store over max-age': [() => ({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' }), 'MISS'],
  'invalid cdn-cache-control ignored': [() => ({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'max-age="x"' }), 'HIT']
}

const send = (headers: Record<string, string>, reply: FastifyReply, body: unknown): unknown => {
  reply.headers(headers)
  return body
}

for (const [kind, options] of await storeKinds(t)) {
  t.test(`${kind}: ttl 'origin' stores what the response's own headers allow, for as long as they say`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.get('/o', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      const [headers] = CASES[(request.query as { case: string }).case]
      return send(headers(), reply, { run: runs.next() })
    })
    for (const [name, [, expected]] of Object.entries(CASES)) {
      const url = `/o?case=${encodeURIComponent(name)}`
      t.equal((await app.inject(url)).headers['x-cache'], 'MISS', `${name}: first`)
      t.equal((await app.inject(url)).headers['x-cache'], expected, name)
    }
    // A remote store's writes are counted once Redis has answered them, which may be after the next lookup.
    const stored = Object.values(CASES).filter(([, expected]) => expected === 'HIT').length
    t.ok(await eventually(() => app.cache.stats().total.stores === stored), `${stored} stored`)
    t.equal(app.cache.stats().total.stores, stored)
  })

  t.test(`${kind}: plugin-wide ttl 'origin'; a route's number of seconds keeps the default mode; values default to 60 s`, async (t) => {
    const app = await cachedApp(t, { ...options(), ttl: 'origin' })
    app.get('/inherits', { config: { cache: true } }, async () => 'no freshness')
    app.get('/own', { config: { cache: { ttl: 30 } } }, async () => 'no freshness')
    app.get('/fresh', { config: { cache: true } }, async (_request, reply) => send({ 'cache-control': 'max-age=60' }, reply, 'fresh'))
    for (const url of ['/inherits', '/own', '/fresh']) await app.inject(url)
    t.equal((await app.inject('/inherits')).headers['x-cache'], 'MISS', 'origin mode: nothing says it may be reused')
    t.equal((await app.inject('/own')).headers['x-cache'], 'HIT', 'default mode: the route says 30 s')
    t.equal((await app.inject('/fresh')).headers['x-cache'], 'HIT')
    t.ok(await app.cache.set('v', 1))
    t.equal(await app.cache.get('v'), 1)
  })

  t.test(`${kind}: the age a response arrives with is spent: max-age=2 with Age: 1 is fresh for less than a second`, async (t) => {
    const app = await cachedApp(t, options())
    app.get('/aged', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => send({ 'cache-control': 'max-age=2', age: '1' }, reply, 'aged'))
    app.get('/default', { config: { cache: { ttl: 2 } } }, async (_request, reply) => send({ 'cache-control': 'max-age=2', age: '1' }, reply, 'default'))
    await app.inject('/aged')
    await app.inject('/default')
    const stored = Date.now()
    const hit = await app.inject('/aged')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.headers.age, '1', 'age on a hit: the age it arrived with, plus its time here')
    t.equal((await app.inject('/default')).headers.age, '0', 'default mode: seconds since stored')
    await until(stored, 1000)
    t.equal((await app.inject('/aged')).headers['x-cache'], 'MISS')
    t.equal((await app.inject('/default')).headers['x-cache'], 'HIT', 'default mode ignores the Age received')
  })

  t.test(`${kind}: must-revalidate, proxy-revalidate and s-maxage switch off both stale windows for their entry`, async (t) => {
    const app = await cachedApp(t, options())
    let failing = false
    const windows = { ttl: 'origin' as const, staleWhileRevalidate: 60, staleIfError: 60 }
    app.get('/s/:cc', { config: { cache: windows } }, async (request, reply) => {
      if (failing) throw new Error('origin down')
      return send({ 'cache-control': (request.params as { cc: string }).cc }, reply, 'ok')
    })
    // Two seconds, so that the four hits land within them on a loaded machine.
    const directives = ['max-age=2', 'max-age=2, must-revalidate', 'max-age=2, proxy-revalidate', 's-maxage=2']
    for (const cc of directives) await app.inject(`/s/${encodeURIComponent(cc)}`)
    const stored = Date.now()
    for (const cc of directives) t.equal((await app.inject(`/s/${encodeURIComponent(cc)}`)).headers['x-cache'], 'HIT', cc)
    await until(stored, 2000)
    failing = true
    const answers = await Promise.all(directives.map(async (cc) => await app.inject(`/s/${encodeURIComponent(cc)}`)))
    t.equal(answers[0].headers['x-cache'], 'STALE', 'max-age alone: the route\'s stale window applies')
    for (const [i, answer] of answers.entries()) {
      if (i === 0) continue
      t.equal(answer.statusCode, 500, `${directives[i]}: the error, not the stale entry`)
      t.equal(answer.headers['x-cache'], 'MISS', directives[i])
    }
  })

  t.test(`${kind}: heuristic freshness, when switched on: a tenth of the Last-Modified age, capped`, async (t) => {
    const app = await cachedApp(t, { ...options(), heuristicFreshness: true, heuristicMaxTtl: 1 })
    app.get('/h', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => send({ 'last-modified': ago(86_400) }, reply, 'h'))
    app.get('/off', { config: { cache: { ttl: 'origin', heuristicFreshness: false } } }, async (_request, reply) => send({ 'last-modified': ago(86_400) }, reply, 'off'))
    app.get('/long', { config: { cache: { ttl: 'origin', heuristicMaxTtl: 3600 } } }, async (_request, reply) => send({ 'last-modified': ago(86_400) }, reply, 'l'))
    app.get('/created', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => {
      reply.code(201)
      return send({ 'last-modified': ago(86_400) }, reply, 'c')
    })
    for (const url of ['/h', '/off', '/long', '/created']) await app.inject(url)
    const stored = Date.now()
    t.equal((await app.inject('/h')).headers['x-cache'], 'HIT')
    t.equal((await app.inject('/off')).headers['x-cache'], 'MISS', 'a route can switch it off')
    t.equal((await app.inject('/created')).headers['x-cache'], 'MISS', '201 is not heuristically cacheable')
    await until(stored, 1000)
    t.equal((await app.inject('/h')).headers['x-cache'], 'MISS', 'heuristicMaxTtl: 1 caps 8640 s at 1 s')
    t.equal((await app.inject('/long')).headers['x-cache'], 'HIT', 'a route\'s own cap')
  })

  t.test(`${kind}: Date passes through as received on hits in origin mode; default mode sends the time of the answer`, async (t) => {
    const app = await cachedApp(t, options())
    const old = ago(30)
    app.get('/origin', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => send({ 'cache-control': 'max-age=600', date: old }, reply, 'o'))
    app.get('/none', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => send({ 'cache-control': 'max-age=600' }, reply, 'n'))
    app.get('/default', { config: { cache: true } }, async (_request, reply) => send({ date: old }, reply, 'd'))
    const none = await app.inject('/none')
    t.type(none.headers.date, 'string', 'a response without Date gets the time it was made')
    await app.inject('/origin')
    await app.inject('/default')
    const hit = await app.inject('/origin')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.headers.date, old)
    t.ok(Number(hit.headers.age) >= 30, `age ${String(hit.headers.age)} counts the 30 s it was old on arrival`)
    t.ok(Number(hit.headers.age) < 600)
    await until(Date.parse(none.headers.date as string), 1000)
    t.equal((await app.inject('/none')).headers.date, none.headers.date, 'and keeps it on every hit, seconds later')
    const plain = await app.inject('/default')
    t.equal(plain.headers['x-cache'], 'HIT')
    t.not(plain.headers.date, old, 'default mode: date is not stored')
    t.equal(plain.headers.age, '0')
  })
}

t.test('the store keeps an entry for its freshness plus the stale windows, which no-stale entries do without', async (t) => {
  const written: Record<string, number> = {}
  const memory = new MemoryStore({ maxBytes: 1_000_000 })
  const store = {
    name: 'recording',
    get: (key: string) => memory.get(key),
    set: (key: string, entry: CacheEntry, options: StoreSetOptions) => { written[String(entry.body)] = Math.round(options.ttl); memory.set(key, entry, options) },
    delete: (key: string) => memory.delete(key),
    invalidateTags: (tags: readonly string[]) => memory.invalidateTags(tags),
    clear: () => { memory.clear() }
  }
  const app = await cachedApp(t, { store, ttl: 'origin', staleWhileRevalidate: 30, staleIfError: 100 })
  app.get('/:cc', { config: { cache: true } }, async (request, reply) => {
    const cc = (request.params as { cc: string }).cc
    return send({ 'cache-control': cc }, reply, cc)
  })
  for (const cc of ['max-age=60', 'max-age=60, must-revalidate', 's-maxage=60']) await app.inject(`/${encodeURIComponent(cc)}`)
  t.same(written, { 'max-age=60': 160, 'max-age=60, must-revalidate': 60, 's-maxage=60': 60 })
})

t.test('each reason origin mode does not store a response is logged at debug', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, {}, { logger })
  app.get('/r', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => send({ 'cache-control': (request.query as { cc: string }).cc }, reply, 'r'))
  for (const cc of ['public', 'max-age=x', 'max-age=0', 'no-cache', 'private', 'no-store']) await app.inject(`/r?cc=${encodeURIComponent(cc)}`)
  const reasons = lines.filter((l) => l.msg === 'response cache: not stored').map((l) => (l.responseCache as { reason: string }).reason)
  t.same(reasons, ['no-freshness', 'invalid-freshness', 'stale', 'no-cache', 'private', 'no-store'])
})

t.test('heuristic options are checked: they need ttl \'origin\' on a route, and a positive cap', async (t) => {
  const ready = async (plugin: object, route: object): Promise<unknown> => {
    const app = await cachedApp(t, plugin)
    app.get('/r', { config: { cache: route } }, async () => 'r')
    return await app.ready()
  }
  await t.rejects(ready({}, { heuristicFreshness: true }), { code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG', message: /"heuristicFreshness" applies only with ttl: 'origin' \(this route's ttl is 60\)/ })
  await t.rejects(ready({ ttl: 'origin' }, { ttl: 5, heuristicMaxTtl: 10 }), { message: /"heuristicMaxTtl" applies only with ttl: 'origin'/ })
  await t.rejects(ready({ heuristicMaxTtl: 0 }, {}), { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message: /"heuristicMaxTtl": expected a number of seconds greater than 0, got 0/ })
  await t.rejects(ready({ ttl: 'forever' }, {}), { message: /"ttl": expected a number of seconds greater than 0, or 'origin', got "forever"/ })
  await t.rejects(ready({}, { ttl: 'Origin' }), { code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG' })
  await t.resolves(ready({ heuristicFreshness: true, heuristicMaxTtl: 60 }, { ttl: 5 }), 'plugin-wide settings apply to the routes in origin mode only')
})

t.test('entries of origin mode carry their origin fields in format version 2 and read them back; others read back without them', async (t) => {
  const base: CacheEntry = { status: 200, headers: { date: ago(5) }, body: Buffer.from('b'), storedAt: Date.now(), ttl: 30, etag: '"e"' }
  const plain = encodeEntry(base)
  t.equal(plain[0], ENTRY_FORMAT_VERSION)
  t.same(decodeEntry(plain), base, 'no origin fields appear')
  for (const extra of [{ initialAgeMs: 1234.5 }, { initialAgeMs: 0, noStale: true }]) {
    const encoded = encodeEntry({ ...base, ...extra })
    t.equal(encoded[0], ENTRY_FORMAT_VERSION)
    t.same(decodeEntry(encoded), { ...base, ...extra })
  }
  const encoded = encodeEntry({ ...base, initialAgeMs: 1 })
  const broken = (at: number, write: (b: Buffer) => void): Buffer => { const b = Buffer.from(encoded); write(b); return b }
  t.throws(() => decodeEntry(broken(24, (b) => b.writeUInt8(16, 24))), { message: 'entry fields out of range' }, 'unknown flags')
  // A Vary marker carries flag 8, which a release before markers rejects: a miss there, never a response.
  const marker = encodeEntry({ ...base, headers: { [VARIANTS_HEADER]: 'accept-language' } })
  t.equal(marker[24] & 8, 8)
  t.same(decodeEntry(marker).headers, { [VARIANTS_HEADER]: 'accept-language' })
  t.throws(() => decodeEntry(broken(24, (b) => b.writeUInt8(8 | 2, 24))), { message: 'entry fields out of range' }, 'the marker flag without a marker')
  const unflagged = Buffer.from(marker)
  unflagged.writeUInt8(unflagged[24] & ~8, 24)
  // Its header name, which no HTTP message can carry, is refused where the flag does not allow it.
  t.throws(() => decodeEntry(unflagged), { message: 'a header name is not a lower-case HTTP token' }, 'a marker without its flag')
  t.throws(() => decodeEntry(broken(25, (b) => b.writeDoubleBE(-1, 25))), { message: 'entry fields out of range' }, 'a negative age')
  t.throws(() => decodeEntry(encoded.subarray(0, 30)), { name: 'CorruptEntryError' }, 'truncated in the origin fields')
})

t.test("ttl 'origin': a request's own no-store keeps its response out of the cache (RFC 9111 5.2.1.5); the default mode ignores it", async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  for (const ttl of ['origin', 60] as const) {
    app.get(`/${ttl}`, { config: { cache: { ttl } } }, async (_request, reply) => send({ 'cache-control': 'max-age=60' }, reply, { run: runs.next() }))
  }
  const noStore = { 'cache-control': 'no-store' }
  await app.inject({ url: '/origin', headers: noStore })
  t.equal((await app.inject('/origin')).headers['x-cache'], 'MISS', 'not stored for the request that said no-store')
  t.equal((await app.inject({ url: '/origin', headers: noStore })).headers['x-cache'], 'HIT', 'a stored answer may still serve it')
  await app.inject({ url: '/60', headers: noStore })
  t.equal((await app.inject('/60')).headers['x-cache'], 'HIT', 'default mode: the app decides, as before')
})

t.test("ttl 'origin': any status from 200 to 499 with freshness of its own is stored, but 206 and 304; a route's statusCodes still narrows it", async (t) => {
  const app = await cachedApp(t)
  const answer = (status: number) => async (_request: unknown, reply: FastifyReply) => {
    reply.code(status)
    return send({ 'cache-control': 'max-age=60' }, reply, `status ${status}`)
  }
  for (const status of [200, 203, 301, 404, 410, 451, 206]) app.get(`/${status}`, { config: { cache: { ttl: 'origin' } } }, answer(status))
  app.get('/narrow', { config: { cache: { ttl: 'origin', statusCodes: [200] } } }, answer(404))
  app.get('/default-mode', { config: { cache: { ttl: 60 } } }, answer(404))
  for (const status of [200, 203, 301, 404, 410, 451]) {
    await app.inject(`/${status}`)
    const hit = await app.inject(`/${status}`)
    t.equal(hit.headers['x-cache'], 'HIT', `${status}`)
    t.equal(hit.statusCode, status)
  }
  for (const url of ['/206', '/narrow', '/default-mode']) {
    await app.inject(url)
    t.equal((await app.inject(url)).headers['x-cache'], 'MISS', url)
  }
})

import t from 'tap'
import zlib from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import { request } from 'undici'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { decodeEntry, encodeEntry, encodedSize, entrySize, ENCODED_FORMAT_VERSION, ENTRY_FORMAT_VERSION, type CacheEntry } from '../lib/entry.js'
import { SYNC_MAX_BYTES } from '../lib/compression/encode.js'
import { chooseEncoding, compressible, encodedEtag, varyWithAcceptEncoding } from '../lib/rules/encoding.js'
import { cachedApp, counter } from './helpers/app.js'

// Compression the cache owns (docs/API.md "Compression"), over real sockets: undici's `request`
// does not decode, so the bytes checked are the bytes sent.

const BROWSER = 'gzip, deflate, br, zstd'

/** A JSON body of about `items` * 40 bytes, compressible as real JSON is. */
function bigJson (items: number): Array<{ id: number, name: string }> {
  return Array.from({ length: items }, (_, id) => ({ id, name: `item number ${id} of the list` }))
}

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

async function listen (app: FastifyInstance): Promise<(path: string, headers?: Record<string, string>, method?: 'GET' | 'HEAD') => Promise<Answer>> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return async (path, headers = {}, method = 'GET') => {
    const answer = await request(`http://127.0.0.1:${port}${path}`, { method, headers })
    return { status: answer.statusCode, headers: answer.headers, body: Buffer.from(await answer.body.arrayBuffer()) }
  }
}

function decoded (answer: Answer): Buffer {
  switch (answer.headers['content-encoding']) {
    case 'br': return zlib.brotliDecompressSync(answer.body)
    case 'gzip': return zlib.gunzipSync(answer.body)
    case undefined: return answer.body
    default: throw new Error(`unexpected content-encoding ${String(answer.headers['content-encoding'])}`)
  }
}

async function jsonApp (t: Parameters<typeof cachedApp>[0], options: ResponseCacheOptions = {}, items = 200): Promise<{ get: Awaited<ReturnType<typeof listen>>, runs: ReturnType<typeof counter> }> {
  const app = await cachedApp(t, options)
  const runs = counter()
  app.get('/data', { config: { cache: true } }, async () => { runs.next(); return bigJson(items) })
  return { get: await listen(app), runs }
}

for (const [label, items] of [['in place (up to 8 KiB)', 150], ['on the thread pool (over 8 KiB)', 1200]] as const) {
  t.test(`${label}: MISS then HIT for br, gzip and identity clients, each its own coding, vary and etag`, async (t) => {
    const { get, runs } = await jsonApp(t, {}, items)
    const identity = Buffer.from(JSON.stringify(bigJson(items)))
    t.equal(identity.length <= SYNC_MAX_BYTES, items === 150)
    const miss = await get('/data', { 'accept-encoding': BROWSER })
    t.equal(miss.headers['x-cache'], 'MISS')
    t.equal(miss.headers['content-encoding'], 'br', 'the miss itself is compressed, br preferred on ties')
    t.equal(miss.headers.vary, 'accept-encoding')
    t.ok(decoded(miss).equals(identity))
    const etag = (await get('/data')).headers.etag as string
    t.match(etag, /^"[^"]+"$/)
    t.equal(miss.headers.etag, encodedEtag(etag, 'br'))
    for (const [accept, coding] of [[BROWSER, 'br'], ['gzip', 'gzip'], [undefined, undefined], ['identity', undefined]] as const) {
      const hit = await get('/data', accept === undefined ? {} : { 'accept-encoding': accept })
      t.equal(hit.headers['x-cache'], 'HIT', String(accept))
      t.equal(hit.headers['content-encoding'], coding, String(accept))
      t.equal(hit.headers.vary, 'accept-encoding')
      t.equal(hit.headers.etag, coding === undefined ? etag : `${etag.slice(0, -1)}-${coding}"`)
      t.equal(Number(hit.headers['content-length']), hit.body.length, 'content-length is the length sent')
      t.ok(decoded(hit).equals(identity), String(accept))
      if (coding !== undefined) t.ok(hit.body.length < identity.length / 3, 'compressed')
    }
    t.equal(runs.runs, 1)
  })
}

t.test('If-None-Match answers 304 for the etag of the coding the request gets, only that one', async (t) => {
  const { get } = await jsonApp(t)
  const br = await get('/data', { 'accept-encoding': 'br' })
  const gzip = await get('/data', { 'accept-encoding': 'gzip' })
  const plain = await get('/data')
  t.not(br.headers.etag, gzip.headers.etag)
  const notModified = await get('/data', { 'accept-encoding': 'br', 'if-none-match': br.headers.etag as string })
  t.equal(notModified.status, 304)
  t.equal(notModified.headers.etag, br.headers.etag)
  t.equal(notModified.headers.vary, 'accept-encoding')
  t.equal(notModified.headers['content-encoding'], undefined, 'no body, no coding')
  t.equal((await get('/data', { 'accept-encoding': 'gzip', 'if-none-match': gzip.headers.etag as string })).status, 304)
  t.equal((await get('/data', { 'if-none-match': plain.headers.etag as string })).status, 304)
  // Another coding's validator does not match: the client holds other bytes.
  const other = await get('/data', { 'accept-encoding': 'gzip', 'if-none-match': br.headers.etag as string })
  t.equal(other.status, 200)
  t.equal(other.headers['content-encoding'], 'gzip')
  t.equal((await get('/data', { 'accept-encoding': 'br', 'if-none-match': plain.headers.etag as string })).status, 200)
  t.equal((await get('/data', { 'if-none-match': br.headers.etag as string })).status, 200)
})

t.test('HEAD gets the coding its GET would, with the encoded length and no body', async (t) => {
  const { get } = await jsonApp(t)
  const full = await get('/data', { 'accept-encoding': 'gzip' })
  const head = await get('/data', { 'accept-encoding': 'gzip' }, 'HEAD')
  t.equal(head.status, 200)
  t.equal(head.headers['x-cache'], 'HIT')
  t.equal(head.headers['content-encoding'], 'gzip')
  t.equal(head.headers.etag, full.headers.etag)
  t.equal(head.headers['content-length'], String(full.body.length))
  t.equal(head.body.length, 0)
})

t.test('q-values over real requests: the preferred coding, identity when it is preferred or nothing else is held', async (t) => {
  const { get } = await jsonApp(t)
  await get('/data')
  for (const [accept, coding] of [
    ['gzip;q=1, br;q=0.5', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['*', 'br'],
    ['*;q=0.5, gzip;q=0.8', 'gzip'],
    ['gzip;q=0.5, identity', undefined],
    ['identity;q=0, gzip', 'gzip'],
    ['identity;q=0, deflate', undefined],
    ['deflate', undefined],
    ['x-gzip', 'gzip']
  ] as const) {
    const hit = await get('/data', { 'accept-encoding': accept })
    t.equal(hit.headers['content-encoding'], coding, accept)
    t.equal(hit.headers['x-cache'], 'HIT')
  }
})

t.test('chooseEncoding follows RFC 9110 section 12.5.3', async (t) => {
  const held = { br: Buffer.alloc(1), gzip: Buffer.alloc(1) }
  t.equal(chooseEncoding(undefined, held), undefined, 'no header: identity')
  t.equal(chooseEncoding('', held), undefined, 'empty: identity only')
  t.equal(chooseEncoding('gzip, br', held), 'br', 'ties: br first')
  t.equal(chooseEncoding('GZIP;Q=0.9, br;q=0.8', held), 'gzip', 'case-insensitive')
  t.equal(chooseEncoding('br;q=0.8, br;q=0.2, gzip;q=0.5', held), 'br', 'the highest weight of a repeated coding')
  t.equal(chooseEncoding('br;q=2, gzip', held), 'gzip', 'an invalid weight makes its member unusable')
  t.equal(chooseEncoding('br;level=3, gzip;q=0.5', held), 'br', 'a parameter that is not a weight is ignored')
  t.equal(chooseEncoding('*;q=0, gzip;q=0.1', held), 'gzip')
  t.equal(chooseEncoding('*;q=0', held), undefined, 'nothing held acceptable: identity still')
  t.equal(chooseEncoding('br;q=0.5, identity;q=0.5', held), 'br', 'a listed identity tied loses to the smaller body')
  t.equal(chooseEncoding('br', { gzip: Buffer.alloc(1) }), undefined, 'only codings the entry holds')
  t.equal(chooseEncoding(' , gzip', held), 'gzip', 'empty members are skipped')
  t.equal(chooseEncoding('zstd, gzip;q=0.5', { ...held, zstd: Buffer.alloc(1) }), 'zstd')
})

t.test('compressible: types, an existing coding, no-transform', async (t) => {
  const of = (headers: Record<string, string>) => compressible((name) => headers[name])
  t.ok(of({}), 'Fastify\'s default type, JSON')
  for (const type of ['application/json; charset=utf-8', 'text/html', 'text/css', 'application/javascript', 'image/svg+xml', 'application/xml', 'application/problem+json']) {
    t.ok(of({ 'content-type': type }), type)
  }
  for (const type of ['image/png', 'application/octet-stream', 'text/event-stream', 'video/mp4']) t.notOk(of({ 'content-type': type }), type)
  t.notOk(of({ 'content-encoding': 'gzip' }))
  t.ok(of({ 'content-encoding': 'identity' }))
  t.notOk(of({ 'cache-control': 'public, no-transform' }))
  t.ok(of({ 'cache-control': 'public, max-age=60' }))
})

t.test('varyWithAcceptEncoding merges once', async (t) => {
  t.equal(varyWithAcceptEncoding(undefined), 'accept-encoding')
  t.equal(varyWithAcceptEncoding('origin'), 'origin, accept-encoding')
  t.equal(varyWithAcceptEncoding(['origin', 'Accept-Encoding']), 'origin, Accept-Encoding')
  t.equal(varyWithAcceptEncoding('*'), '*')
  t.equal(encodedEtag('W/"abc"', 'gzip'), 'W/"abc-gzip"')
})

t.test('a route\'s own Vary is kept and merged with accept-encoding', async (t) => {
  const app = await cachedApp(t)
  app.get('/v', { config: { cache: { vary: ['x-lang'] } } }, async (_request, reply) => { reply.header('vary', 'x-lang'); return bigJson(100) })
  const get = await listen(app)
  const miss = await get('/v', { 'accept-encoding': 'gzip', 'x-lang': 'en' })
  const hit = await get('/v', { 'accept-encoding': 'gzip', 'x-lang': 'en' })
  t.equal(miss.headers.vary, 'x-lang, accept-encoding')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers.vary, 'x-lang, accept-encoding')
  t.equal(hit.headers['content-encoding'], 'gzip')
})

t.test('not compressed: a body under the threshold, an image, no-transform; all still stored', async (t) => {
  const app = await cachedApp(t)
  app.get('/small', { config: { cache: true } }, async () => ({ small: 'x'.repeat(900) }))
  app.get('/png', { config: { cache: true } }, async (_request, reply) => reply.type('image/png').send(Buffer.alloc(4000, 1)))
  app.get('/nt', { config: { cache: true } }, async (_request, reply) => { reply.header('cache-control', 'public, no-transform'); return bigJson(100) })
  const get = await listen(app)
  for (const path of ['/small', '/png', '/nt']) {
    await get(path, { 'accept-encoding': BROWSER })
    const hit = await get(path, { 'accept-encoding': BROWSER })
    t.equal(hit.headers['x-cache'], 'HIT', path)
    t.equal(hit.headers['content-encoding'], undefined, path)
    t.equal(hit.headers.vary, undefined, path)
  }
})

t.test('a response already encoded by its handler is stored and sent as it is', async (t) => {
  const app = await cachedApp(t)
  const gzipped = zlib.gzipSync(Buffer.from(JSON.stringify(bigJson(100))))
  app.get('/gz', { config: { cache: true } }, async (_request, reply) => reply.header('content-encoding', 'gzip').type('application/json').send(gzipped))
  const get = await listen(app)
  const miss = await get('/gz', { 'accept-encoding': 'br' })
  const hit = await get('/gz', { 'accept-encoding': 'br' })
  t.equal(hit.headers['x-cache'], 'HIT')
  for (const answer of [miss, hit]) {
    t.equal(answer.headers['content-encoding'], 'gzip')
    t.ok(answer.body.equals(gzipped), 'the handler\'s bytes, not encoded again')
  }
})

t.test('compress: false, plugin-wide or on a route, stores and sends identity only', async (t) => {
  for (const [label, plugin, route] of [['plugin', { compress: false as const }, true], ['route', {}, { compress: false as const }]] as const) {
    const app = await cachedApp(t, plugin)
    app.get('/data', { config: { cache: route } }, async () => bigJson(100))
    const get = await listen(app)
    await get('/data', { 'accept-encoding': BROWSER })
    const hit = await get('/data', { 'accept-encoding': BROWSER })
    t.equal(hit.headers['x-cache'], 'HIT', label)
    t.equal(hit.headers['content-encoding'], undefined, label)
    t.equal(hit.headers.vary, undefined, label)
  }
})

t.test('route settings over the plugin\'s: encodings, threshold', async (t) => {
  const app = await cachedApp(t, { compress: { encodings: ['gzip'] } })
  app.get('/gzip-only', { config: { cache: true } }, async () => bigJson(100))
  app.get('/high', { config: { cache: { compress: { threshold: 100_000 } } } }, async () => bigJson(100))
  app.get('/br', { config: { cache: { compress: { encodings: ['br'], brotliQuality: 11 } } } }, async () => bigJson(100))
  const get = await listen(app)
  await get('/gzip-only')
  t.equal((await get('/gzip-only', { 'accept-encoding': BROWSER })).headers['content-encoding'], 'gzip')
  await get('/high')
  t.equal((await get('/high', { 'accept-encoding': BROWSER })).headers['content-encoding'], undefined)
  await get('/br')
  const br = await get('/br', { 'accept-encoding': 'gzip, br' })
  t.equal(br.headers['content-encoding'], 'br')
  t.equal((await get('/br', { 'accept-encoding': 'gzip' })).headers['content-encoding'], undefined)
  t.ok(decoded(br).equals(Buffer.from(JSON.stringify(bigJson(100)))))
})

t.test('bad compress options fail ready() naming the option', async (t) => {
  for (const [options, message] of [
    [{ compress: true }, /invalid option "compress": expected false or an object/],
    [{ compress: { threshold: -1 } }, /invalid option "compress\.threshold": expected a whole number of bytes/],
    [{ compress: { encodings: ['deflate'] } }, /invalid option "compress\.encodings": expected a non-empty array of encodings from 'br', 'gzip', 'zstd'/],
    [{ compress: { brotliQuality: 12 } }, /invalid option "compress\.brotliQuality"/],
    [{ compress: { gzipLevel: 0 } }, /invalid option "compress\.gzipLevel"/],
    [{ compress: { level: 1 } }, /invalid option "compress\.level": is not a known option/]
  ] as const) {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    app.register(responseCache, options as ResponseCacheOptions)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message })
  }
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache)
  app.get('/r', { config: { cache: { compress: { encodings: [] } } } }, async () => 'x')
  await t.rejects(async () => { await app.ready() }, { code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG', message: /"compress\.encodings" expected/ })
})

t.test('maxEntryBytes counts every encoding with the body', async (t) => {
  const body = JSON.stringify(bigJson(100))
  const br = zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }).length
  // Room for the body and its headers, not for its encodings as well.
  const maxEntryBytes = body.length + 300 + br
  for (const [compress, stored] of [[false, true], [undefined, false]] as const) {
    const { get, runs } = await jsonApp(t, { maxEntryBytes, compress }, 100)
    await get('/data', { 'accept-encoding': 'br' })
    const again = await get('/data', { 'accept-encoding': 'br' })
    t.equal(again.headers['x-cache'], stored ? 'HIT' : 'MISS', `compress ${String(compress)}`)
    t.equal(runs.runs, stored ? 1 : 2)
    // Not stored, the miss still gets its coding.
    t.equal(again.headers['content-encoding'], compress === false ? undefined : 'br')
  }
})

const withEncodings = (): CacheEntry => ({
  status: 200,
  headers: { 'content-type': 'application/json' },
  body: Buffer.from('{"a":1}'.repeat(300)),
  storedAt: 1_700_000_000_000,
  ttl: 60,
  etag: '"abc"',
  encoded: { br: Buffer.from('brotli bytes'), gzip: Buffer.from('gzip bytes') }
})

t.test('the entry codec keeps encodings (version 3), and writes an entry without them as version 2', async (t) => {
  const entry = withEncodings()
  const bytes = encodeEntry(entry)
  t.equal(bytes[0], ENCODED_FORMAT_VERSION)
  const back = decodeEntry(bytes)
  t.ok(back.body.equals(entry.body))
  t.same(Object.keys(back.encoded ?? {}), ['br', 'gzip'])
  t.ok(back.encoded?.br?.equals(Buffer.from('brotli bytes')))
  t.ok(back.encoded?.gzip?.equals(Buffer.from('gzip bytes')))
  const plain = { ...entry, encoded: undefined }
  const old = encodeEntry(plain)
  t.equal(old[0], ENTRY_FORMAT_VERSION, 'readable by releases before encodings')
  t.equal(decodeEntry(old).encoded, undefined)
  t.equal(encodeEntry({ ...entry, encoded: {} })[0], ENTRY_FORMAT_VERSION, 'no encodings: version 2')
})

t.test('decodeEntry refuses encodings it could not have written', async (t) => {
  const bytes = encodeEntry(withEncodings())
  // The encodings block sits right before the lz4 body; find it by its first id and length.
  const at = bytes.indexOf(Buffer.concat([Buffer.from([2, 1]), Buffer.from([0, 0, 0, 12])]))
  t.ok(at > 0)
  const count = at
  const variant = (edit: (copy: Buffer) => void): Buffer => { const copy = Buffer.from(bytes); edit(copy); return copy }
  t.throws(() => decodeEntry(variant((b) => { b[count] = 0 })), { name: 'CorruptEntryError', message: '0 encodings' })
  t.throws(() => decodeEntry(variant((b) => { b[count] = 4 })), { name: 'CorruptEntryError', message: '4 encodings' })
  t.throws(() => decodeEntry(variant((b) => { b[count + 1] = 9 })), { name: 'CorruptEntryError', message: 'an unknown or repeated encoding' })
  t.throws(() => decodeEntry(variant((b) => { b[count + 1] = 2 })), { name: 'CorruptEntryError', message: 'an unknown or repeated encoding' })
  t.throws(() => decodeEntry(variant((b) => { b.writeUInt32BE(0xffffff, count + 2) })), { name: 'CorruptEntryError', message: /truncated/ })
  t.throws(() => decodeEntry(bytes.subarray(0, count + 3)), { name: 'CorruptEntryError', message: /truncated/ })
})

t.test('entrySize, which the memory bound counts, includes every encoding', async (t) => {
  const entry = withEncodings()
  const plain = { ...entry, encoded: undefined }
  t.equal(encodedSize(entry.encoded), 'brotli bytes'.length + 'gzip bytes'.length)
  t.equal(entrySize('k', entry, undefined) - entrySize('k', plain, undefined), encodedSize(entry.encoded))
})

for (const order of ['before', 'after'] as const) {
  t.test(`@fastify/compress registered ${order} the plugin: HIT after MISS, the same bytes, nothing compressed twice`, async (t) => {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    const compress = (await import('@fastify/compress')).default
    if (order === 'before') await app.register(compress)
    await app.register(responseCache)
    if (order === 'after') await app.register(compress)
    const runs = counter()
    app.get('/data', { config: { cache: true } }, async () => { runs.next(); return bigJson(1200) })
    app.get('/small', { config: { cache: true } }, async () => { runs.next(); return bigJson(40) })
    app.get('/uncached', async () => bigJson(1200))
    const get = await listen(app)
    const identity = Buffer.from(JSON.stringify(bigJson(1200)))
    for (const path of ['/data', '/small']) {
      const body = Buffer.from(JSON.stringify(bigJson(path === '/data' ? 1200 : 40)))
      const miss = await get(path, { 'accept-encoding': BROWSER })
      t.equal(miss.headers['x-cache'], 'MISS')
      for (const accept of [BROWSER, 'gzip', 'deflate', undefined]) {
        const answer = await get(path, accept === undefined ? {} : { 'accept-encoding': accept })
        t.equal(answer.headers['x-cache'], 'HIT', `${path} ${String(accept)}`)
        // A deflate-only client is @fastify/compress's to answer: the cache holds no deflate.
        const body2 = answer.headers['content-encoding'] === 'deflate' ? zlib.inflateSync(answer.body) : decoded(answer)
        t.ok(body2.equals(body), `${path} ${String(accept)}: decodes once to the handler's bytes`)
        t.equal(answer.headers.vary, 'accept-encoding')
      }
      t.ok(decoded(miss).equals(body))
      t.equal(miss.headers['content-encoding'], 'br')
    }
    t.equal(runs.runs, 2)
    // Routes the cache does not own stay @fastify/compress's.
    const plain = await get('/uncached', { 'accept-encoding': 'gzip' })
    t.equal(plain.headers['content-encoding'], 'gzip')
    t.ok(decoded(plain).equals(identity))
  })
}

t.test('@fastify/compress and a route with compress: false: compressed by it, stored as one variant per Accept-Encoding value', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register((await import('@fastify/compress')).default)
  await app.register(responseCache)
  const runs = counter()
  app.get('/data', { config: { cache: { compress: false } } }, async () => {
    runs.next()
    return bigJson(100)
  })
  const get = await listen(app)
  const first = await get('/data', { 'accept-encoding': 'gzip' })
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(first.headers['content-encoding'], 'gzip', 'compressed by @fastify/compress')
  const again = await get('/data', { 'accept-encoding': 'gzip' })
  t.equal(again.headers['x-cache'], 'HIT', 'its gzip answer, stored as the variant of accept-encoding: gzip')
  t.equal(again.headers['content-encoding'], 'gzip')
  const other = await get('/data', { 'accept-encoding': 'br' })
  t.equal(other.headers['x-cache'], 'MISS', 'another Accept-Encoding value: another variant')
  t.equal(other.headers['content-encoding'], 'br')
  t.equal(runs.runs, 2)
})

t.test('origin mode: a 304 to the cache\'s revalidation keeps the encodings, and the answer is negotiated', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/o', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
    runs.next()
    reply.header('etag', '"v1"').header('cache-control', 'no-cache')
    if (request.headers['if-none-match'] === '"v1"') return reply.code(304).send()
    return bigJson(100)
  })
  const get = await listen(app)
  const miss = await get('/o', { 'accept-encoding': 'br' })
  t.equal(miss.headers['content-encoding'], 'br')
  t.equal(miss.headers.etag, '"v1-br"')
  for (const round of [1, 2]) {
    const again = await get('/o', { 'accept-encoding': 'br' })
    t.equal(again.headers['x-cache'], 'REVALIDATED', `round ${round}`)
    t.equal(again.headers['content-encoding'], 'br', `round ${round}`)
    t.equal(again.headers.etag, '"v1-br"')
    t.equal(again.headers.vary, 'accept-encoding')
    t.ok(decoded(again).equals(Buffer.from(JSON.stringify(bigJson(100)))))
  }
  const notModified = await get('/o', { 'accept-encoding': 'br', 'if-none-match': '"v1-br"' })
  t.equal(notModified.status, 304)
  t.equal(notModified.headers['content-encoding'], undefined)
  t.equal(runs.runs, 4)
})

t.test('@fastify/compress keeps what the cache does not store: bypassed requests and streams', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register((await import('@fastify/compress')).default)
  await app.register(responseCache)
  const { Readable } = await import('node:stream')
  const body = JSON.stringify(bigJson(100))
  app.get('/data', { config: { cache: true } }, async () => bigJson(100))
  app.get('/stream', { config: { cache: true } }, async (_request, reply) => reply.type('application/json').send(Readable.from([body])))
  const get = await listen(app)
  const bypassed = await get('/data', { 'accept-encoding': 'gzip', authorization: 'Bearer x' })
  t.equal(bypassed.headers['x-cache'], 'BYPASS')
  t.equal(bypassed.headers['content-encoding'], 'gzip', 'compressed by @fastify/compress')
  const streamed = await get('/stream', { 'accept-encoding': 'gzip' })
  t.equal(streamed.headers['content-encoding'], 'gzip', 'compressed by @fastify/compress')
  t.equal(decoded(streamed).toString(), body)
})

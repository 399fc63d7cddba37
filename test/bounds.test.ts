// Issue 24, point 4: what one response, one value or one caller can make the cache hold is bounded.
// maxEntryBytes counts headers with the body (buffered, streamed, and a 304 merged into a stored
// entry); tags per entry and bytes per tag have documented bounds, past which a route's response is
// not stored (debug reason, and one warn per route and reason) and app.cache throws.
import type { FastifyInstance } from 'fastify'
import { Readable } from 'node:stream'
import { Redis } from 'ioredis'
import t from 'tap'
import type { ResponseCacheOptions } from '../lib/index.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { deferred } from './helpers/events.js'
import { startRedis, writesSent } from './helpers/redis.js'

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
let n = 0
const kinds: Array<[string, () => ResponseCacheOptions]> = [
  ['memory', () => ({ store: 'memory' })],
  ['redis', () => {
    const redis = new Redis(url)
    t.teardown(() => { redis.disconnect() })
    return { store: 'redis', redis, namespace: `b${++n}`, timeout: 2000 }
  }]
]

/** Two requests of `path`: whether the second was answered from the cache. */
async function stored (app: FastifyInstance, path: string): Promise<boolean> {
  await app.inject(path)
  await writesSent()
  return (await app.inject(path)).headers['x-cache'] === 'HIT'
}

/** Every response write on its way has landed: a listing waits for them first. */
async function landed (app: FastifyInstance): Promise<void> {
  await app.cache.list({ tag: 'none' })
}

/** Fails instead of hanging: a bound on the test's own deadlock, not a timing. */
async function settles<T> (promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`still pending after ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([promise, bound])
  } finally {
    clearTimeout(timer)
  }
}

const reasons = (lines: Array<Record<string, unknown>>): string[] => lines
  .filter((line) => line.msg === 'response cache: not stored')
  .map((line) => (line.responseCache as { reason: string }).reason)

for (const [kind, options] of kinds) {
  t.test(`${kind}: maxEntryBytes counts the headers with the body`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, options(), { logger })
    const runs = counter()
    // The default maxEntryBytes is 1 MiB: a 4 MiB header on a two-byte body used to be stored.
    app.get('/header', { config: { cache: true } }, async (_request, reply) => { runs.next(); return await reply.header('x-padding', 'a'.repeat(4 * 1024 * 1024)).send('ok') })
    await app.ready()
    t.notOk(await stored(app, '/header'), 'a 4 MiB header is not stored')
    t.equal(runs.runs, 2)
    t.same(reasons(lines), ['too-large', 'too-large'])
  })

  t.test(`${kind}: a streamed body and its headers together past maxEntryBytes are not stored`, async (t) => {
    const app = await cachedApp(t, { ...options(), maxEntryBytes: 1000 })
    app.get('/stream', { config: { cache: true } }, async (_request, reply) => {
      reply.header('x-padding', 'a'.repeat(600))
      return Readable.from(['b'.repeat(300), 'b'.repeat(300)])
    })
    app.get('/small', { config: { cache: true } }, async (_request, reply) => {
      reply.header('x-padding', 'a'.repeat(100))
      return Readable.from(['b'.repeat(300), 'b'.repeat(300)])
    })
    t.notOk(await stored(app, '/stream'), 'a 600-byte stream with 600 bytes of headers')
    t.ok(await stored(app, '/small'), 'the same stream with small headers is stored')
  })

  t.test(`${kind}: a stream is dropped as soon as its copy and headers pass maxEntryBytes: its waiters are let go then`, async (t) => {
    const app = await cachedApp(t, { ...options(), maxEntryBytes: 1000, coalesceTimeout: 60_000 })
    const runs = counter()
    const source = new Readable({ read () {} })
    const started = deferred()
    app.get('/feed', { config: { cache: true } }, async (_request, reply) => {
      if (runs.next() > 1) return 'own answer'
      started.resolve()
      return await reply.header('x-padding', 'a'.repeat(600)).send(source)
    })
    const leader = app.inject('/feed')
    await started.promise
    const follower = app.inject('/feed')
    // 500 bytes: within the bound alone, past it with the headers.
    source.push(Buffer.alloc(500, 'b'))
    t.equal((await settles(follower)).body, 'own answer', 'the follower ran the handler before the stream ended')
    source.push(null)
    t.equal((await leader).rawPayload.length, 500)
  })

  t.test(`${kind}: a stream whose declared length and headers pass maxEntryBytes is let go before its first byte`, async (t) => {
    const app = await cachedApp(t, { ...options(), maxEntryBytes: 1000, coalesceTimeout: 60_000 })
    const runs = counter()
    const source = new Readable({ read () {} })
    const started = deferred()
    app.get('/video', { config: { cache: true } }, async (_request, reply) => {
      if (runs.next() > 1) return 'own answer'
      started.resolve()
      return await reply.header('x-padding', 'a'.repeat(600)).header('content-length', '500').send(source)
    })
    const leader = app.inject('/video')
    await started.promise
    t.equal((await settles(app.inject('/video'))).body, 'own answer', 'the follower ran the handler, no byte sent yet')
    source.push(Buffer.alloc(500, 'b'))
    source.push(null)
    t.equal((await leader).rawPayload.length, 500)
  })

  t.test(`${kind}: a 304 whose headers grow the entry past maxEntryBytes does not replace it`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, { ...options(), ttl: 'origin', maxEntryBytes: 1000 }, { logger })
    const runs = counter()
    // no-cache with a validator: stored, and revalidated on every use.
    app.get('/doc', { config: { cache: true } }, async (request, reply) => {
      const run = runs.next()
      reply.header('cache-control', 'no-cache').header('etag', '"v1"')
      if (request.headers['if-none-match'] !== '"v1"') return 'hello'
      // The second run's 304 brings 2,000 bytes of header; the third's nothing new.
      if (run === 2) reply.header('x-padding', 'a'.repeat(2000))
      return await reply.code(304).send()
    })
    await app.inject('/doc')
    await landed(app)
    const grown = await app.inject('/doc')
    t.equal(grown.headers['x-cache'], 'REVALIDATED')
    t.equal(String(grown.headers['x-padding']).length, 2000, 'this answer has the 304\'s headers')
    await landed(app)
    const next = await app.inject('/doc')
    t.equal(next.headers['x-cache'], 'REVALIDATED')
    t.equal(next.body, 'hello')
    t.equal(next.headers['x-padding'], undefined, 'the stored entry is still the one within the bound')
    const notAgain = lines.filter((line) => line.msg === 'response cache: revalidated, not stored again')
    t.same(notAgain.map((line) => (line.responseCache as { reason: string }).reason), ['too-large'])
  })
}

const many = (n: number, prefix = 'tag'): string[] => Array.from({ length: n }, (_, i) => `${prefix}:${i}`)

for (const [kind, options] of kinds) {
  t.test(`${kind}: a response with more than 64 tags, or a tag over 256 bytes, is not stored; one warn per route and reason`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, options(), { logger })
    app.get('/items', { config: { cache: { tags: () => many(5000, 'item') } } }, async () => 'a page of 5,000 items')
    app.get('/sixty-five', { config: { cache: { tags: () => many(60) } } }, async (_request, reply) => reply.cacheTags(...many(5, 'more')).send('65 tags'))
    app.get('/sixty-four', { config: { cache: { tags: () => many(64) } } }, async (_request, reply) => reply.cacheTags(...many(64)).send('the same 64 twice'))
    app.get('/long', { config: { cache: { tags: () => ['x'.repeat(257)] } } }, async () => 'a 257-byte tag')
    app.get('/accented', { config: { cache: true } }, async (_request, reply) => reply.cacheTags('é'.repeat(129)).send('129 characters, 258 bytes'))
    app.get('/bound', { config: { cache: { tags: () => ['x'.repeat(256)] } } }, async () => 'a 256-byte tag')
    await app.ready()

    t.notOk(await stored(app, '/items'), '5,000 tags')
    t.notOk(await stored(app, '/items'), 'and again')
    t.notOk(await stored(app, '/sixty-five'), 'route tags and reply.cacheTags count together')
    t.ok(await stored(app, '/sixty-four'), 'a tag given twice counts once')
    t.notOk(await stored(app, '/long'))
    t.notOk(await stored(app, '/accented'), 'bytes are counted in UTF-8')
    t.ok(await stored(app, '/bound'), '256 bytes is within the bound')
    t.same(reasons(lines), ['too-many-tags', 'too-many-tags', 'too-many-tags', 'too-many-tags', 'too-many-tags', 'too-many-tags', 'tag-too-long', 'tag-too-long', 'tag-too-long', 'tag-too-long'])
    const warnings = lines.filter((line) => line.msg === 'response cache: not stored, its tags are past their bound')
    t.same(warnings.map((line) => line.responseCache), [
      { route: 'GET /items', reason: 'too-many-tags', expected: 'expected at most 64 tags' },
      { route: 'GET /sixty-five', reason: 'too-many-tags', expected: 'expected at most 64 tags' },
      { route: 'GET /long', reason: 'tag-too-long', expected: 'expected tags of at most 256 bytes (UTF-8) each' },
      { route: 'GET /accented', reason: 'tag-too-long', expected: 'expected tags of at most 256 bytes (UTF-8) each' }
    ], 'once per route and reason, naming the bound, never the tags')
    t.equal(warnings[0].level, 40)
  })

  t.test(`${kind}: app.cache throws for tags past their bounds, naming the bound`, async (t) => {
    const app = await cachedApp(t, options())
    await app.ready()
    const tooMany = { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"tags": expected at most 64 tags/ }
    const tooLong = { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"tags": expected tags of at most 256 bytes \(UTF-8\) each/ }
    await t.rejects(app.cache.set('k', 1, { tags: many(65) }), tooMany)
    await t.rejects(app.cache.wrap('k', () => 1, { tags: many(5000) }), tooMany)
    await t.rejects(app.cache.set('k', 1, { tags: ['x'.repeat(257)] }), tooLong)
    await t.rejects(app.cache.wrap('k', () => 1, { tags: ['é'.repeat(129)] }), tooLong)
    await t.rejects(app.cache.invalidate({ tags: ['x'.repeat(257)] }), tooLong)
    await t.rejects(app.cache.list({ tag: 'x'.repeat(257) }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"tag": expected a tag of at most 256 bytes/ })
    t.equal(await app.cache.get('k'), undefined, 'nothing was stored')

    t.equal(await app.cache.set('k', 1, { tags: [...many(64), ...many(64)] }), true, '64 tags, some given twice')
    t.equal(await app.cache.set('j', 2, { tags: ['x'.repeat(256)] }), true)
    t.equal(await app.cache.invalidate({ tags: many(1000) }), 1, 'an invalidation may name more tags than an entry holds')
    t.equal(await app.cache.invalidate({ tags: ['x'.repeat(256)] }), 1)
  })
}

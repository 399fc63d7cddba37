// ttl: 'origin': a stale entry with a validator is revalidated (RFC 9111 section 4.3): the handler gets
// the entry's If-None-Match / If-Modified-Since, a 304 updates the stored response and the client gets
// it whole; no-cache responses are stored and revalidated on every use; the response's own
// stale-while-revalidate / stale-if-error (RFC 5861) apply; HEAD answers update or drop the GET entry.
// The handlers here answer conditional requests themselves, as an upstream behind reply-from does.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import { Readable } from 'node:stream'
import t from 'tap'
import responseCache, { MemoryStore } from '../lib/index.js'
import { cachedApp, counter } from './helpers/app.js'
import { eventually, until } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'

interface Seen { ifNoneMatch: Array<string | undefined>, ifModifiedSince: Array<string | undefined> }

/** The last `Last-Modified` the tests give: a fixed date, a validator like any origin's. */
const LAST_MODIFIED = 'Tue, 01 Dec 2026 00:00:00 GMT'

/**
 * An origin route: answers `body` with `headers`, or 304 when the request's If-None-Match names
 * `etag` or its If-Modified-Since equals LAST_MODIFIED. Records the validators it was sent.
 */
function origin (seen: Seen, runs: { next: () => number }, current: () => { headers: Record<string, string>, etag?: string, body: string, status?: number }) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<string | undefined> => {
    runs.next()
    seen.ifNoneMatch.push(request.headers['if-none-match'])
    seen.ifModifiedSince.push(request.headers['if-modified-since'])
    const { headers, etag, body, status } = current()
    reply.headers(headers)
    if (etag !== undefined) reply.header('etag', etag)
    // An origin in trouble fails before it looks at conditions.
    if (status !== undefined && status >= 500) return await reply.code(status).send('origin failed')
    const matches = (etag !== undefined && request.headers['if-none-match'] === etag) ||
      (headers['last-modified'] !== undefined && request.headers['if-modified-since'] === headers['last-modified'])
    if (matches) {
      reply.code(304)
      return undefined
    }
    reply.code(status ?? 200)
    return body
  }
}

const fresh = (): Seen => ({ ifNoneMatch: [], ifModifiedSince: [] })

/** Waits past a short freshness: the entry is stale from then on. */
async function stale (storedAt: number, seconds = 1): Promise<void> {
  await until(storedAt, seconds * 1000)
}

async function written (app: FastifyInstance, stores: number): Promise<void> {
  // A remote store counts a write once Redis has answered it.
  await eventually(() => app.cache.stats().total.stores >= stores)
}

/** The first request of `url`, stored as the route's `stores`-th write; answers it once its entry is stale. */
async function storedThenStale (app: FastifyInstance, url: string, stores = 1): Promise<LightMyRequestResponse> {
  const first = await app.inject(url)
  const storedAt = Date.now()
  await written(app, stores)
  await stale(storedAt)
  return first
}

for (const [kind, options] of await storeKinds(t)) {
  t.test(`${kind}: a stale entry with an ETag is revalidated: the handler gets If-None-Match, its 304 renews the entry`, async (t) => {
    const app = await cachedApp(t, options())
    const seen = fresh()
    const runs = counter()
    let maxAge = 1
    app.get('/r', { config: { cache: { ttl: 'origin' } } }, origin(seen, runs, () => ({ headers: { 'cache-control': `max-age=${maxAge}`, 'x-version': String(maxAge) }, etag: '"v1"', body: 'body one' })))
    const first = await storedThenStale(app, '/r')
    t.equal(first.headers['x-cache'], 'MISS')
    maxAge = 60
    const second = await app.inject('/r')
    t.equal(second.statusCode, 200, 'the client asked unconditionally: it gets the whole response')
    t.equal(second.body, 'body one', 'the stored body')
    t.equal(second.headers['x-cache'], 'REVALIDATED')
    t.equal(second.headers['x-version'], '60', "the 304's headers replace the stored ones")
    t.equal(second.headers.etag, '"v1"')
    t.same(seen.ifNoneMatch, [undefined, '"v1"'], 'the stored etag went to the handler')
    await written(app, 2)
    const third = await app.inject('/r')
    t.equal(third.headers['x-cache'], 'HIT', "fresh again, for the 304's max-age=60")
    t.equal(third.body, 'body one')
    t.equal(runs.runs, 2)
  })

  t.test(`${kind}: a revalidated answer keeps the headers the app's own hooks set, as a hit does`, async (t) => {
    const app = await cachedApp(t, options())
    // Set from the second request on, so the stored response does not hold it.
    const cors: { origins?: string } = {}
    app.addHook('onRequest', async (_request, reply) => { if (cors.origins !== undefined) reply.header('access-control-allow-origin', cors.origins) })
    app.get('/cors', { config: { cache: { ttl: 'origin' } } }, origin(fresh(), counter(), () => ({ headers: { 'cache-control': 'max-age=1' }, etag: '"c1"', body: 'cors' })))
    await storedThenStale(app, '/cors')
    cors.origins = '*'
    const revalidated = await app.inject('/cors')
    t.equal(revalidated.headers['x-cache'], 'REVALIDATED')
    t.equal(revalidated.headers['access-control-allow-origin'], '*')
    t.equal(revalidated.headers['content-length'], '4', 'the stored body, counted again')
  })

  t.test(`${kind}: Last-Modified alone revalidates with If-Modified-Since; a 200 instead replaces the entry`, async (t) => {
    const app = await cachedApp(t, options())
    const seen = fresh()
    const runs = counter()
    let body = 'one'
    let lastModified = LAST_MODIFIED
    app.get('/lm', { config: { cache: { ttl: 'origin' } } }, origin(seen, runs, () => ({ headers: { 'cache-control': 'max-age=1', 'last-modified': lastModified }, body })))
    await storedThenStale(app, '/lm')
    const revalidated = await app.inject('/lm')
    t.equal(revalidated.headers['x-cache'], 'REVALIDATED')
    t.equal(revalidated.body, 'one')
    t.same(seen.ifModifiedSince, [undefined, LAST_MODIFIED])
    t.same(seen.ifNoneMatch, [undefined, undefined], "the plugin's own etag is never sent to the origin")
    await written(app, 2)
    const renewedAt = Date.now()
    await stale(renewedAt)
    body = 'two'
    lastModified = 'Wed, 02 Dec 2026 00:00:00 GMT'
    const changed = await app.inject('/lm')
    t.equal(changed.headers['x-cache'], 'MISS', 'the origin answered 200: a new response')
    t.equal(changed.body, 'two')
    await written(app, 3)
    t.equal((await app.inject('/lm')).body, 'two', 'stored in place of the old one')
  })

  t.test(`${kind}: a client's own If-None-Match is answered by the cache after revalidation, and never reaches the origin`, async (t) => {
    const app = await cachedApp(t, options())
    const seen = fresh()
    const runs = counter()
    // Fresh for a second, then (the 304 says so) for a minute: the last request is a hit however slow the machine.
    app.get('/c', { config: { cache: { ttl: 'origin' } } }, origin(seen, runs, () => ({ headers: { 'cache-control': runs.runs > 1 ? 'max-age=60' : 'max-age=1' }, etag: '"v1"', body: 'body' })))
    await storedThenStale(app, '/c')
    const conditional = await app.inject({ url: '/c', headers: { 'if-none-match': '"other", "v1"' } })
    t.equal(conditional.statusCode, 304, "the client's copy is the stored one")
    t.equal(conditional.headers['x-cache'], 'REVALIDATED')
    t.same(seen.ifNoneMatch, [undefined, '"v1"'], "the cache's validator, not the client's list")
    await written(app, 2)
    const other = await app.inject({ url: '/c', headers: { 'if-none-match': '"other"' } })
    t.equal(other.statusCode, 200, 'a client holding another version gets the body')
    t.equal(other.headers['x-cache'], 'HIT')
  })

  t.test(`${kind}: the plugin's own etag is taken out of If-None-Match before the handler; it still answers 304 on hits`, async (t) => {
    const app = await cachedApp(t, options())
    const seen = fresh()
    const runs = counter()
    app.get('/s', { config: { cache: { ttl: 'origin' } } }, origin(seen, runs, () => ({ headers: { 'cache-control': 'max-age=1' }, body: 'no etag of its own' })))
    const first = await app.inject('/s')
    const etag = first.headers.etag as string
    t.match(etag, /^"rc-[A-Za-z0-9_-]{27}"$/, 'origin mode marks the etag it makes')
    await written(app, 1)
    t.equal((await app.inject({ url: '/s', headers: { 'if-none-match': etag } })).statusCode, 304, 'fresh: the cache answers it')
    await storedThenStale(app, '/s')
    const again = await app.inject({ url: '/s', headers: { 'if-none-match': `"theirs", ${etag}` } })
    t.equal(again.statusCode, 200)
    t.equal(again.headers['x-cache'], 'MISS', 'no validator of the origin: fetched whole')
    t.same(seen.ifNoneMatch, [undefined, '"theirs"'], 'only the etag the origin could have made went to it')
    const alone = await app.inject({ url: '/s?other', headers: { 'if-none-match': etag } })
    t.equal(alone.statusCode, 200)
    t.same(seen.ifNoneMatch, [undefined, '"theirs"', undefined], 'a list of only its etags is taken out whole')
  })

  t.test(`${kind}: no-cache with a validator is stored and revalidated on every use; without one it is not stored`, async (t) => {
    const app = await cachedApp(t, options())
    const seen = fresh()
    const runs = counter()
    app.get('/nc', { config: { cache: { ttl: 'origin' } } }, origin(seen, runs, () => ({ headers: { 'cache-control': 'no-cache' }, etag: '"n1"', body: 'no-cache body' })))
    app.get('/plain', { config: { cache: { ttl: 'origin' } } }, origin(fresh(), counter(), () => ({ headers: { 'cache-control': 'no-cache, max-age=60' }, body: 'no validator' })))
    t.equal((await app.inject('/nc')).headers['x-cache'], 'MISS')
    await written(app, 1)
    for (let i = 0; i < 3; i++) {
      const response = await app.inject('/nc')
      t.equal(response.headers['x-cache'], 'REVALIDATED', `use ${i + 1}: revalidated`)
      t.equal(response.body, 'no-cache body')
      await written(app, i + 2)
    }
    t.same(seen.ifNoneMatch, [undefined, '"n1"', '"n1"', '"n1"'])
    await app.inject('/plain')
    t.equal((await app.inject('/plain')).headers['x-cache'], 'MISS', 'no validator: nothing to revalidate, not stored')
    t.equal(app.cache.stats().routes['GET /plain'].stores, 0)
  })

  t.test(`${kind}: a 304 with a new ETag replaces the stored one: the client's If-None-Match with the new tag gets a 304, the next revalidation sends it`, async (t) => {
    const app = await cachedApp(t, options())
    const sent: Array<string | undefined> = []
    // The origin renamed the representation's tag (RFC 9111 4.3.4: the 304's fields replace the stored ones).
    app.get('/renamed', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      sent.push(request.headers['if-none-match'])
      reply.header('cache-control', 'max-age=1')
      if (request.headers['if-none-match'] === '"v1"' || request.headers['if-none-match'] === '"v2"') return await reply.code(304).header('etag', '"v2"').send()
      return await reply.header('etag', '"v1"').send('the body')
    })
    await storedThenStale(app, '/renamed')
    const revalidated = await app.inject('/renamed')
    t.equal(revalidated.headers['x-cache'], 'REVALIDATED')
    t.equal(revalidated.headers.etag, '"v2"')
    t.equal(revalidated.body, 'the body')
    const storedAt = Date.now()
    await written(app, 2)
    const conditional = await app.inject({ url: '/renamed', headers: { 'if-none-match': '"v2"' } })
    t.equal(conditional.statusCode, 304, 'the new tag matches')
    t.equal(conditional.headers['x-cache'], 'HIT')
    t.equal((await app.inject({ url: '/renamed', headers: { 'if-none-match': '"v1"' } })).statusCode, 200, 'the old one no longer does')
    await stale(storedAt)
    await app.inject('/renamed')
    t.same(sent, [undefined, '"v1"', '"v2"'], 'the next revalidation names the new tag')
  })

  t.test(`${kind}: must-revalidate: a stale entry is revalidated, never served stale, even with the route's windows`, async (t) => {
    const app = await cachedApp(t, options())
    const seen = fresh()
    const runs = counter()
    let status = 200
    app.get('/mr', { config: { cache: { ttl: 'origin', staleIfError: 60, staleWhileRevalidate: 60 } } }, origin(seen, runs, () => ({ headers: { 'cache-control': 'max-age=1, must-revalidate' }, etag: '"m1"', body: 'body', status })))
    await storedThenStale(app, '/mr')
    t.equal((await app.inject('/mr')).headers['x-cache'], 'REVALIDATED')
    await written(app, 2)
    const renewedAt = Date.now()
    await stale(renewedAt)
    status = 503
    seen.ifNoneMatch.length = 0
    const failing = await app.inject('/mr')
    t.equal(failing.statusCode, 503, "the origin's error reaches the client: no stale answer")
    t.equal(failing.body, 'origin failed')
    t.same(seen.ifNoneMatch, ['"m1"'], 'it was a revalidation')
  })

  t.test(`${kind}: the response's own stale-while-revalidate and stale-if-error (RFC 5861) apply in origin mode`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    let status = 200
    let body = 'first'
    app.get('/swr', { config: { cache: { ttl: 'origin' } } }, origin(fresh(), runs, () => ({ headers: { 'cache-control': 'max-age=1, stale-while-revalidate=60' }, body })))
    app.get('/sie', { config: { cache: { ttl: 'origin' } } }, origin(fresh(), counter(), () => ({ headers: { 'cache-control': 'max-age=1, stale-if-error=60' }, body: 'good', status })))
    app.get('/default', { config: { cache: { ttl: 1 } } }, origin(fresh(), counter(), () => ({ headers: { 'cache-control': 'max-age=1, stale-while-revalidate=60, stale-if-error=60' }, body: 'default', status })))
    await app.inject('/swr')
    await app.inject('/sie')
    await app.inject('/default')
    const storedAt = Date.now()
    await written(app, 3)
    await stale(storedAt)
    body = 'second'
    status = 500
    const staleAnswer = await app.inject('/swr')
    t.equal(staleAnswer.headers['x-cache'], 'STALE', 'served stale while one refresh runs')
    t.equal(staleAnswer.body, 'first')
    t.ok(await eventually(async () => (await app.inject('/swr')).body === 'second'), 'the refresh stored the new answer')
    const failed = await app.inject('/sie')
    t.equal(failed.statusCode, 200, 'the handler failed: the stale answer instead')
    t.equal(failed.headers['x-cache'], 'STALE')
    t.equal(failed.body, 'good')
    const defaultMode = await app.inject('/default')
    t.equal(defaultMode.statusCode, 500, "the default mode keeps the route's windows (none here), whatever the response says")
  })

  t.test(`${kind}: a stale-while-revalidate refresh revalidates too: its 304 renews the entry served meanwhile`, async (t) => {
    const app = await cachedApp(t, options())
    const seen = fresh()
    const runs = counter()
    let maxAge = 1
    app.get('/w', { config: { cache: { ttl: 'origin', staleWhileRevalidate: 60 } } }, origin(seen, runs, () => ({ headers: { 'cache-control': `max-age=${maxAge}` }, etag: '"w1"', body: 'w body' })))
    await storedThenStale(app, '/w')
    maxAge = 60
    const served = await app.inject('/w')
    t.equal(served.headers['x-cache'], 'STALE')
    t.ok(await eventually(async () => (await app.inject('/w')).headers['x-cache'] === 'HIT'), 'renewed by the refresh')
    t.same(seen.ifNoneMatch, [undefined, '"w1"'], 'the refresh sent the stale entry\'s etag')
    t.equal((await app.inject('/w')).body, 'w body')
  })

  t.test(`${kind}: HEAD: a stale GET entry is revalidated by a HEAD; a HEAD's 200 updates it when validators agree, drops it when not (RFC 9111 4.3.5)`, async (t) => {
    const app = await cachedApp(t, options())
    let maxAge = 1
    app.get('/h', { config: { cache: { ttl: 'origin' } } }, origin(fresh(), counter(), () => ({ headers: { 'cache-control': `max-age=${maxAge}` }, etag: '"h1"', body: 'head body' })))
    // Origins whose HEAD answers 200 with these headers, whatever the request's conditions.
    const heads: Record<string, Record<string, string>> = {
      '/agrees': { etag: '"h1"', 'content-length': '1' },
      '/other-etag': { etag: '"h2"' },
      '/other-length': { etag: '"h1"', 'content-length': '999' },
      '/no-validator': {}
    }
    for (const [url, headers] of Object.entries(heads)) {
      app.get(url, { config: { cache: { ttl: 'origin' } }, exposeHeadRoute: false }, origin(fresh(), counter(), () => ({ headers: { 'cache-control': 'max-age=1' }, etag: '"h1"', body: 'd' })))
      app.head(url, { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => {
        reply.headers({ 'cache-control': 'max-age=60', ...headers })
        return ''
      })
    }
    for (const url of ['/h', ...Object.keys(heads)]) await app.inject(url)
    const storedAt = Date.now()
    await written(app, 5)
    await stale(storedAt)
    maxAge = 60
    const head = await app.inject({ method: 'HEAD', url: '/h' })
    t.equal(head.statusCode, 200)
    t.equal(head.headers['x-cache'], 'REVALIDATED')
    t.equal(head.body, '')
    await written(app, 6)
    t.equal((await app.inject('/h')).headers['x-cache'], 'HIT', "the HEAD's 304 renewed the GET entry")

    for (const url of Object.keys(heads)) t.equal((await app.inject({ method: 'HEAD', url })).statusCode, 200)
    await written(app, 7)
    t.equal((await app.inject('/agrees')).headers['x-cache'], 'HIT', "validators agree: the HEAD's max-age=60 renewed it")
    t.equal((await app.cache.list({ route: 'GET /agrees' }))?.entries.length, 1, 'still listed (and invalidated) as the GET route')
    for (const url of ['/other-etag', '/other-length', '/no-validator']) {
      t.ok(await eventually(async () => (await app.cache.list({ route: `GET ${url}` }))?.entries.length === 0), `${url}: the GET entry is dropped`)
    }
  })

  t.test(`${kind}: a 304 sent as a stream (an upstream's empty body, as reply-from forwards it) is drained, not left open`, async (t) => {
    const app = await cachedApp(t, options())
    let body: Readable | undefined
    app.get('/stream', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      reply.headers({ 'cache-control': 'max-age=1', etag: '"s1"' })
      if (request.headers['if-none-match'] !== '"s1"') return 'streamed'
      body = Readable.from([])
      return await reply.code(304).send(body)
    })
    await storedThenStale(app, '/stream')
    const response = await app.inject('/stream')
    t.equal(response.headers['x-cache'], 'REVALIDATED')
    t.equal(response.body, 'streamed')
    t.ok(await eventually(() => body?.readableEnded === true), "the 304's body was read to its end")
  })

  t.test(`${kind}: keepForRevalidation bounds how long a stale entry is kept; 0 keeps none past its freshness`, async (t) => {
    const app = await cachedApp(t, { ...options(), keepForRevalidation: 0 })
    const seen = fresh()
    app.get('/k', { config: { cache: { ttl: 'origin' } } }, origin(seen, counter(), () => ({ headers: { 'cache-control': 'max-age=1' }, etag: '"k1"', body: 'k' })))
    await storedThenStale(app, '/k')
    const again = await app.inject('/k')
    t.equal(again.headers['x-cache'], 'MISS')
    t.same(seen.ifNoneMatch, [undefined, undefined], 'gone with its freshness: nothing to revalidate')
  })
}

t.test('keepForRevalidation: a number of seconds; on a route, only with ttl origin', async (t) => {
  for (const [options, config, message] of [
    [{ keepForRevalidation: -1 }, undefined, /keepForRevalidation/],
    [{}, { ttl: 60, keepForRevalidation: 10 }, /"keepForRevalidation" applies only with ttl: 'origin'/]
  ] as const) {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await t.rejects(async () => {
      await app.register(responseCache, options)
      if (config !== undefined) app.get('/x', { config: { cache: config } }, async () => 'x')
      await app.ready()
    }, message)
  }
})

t.test('a no-cache answer still on its way to the store is revalidated by the next request, never served as a hit', async (t) => {
  // The store's writes are held until the test lets them go: the second request comes while the
  // first answer's write is in flight, as it does now and then on Redis.
  const held: Array<() => void> = []
  class HeldWrites extends MemoryStore {
    override set (...args: Parameters<MemoryStore['set']>): Promise<void> {
      return new Promise((resolve) => { held.push(() => { resolve(super.set(...args)) }) })
    }
  }
  const app = await cachedApp(t, { store: new HeldWrites({ maxBytes: 1_000_000 }), timeout: 60_000 })
  t.teardown(() => { for (const release of held) release() })
  const seen = fresh()
  const runs = counter()
  app.get('/nc', { config: { cache: { ttl: 'origin' } } }, origin(seen, runs, () => ({ headers: { 'cache-control': 'no-cache' }, etag: '"n1"', body: 'no-cache body' })))
  t.equal((await app.inject('/nc')).headers['x-cache'], 'MISS')
  t.equal(held.length, 1, 'the write is on its way')
  const next = await app.inject('/nc')
  t.equal(next.headers['x-cache'], 'REVALIDATED')
  t.equal(next.body, 'no-cache body')
  t.same(seen.ifNoneMatch, [undefined, '"n1"'], 'the origin was asked')
})

// @fastify/compress next to the cache (issue 26, point 4), registered as its README shows (global
// hook, default options), before the cache and after it: browsers get HIT after MISS, each client an
// encoding it accepts, and the same decoded bytes as from the app without the cache.
import fastifyCompress from '@fastify/compress'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { BROWSER_ENCODING, CATALOGUE, counter, servePair } from './helpers.js'

// Before issue 26, with @fastify/compress registered first, a browser's compressed answer carried
// `Vary: Accept-Encoding`, which the route did not key, so it was never stored (always MISS). The
// cache now compresses what it caches, and @fastify/compress leaves those routes to it.

const EXPECTED = JSON.stringify(CATALOGUE)

type Order = 'compress first' | 'cache first'
const ORDERS: Order[] = ['compress first', 'cache first']

function builder (order: Order, runs: { next: () => number }, options: { ttl?: number | 'origin' } = {}): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    // The README's form: `await fastify.register(import('@fastify/compress'))`, global hook on.
    if (order === 'compress first') await app.register(fastifyCompress)
    if (withCache) await app.register(responseCache, { ttl: options.ttl ?? 60 })
    if (order === 'cache first') await app.register(fastifyCompress)
    app.get('/catalogue', { config: { cache: true } }, async (_request, reply) => {
      if (withCache) runs.next()
      if (options.ttl === 'origin') reply.header('cache-control', 'public, max-age=60')
      return CATALOGUE
    })
    // Under the 1 KiB threshold: never compressed, so no Vary.
    app.get('/small', { config: { cache: true } }, async () => {
      if (withCache) runs.next()
      return { ok: true }
    })
    return app
  }
}

for (const order of ORDERS) {
  t.test(`${order}: a browser's request is answered from the cache, compressed, the same bytes as without the cache`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder(order, runs))
    const without = await plain('/catalogue')
    t.equal(without.headers['content-encoding'], BROWSER_ENCODING, 'without the cache the browser gets its best encoding')

    const miss = await cached('/catalogue')
    t.match(miss, { status: 200, cache: 'MISS', body: EXPECTED })
    t.equal(miss.headers['content-encoding'], BROWSER_ENCODING)
    t.match(miss.headers.vary, /accept-encoding/i)
    t.equal(miss.body, without.body, 'the same decoded bytes as without the cache')

    const hit = await cached('/catalogue')
    t.equal(hit.cache, 'HIT', 'HIT after MISS')
    t.equal(hit.status, 200)
    t.equal(hit.headers['content-encoding'], BROWSER_ENCODING)
    t.match(hit.headers.vary, /accept-encoding/i)
    t.equal(hit.body, without.body, 'the hit decodes to the same bytes')
    t.equal(runs.runs, 1, 'the handler ran once')
  })

  t.test(`${order}: each client gets an encoding it accepts, never another client's`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder(order, runs))
    const clients: Array<[string, string | undefined, string | undefined, string | undefined]> = [
      // [who, accept-encoding, the encoding it gets without the cache, and with it]
      ['a browser', 'gzip, deflate, br, zstd', BROWSER_ENCODING, BROWSER_ENCODING],
      ['brotli, no zstd', 'gzip, deflate, br', 'br', 'br'],
      ['an old client', 'gzip, deflate', 'gzip', 'gzip'],
      // The cache keeps br and gzip (docs/API.md, Compression): a deflate-only client gets the
      // identity bytes, which every client accepts unless it says identity;q=0.
      ['deflate only', 'deflate', 'deflate', undefined],
      ['curl', undefined, undefined, undefined],
      ['identity only', 'identity', undefined, undefined]
    ]
    for (const [who, accept, plainEncoding, encoding] of clients) {
      for (const round of ['first', 'second']) {
        const answer = await cached('/catalogue', { headers: { 'accept-encoding': accept } })
        const without = await plain('/catalogue', { headers: { 'accept-encoding': accept } })
        t.equal(answer.status, 200)
        t.equal(answer.headers['content-encoding'], encoding, `${who}, ${round} request: ${encoding ?? 'no'} content-encoding`)
        t.equal(without.headers['content-encoding'], plainEncoding, `${who}: ${plainEncoding ?? 'no'} content-encoding without the cache`)
        t.equal(answer.body, EXPECTED, `${who}, ${round} request: the catalogue`)
        t.equal(answer.body, without.body)
        // curl's answer carries no Vary, so it is stored in either order.
        if (round === 'second') t.equal(answer.cache, 'HIT', `${who}, second request: HIT`)
      }
    }
  })

  t.test(`${order}: a body under the compression threshold is stored and answered as before`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder(order, runs))
    const without = await plain('/small')
    t.match(await cached('/small'), { status: 200, cache: 'MISS', body: without.body })
    const hit = await cached('/small')
    t.match(hit, { status: 200, cache: 'HIT', body: without.body })
    t.equal(hit.headers['content-encoding'], undefined)
    t.equal(runs.runs, 1)
  })

  t.test(`${order}, ttl 'origin': the response's Vary selects one variant per encoding`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder(order, runs, { ttl: 'origin' }))
    for (const accept of ['gzip, deflate, br, zstd', 'gzip']) {
      const without = await plain('/catalogue', { headers: { 'accept-encoding': accept } })
      const miss = await cached('/catalogue', { headers: { 'accept-encoding': accept } })
      const hit = await cached('/catalogue', { headers: { 'accept-encoding': accept } })
      t.equal(hit.cache, 'HIT', `${accept}: HIT after ${String(miss.cache)}`)
      t.equal(hit.headers['content-encoding'], without.headers['content-encoding'])
      t.equal(hit.body, without.body)
      t.equal(hit.body, EXPECTED)
    }
  })
}

// @fastify/etag next to the cache (issue 26, point 4), registered as its README shows, before the
// cache and after it: misses and hits carry @fastify/etag's etag (strong, or weak with `weak: true`),
// and a browser's If-None-Match gets a 304 with no body, as without the cache.
import fastifyEtag from '@fastify/etag'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { BROWSER_ENCODING, CATALOGUE, counter, servePair, stableHeaders } from './helpers.js'

const EXPECTED = JSON.stringify(CATALOGUE)

/**
 * The etag of an answer in `coding`: the cache compresses what it stores, and each coding is its own
 * representation with its own etag (RFC 9110 section 8.8.3; docs/API.md, Compression).
 */
const coded = (etag: string, coding: string): string => etag.replace(/"$/, `-${coding}"`)
type Order = 'etag first' | 'cache first'

function builder (order: Order, weak: boolean, runs: { next: () => number }): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    // The README's form: `fastify.register(require('@fastify/etag'))`, or `{ weak: true }`.
    const options = weak ? { weak } : {}
    if (order === 'etag first') await app.register(fastifyEtag, options)
    if (withCache) await app.register(responseCache, { ttl: 60 })
    if (order === 'cache first') await app.register(fastifyEtag, options)
    app.get('/catalogue', { config: { cache: true } }, async () => {
      if (withCache) runs.next()
      return CATALOGUE
    })
    return app
  }
}

for (const order of ['etag first', 'cache first'] as Order[]) {
  for (const weak of [false, true]) {
    t.test(`${order}${weak ? ', weak' : ''}: @fastify/etag's etag on the miss and the hit, and its 304`, async (t) => {
      const runs = counter()
      const { cached, plain } = await servePair(t, builder(order, weak, runs))
      const without = await plain('/catalogue')
      const etag = without.headers.etag as string
      t.match(etag, weak ? /^W\/"[^"]+"$/ : /^"[^"]+"$/, 'the plugin\'s etag (sha1, base64)')

      // The browser gets the compressed bytes, under @fastify/etag's etag of the identity bytes made
      // the coding's own; a client without Accept-Encoding gets @fastify/etag's etag as it is.
      const browserEtag = coded(etag, BROWSER_ENCODING)
      const miss = await cached('/catalogue')
      t.match(miss, { status: 200, cache: 'MISS', body: EXPECTED })
      t.equal(miss.headers.etag, browserEtag, 'the miss carries @fastify/etag\'s etag, of its coding')
      const hit = await cached('/catalogue')
      t.match(hit, { status: 200, cache: 'HIT', body: without.body })
      t.equal(hit.headers.etag, browserEtag, 'the hit carries the same etag')
      t.same(stableHeaders(hit), stableHeaders(without))
      const identity = await cached('/catalogue', { headers: { 'accept-encoding': undefined } })
      t.match(identity, { status: 200, cache: 'HIT', body: EXPECTED })
      t.equal(identity.headers.etag, etag, 'identity: @fastify/etag\'s etag as it is')

      // A browser revalidating what it holds, in the forms a browser sends it.
      for (const [held, identityClient] of [[browserEtag, false], [etag, true]] as const) {
        for (const validator of [held, held.replace(/^W\//, ''), 'W/' + held.replace(/^W\//, '')]) {
          const headers = identityClient ? { 'if-none-match': validator, 'accept-encoding': undefined } : { 'if-none-match': validator }
          const notModified = await cached('/catalogue', { headers })
          if (identityClient) t.equal((await plain('/catalogue', { headers })).status, 304)
          t.match(notModified, { status: 304, cache: 'HIT', body: '' }, `If-None-Match: ${validator}: 304 from the entry`)
          t.equal(notModified.headers.etag, held)
        }
      }
      const changed = await cached('/catalogue', { headers: { 'if-none-match': '"something-else"' } })
      t.match(changed, { status: 200, cache: 'HIT', body: EXPECTED }, 'another etag: the whole entry')
      t.equal(runs.runs, 1)
    })
  }

  t.test(`${order}: a first request with If-None-Match gets @fastify/etag's 304, and nothing is stored from it`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder(order, false, runs))
    const etag = (await plain('/catalogue')).headers.etag as string
    const first = await cached('/catalogue', { headers: { 'if-none-match': etag } })
    t.match(first, { status: 304, cache: 'MISS', body: '' })
    t.equal(first.headers.etag, etag)
    const full = await cached('/catalogue')
    t.match(full, { status: 200, cache: 'MISS', body: EXPECTED }, 'the 304 was not stored')
    t.match(await cached('/catalogue'), { status: 200, cache: 'HIT', body: EXPECTED })
    t.equal(runs.runs, 2)
  })
}

// @fastify/cors next to the cache (issue 26, point 4), registered as its README shows: with no
// options (`*`), reflecting every origin (`origin: true`) and with a list of origins. Each origin gets
// its own right access-control-allow-origin (or none) on hits as on misses, preflights are cors's
// own, and the bytes are those of the app without the cache.
import fastifyCors, { type FastifyCorsOptions } from '@fastify/cors'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { CATALOGUE, counter, servePair, stableHeaders, varyOf } from './helpers.js'

// A reflected origin comes with `Vary: Origin`, which the route does not key: stored as one variant
// per Origin value (before issue 26, never stored in the default mode).

const APP = 'https://shop.example'
const PARTNER = 'https://partner.example'
const EVIL = 'https://evil.example'
const EXPECTED = JSON.stringify(CATALOGUE)

type Order = 'cors first' | 'cache first'

function builder (cors: FastifyCorsOptions | undefined, runs: { next: () => number }, order: Order = 'cors first'): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    // The README's form: `await fastify.register(cors, { /* options */ })`.
    if (order === 'cors first') await app.register(fastifyCors, cors ?? {})
    if (withCache) await app.register(responseCache, { ttl: 60 })
    if (order === 'cache first') await app.register(fastifyCors, cors ?? {})
    app.get('/catalogue', { config: { cache: true } }, async () => {
      if (withCache) runs.next()
      return CATALOGUE
    })
    return app
  }
}

const from = (origin: string | undefined): { headers: Record<string, string | undefined> } => ({ headers: { origin, referer: origin === undefined ? undefined : origin + '/' } })

t.test('no options (`*`): HIT after MISS, access-control-allow-origin: * on every answer', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, builder(undefined, runs))
  for (const [i, origin] of [APP, APP, PARTNER, undefined].entries()) {
    const answer = await cached('/catalogue', from(origin))
    const without = await plain('/catalogue', from(origin))
    t.match(answer, { status: 200, cache: i === 0 ? 'MISS' : 'HIT', body: EXPECTED })
    t.equal(answer.body, without.body)
    t.equal(answer.headers['access-control-allow-origin'], '*')
    t.equal(varyOf(answer), varyOf(without))
  }
  t.equal(runs.runs, 1)
})

for (const order of ['cors first', 'cache first'] as Order[]) {
  t.test(`${order}, \`origin: true\` (reflection): HIT after MISS, each origin its own access-control-allow-origin`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder({ origin: true }, runs, order))
    const miss = await cached('/catalogue', from(APP))
    t.match(miss, { status: 200, cache: 'MISS', body: EXPECTED })
    t.equal(miss.headers['access-control-allow-origin'], APP)
    t.match(miss.headers.vary, /origin/i)

    const hit = await cached('/catalogue', from(APP))
    t.equal(hit.cache, 'HIT', 'the same origin again: HIT')
    t.equal(runs.runs, 1, 'the handler ran once')

    // Whatever is stored, every origin gets its own header (or none), as without the cache.
    for (const origin of [APP, PARTNER, EVIL, undefined, APP]) {
      const answer = await cached('/catalogue', from(origin))
      const without = await plain('/catalogue', from(origin))
      t.equal(answer.status, 200)
      t.equal(answer.body, without.body, `${origin ?? 'no origin'}: the same bytes`)
      t.equal(answer.headers['access-control-allow-origin'], origin, `${origin ?? 'no origin'}: its own access-control-allow-origin`)
      t.equal(answer.headers['access-control-allow-origin'], without.headers['access-control-allow-origin'])
      t.match(answer.headers.vary, /origin/i, 'Vary: Origin kept, for the browser\'s and any shared cache\'s sake')
    }
  })
}

t.test('a list of origins: listed origins get their own header on hits, others none', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, builder({ origin: [APP, PARTNER] }, runs))
  t.match(await cached('/catalogue', from(APP)), { status: 200, cache: 'MISS', headers: { 'access-control-allow-origin': APP } })
  const hit = await cached('/catalogue', from(APP))
  t.equal(hit.cache, 'HIT', 'the same origin again: HIT')
  t.equal(hit.headers['access-control-allow-origin'], APP)

  for (const origin of [PARTNER, EVIL, undefined, APP, PARTNER]) {
    const answer = await cached('/catalogue', from(origin))
    const without = await plain('/catalogue', from(origin))
    const allowed = origin === APP || origin === PARTNER ? origin : undefined
    t.equal(answer.status, 200)
    t.equal(answer.body, without.body, `${origin ?? 'no origin'}: the same bytes`)
    t.equal(answer.headers['access-control-allow-origin'], allowed, `${origin ?? 'no origin'}: ${allowed ?? 'no'} access-control-allow-origin`)
    t.same(stableHeaders(answer), stableHeaders(without), 'cors\'s headers as without the cache')
  }
  // A variant per value of Origin (docs/API.md, Vary from the response): the two listed, the one not
  // listed and none, each run once however often they come back.
  t.equal(runs.runs, 4, 'one run per Origin value')
})

t.test('preflight requests are cors\'s own, untouched by the cache', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, builder({ origin: [APP], methods: ['GET', 'POST'] }, runs))
  await cached('/catalogue', from(APP))
  const preflight = {
    method: 'OPTIONS',
    headers: { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-requested-with' }
  }
  const answer = await cached('/catalogue', preflight)
  const without = await plain('/catalogue', preflight)
  t.equal(answer.status, 204)
  t.equal(answer.cache, undefined, 'not a cached route')
  t.same(stableHeaders(answer), stableHeaders(without))
  t.equal(answer.headers['access-control-allow-methods'], 'GET, POST')
})

// @fastify/rate-limit next to the cache (issue 26, point 4), registered as its README shows (global,
// `max` and `timeWindow`), before the cache and after it: hits count against the limit, each answer
// carries this request's x-ratelimit-* headers, and the 429 comes as it comes without the cache.
import fastifyRateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { type Answer, CATALOGUE, counter, servePair, stableHeaders } from './helpers.js'

// Before issue 26, a hit carried the x-ratelimit-remaining stored with the miss instead of its own,
// in both orders: rate-limit's headers are now the request's own (docs/API.md, Per-request headers).

const MAX = 4
type Order = 'rate-limit first' | 'cache first'

function builder (order: Order, runs: { next: () => number }): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    // The README's form: `await fastify.register(import('@fastify/rate-limit'), { max: 100, timeWindow: '1 minute' })`.
    if (order === 'rate-limit first') await app.register(fastifyRateLimit, { max: MAX, timeWindow: '1 minute' })
    if (withCache) await app.register(responseCache, { ttl: 60 })
    if (order === 'cache first') await app.register(fastifyRateLimit, { max: MAX, timeWindow: '1 minute' })
    app.get('/catalogue', { config: { cache: true } }, async () => {
      if (withCache) runs.next()
      return CATALOGUE
    })
    app.get('/other', { config: { cache: true } }, async () => ({ other: true }))
    return app
  }
}

for (const order of ['rate-limit first', 'cache first'] as Order[]) {
  t.test(`${order}: hits count down x-ratelimit-remaining, then 429 as without the cache`, async (t) => {
    const runs = counter()
    const { cached, plain } = await servePair(t, builder(order, runs))
    const answers: Answer[] = []
    const withouts: Answer[] = []
    for (let i = 0; i <= MAX; i++) {
      answers.push(await cached('/catalogue'))
      withouts.push(await plain('/catalogue'))
    }
    const remaining = (list: typeof answers): Array<string | undefined> => list.map((answer) => answer.headers['x-ratelimit-remaining'])
    t.same(remaining(withouts), ['3', '2', '1', '0', '0'], 'without the cache: 3, 2, 1, 0, then the 429\'s 0')
    t.same(remaining(answers), remaining(withouts), 'with the cache: the same countdown, hits included')
    t.same(answers.map((answer) => answer.status), [200, 200, 200, 200, 429], 'hits count against the limit')
    t.same(answers.map((answer) => answer.cache).slice(0, MAX), ['MISS', 'HIT', 'HIT', 'HIT'])
    t.equal(runs.runs, 1)
    for (const [i, answer] of answers.entries()) {
      t.equal(answer.body, withouts[i].body, `request ${i + 1}: the same bytes as without the cache`)
      t.equal(answer.headers['x-ratelimit-limit'], String(MAX))
    }
    const refused = answers[MAX]
    t.match(JSON.parse(refused.body), { statusCode: 429, error: 'Too Many Requests' })
    t.equal(refused.headers['retry-after'], withouts[MAX].headers['retry-after'])
    t.same(stableHeaders(refused, 'x-ratelimit-reset', 'retry-after'), stableHeaders(withouts[MAX], 'x-ratelimit-reset', 'retry-after'), 'the 429\'s headers as without the cache')
  })

  t.test(`${order}: the limit covers every cached route, whatever their entries`, async (t) => {
    const runs = counter()
    const { cached } = await servePair(t, builder(order, runs))
    t.equal((await cached('/other')).cache, 'MISS')
    for (let i = 1; i < MAX; i++) t.equal((await cached('/catalogue')).status, 200)
    t.equal((await cached('/other')).status, 429, 'an entry exists, the limit is reached: 429')
    t.equal((await cached('/catalogue')).status, 429)
    t.equal(runs.runs, 1)
  })
}

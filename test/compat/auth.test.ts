// @fastify/auth and @fastify/jwt next to the cache (issue 26, point 4), registered as their READMEs
// show: callers with credentials get HIT after MISS and the bytes of the app without the cache;
// callers without them get the same 401 as without the cache while an entry exists (GET, HEAD and
// a validator alike). test/guards.test.ts covers the lookup stages in depth.
import fastifyAuth from '@fastify/auth'
import fastifyJwt from '@fastify/jwt'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type HookHandlerDoneFunction } from 'fastify'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { CATALOGUE, counter, servePair, stableHeaders } from './helpers.js'

declare module 'fastify' {
  interface FastifyInstance {
    verifyApiKey: (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
    verifyJWT: (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
  }
}

const KEYS = new Set(['key-alice', 'key-carol'])
const SECRET = 'a-secret-of-the-app-long-enough'
const EXPECTED = JSON.stringify(CATALOGUE)

function authBuilder (runs: { next: () => number }): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    if (withCache) await app.register(responseCache, { ttl: 60 })
    await app.register(fastifyJwt, { secret: SECRET })
    // The README's form: strategies as decorators, `fastify.auth([...])` as the route's preHandler, in after().
    app
      .decorate('verifyApiKey', function (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
        done(KEYS.has(String(request.headers['x-api-key'])) ? undefined : Object.assign(new Error('unknown API key'), { statusCode: 401 }))
      })
      .decorate('verifyJWT', function (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
        request.jwtVerify().then(() => { done() }, done)
      })
      .register(fastifyAuth)
      .after(() => {
        app.route({
          method: 'GET',
          url: '/catalogue',
          config: { cache: true },
          preHandler: app.auth([app.verifyApiKey, app.verifyJWT]),
          handler: async () => {
            if (withCache) runs.next()
            return CATALOGUE
          }
        })
      })
    return app
  }
}

t.test('@fastify/auth (its README\'s form): HIT after MISS for callers with a key; 401 without, while the entry exists', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, authBuilder(runs))
  const alice = { headers: { 'x-api-key': 'key-alice' } }
  const without = await plain('/catalogue', alice)
  const miss = await cached('/catalogue', alice)
  t.match(miss, { status: 200, cache: 'MISS', body: EXPECTED })
  const hit = await cached('/catalogue', { headers: { 'x-api-key': 'key-carol' } })
  t.match(hit, { status: 200, cache: 'HIT', body: without.body }, 'another caller with a key: HIT, the same bytes')
  t.same(stableHeaders(hit), stableHeaders(without))

  const forged = 'Bearer ' + (await jwtSigner('another-secret-entirely-long')).sign({ name: 'mallory' })
  const refusals: Array<[string, { method?: string, headers?: Record<string, string> }]> = [
    ['no credentials', {}],
    ['a wrong key', { headers: { 'x-api-key': 'key-mallory' } }],
    ['a forged token', { headers: { authorization: forged } }],
    ['HEAD without credentials', { method: 'HEAD' }],
    ['the entry\'s etag without credentials', { headers: { 'if-none-match': miss.headers.etag as string } }]
  ]
  for (const [who, init] of refusals) {
    const answer = await cached('/catalogue', init)
    const plainAnswer = await plain('/catalogue', init)
    t.equal(plainAnswer.status, 401, `${who}: 401 without the cache`)
    t.equal(answer.status, 401, `${who}: 401 while the entry exists`)
    t.equal(answer.body, plainAnswer.body, `${who}: the same refusal`)
    t.not(answer.cache, 'HIT')
  }

  // A browser app's bearer token: accepted by the other strategy; `authorization` is not keyed, so bypassed.
  const token = 'Bearer ' + (await jwtSigner()).sign({ name: 'bob' })
  const bob = await cached('/catalogue', { headers: { authorization: token } })
  t.match(bob, { status: 200, cache: 'BYPASS', body: EXPECTED })
  t.equal(runs.runs, 2)
})

/** Signs with the app's secret, as the app's login route does. */
async function jwtSigner (secret = SECRET): Promise<{ sign: (payload: object, options?: object) => string }> {
  const signer = Fastify()
  await signer.register(fastifyJwt, { secret })
  await signer.ready()
  return signer.jwt
}

t.test('@fastify/jwt with its README\'s global onRequest hook: a user\'s token keyed, no or a bad token 401 while the entry exists', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, async (withCache) => {
    const app = Fastify()
    if (withCache) await app.register(responseCache, { ttl: 60 })
    await app.register(fastifyJwt, { secret: SECRET })
    app.addHook('onRequest', async (request, reply) => {
      try {
        await request.jwtVerify()
      } catch (err) {
        await reply.send(err)
      }
    })
    // Per user: the route keys `authorization`.
    app.get('/me', { config: { cache: { vary: ['authorization'] } } }, async (request) => {
      if (withCache) runs.next()
      return { user: request.user, catalogue: CATALOGUE }
    })
    return app
  })
  const signer = await jwtSigner()
  const alice = { headers: { authorization: 'Bearer ' + signer.sign({ name: 'alice' }, { iat: 1_800_000_000 }) } }
  const bob = { headers: { authorization: 'Bearer ' + signer.sign({ name: 'bob' }, { iat: 1_800_000_000 }) } }

  const without = await plain('/me', alice)
  t.match(await cached('/me', alice), { status: 200, cache: 'MISS', body: without.body })
  const hit = await cached('/me', alice)
  t.match(hit, { status: 200, cache: 'HIT', body: without.body })
  t.same(stableHeaders(hit), stableHeaders(without))

  const forged = 'Bearer ' + (await jwtSigner('another-secret-entirely-long')).sign({ name: 'alice' })
  const expired = 'Bearer ' + signer.sign({ name: 'alice' }, { expiresIn: -10 })
  for (const [who, headers] of [['no token', {}], ['a forged token', { authorization: forged }], ['an expired token', { authorization: expired }], ['a bad header', { authorization: 'Bearer' }]] as const) {
    const answer = await cached('/me', { headers })
    const plainAnswer = await plain('/me', { headers })
    t.equal(answer.status, 401, `${who}: 401`)
    t.equal(answer.body, plainAnswer.body, `${who}: the same refusal as without the cache`)
  }
  const bobs = await cached('/me', bob)
  t.match(bobs, { status: 200, cache: 'MISS' }, 'another user: an entry of his own')
  t.match(JSON.parse(bobs.body), { user: { name: 'bob' } })
  t.equal(runs.runs, 2)
})

// @fastify/cookie with @fastify/session next to the cache (issue 26, point 4), registered as their
// READMEs show (`secure: false` over plain HTTP, as the README says): an answer that sets a cookie is
// never shared, a visitor's session cookie bypasses the cache or keys it, and a route that does not
// read the session is shared while each visitor keeps their own cookie.
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { CATALOGUE, counter, servePair, type Client } from './helpers.js'

declare module 'fastify' {
  interface Session {
    user?: string
  }
}

const SECRET = 'a secret with minimum length of 32 characters'
const EXPECTED = JSON.stringify(CATALOGUE)

function builder (session: { saveUninitialized?: boolean, rolling?: boolean }, runs: { next: () => number }): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    if (withCache) await app.register(responseCache, { ttl: 60 })
    // The README's form, with `secure: false` for plain HTTP.
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, cookie: { secure: false }, ...session })
    app.post('/login/:user', async (request) => {
      request.session.user = (request.params as { user: string }).user
      return { ok: true }
    })
    // Reads nothing of the session.
    app.get('/catalogue', { config: { cache: true } }, async () => {
      if (withCache) runs.next()
      return CATALOGUE
    })
    app.get('/catalogue-shared', { config: { cache: { ignoreCookies: true } } }, async () => {
      if (withCache) runs.next()
      return CATALOGUE
    })
    // The visitor's own page.
    app.get('/account', { config: { cache: true } }, async (request) => {
      if (withCache) runs.next()
      return { user: request.session.user ?? null }
    })
    app.get('/account-keyed', { config: { cache: { vary: ['cookie'] } } }, async (request) => {
      if (withCache) runs.next()
      return { user: request.session.user ?? null }
    })
    return app
  }
}

/** Logs `user` in: answers their cookie header (`sessionId=...`). */
async function login (client: Client, user: string): Promise<string> {
  const answer = await client(`/login/${user}`, { method: 'POST' })
  const cookie = answer.cookies.find((line) => line.startsWith('sessionId='))
  if (cookie === undefined) throw new Error('no session cookie')
  return cookie.split(';')[0]
}

const sessionIdOf = (cookies: string[]): string | undefined => cookies.find((line) => line.startsWith('sessionId='))?.split(';')[0]

t.test('the README\'s defaults (saveUninitialized): every new visitor gets a set-cookie of their own, never shared', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, builder({}, runs))
  const without = await plain('/catalogue')
  t.equal(without.cookies.length, 1, 'without the cache: a session cookie for the new visitor')
  const first = await cached('/catalogue')
  const second = await cached('/catalogue')
  for (const answer of [first, second]) {
    t.match(answer, { status: 200, cache: 'MISS', body: without.body }, 'an answer with set-cookie is not stored')
    t.equal(answer.cookies.length, 1)
  }
  t.not(sessionIdOf(first.cookies), sessionIdOf(second.cookies), 'each visitor their own session')
  t.equal(runs.runs, 2)
})

t.test('a visitor\'s session cookie bypasses the cache; a route keyed on `cookie` has an entry per session', async (t) => {
  const runs = counter()
  // rolling: false, saveUninitialized: false: an unchanged session sends no set-cookie.
  const { cached, plain } = await servePair(t, builder({ saveUninitialized: false, rolling: false }, runs))
  const alice = { headers: { cookie: await login(cached, 'alice') } }
  const bob = { headers: { cookie: await login(cached, 'bob') } }
  const plainAlice = { headers: { cookie: await login(plain, 'alice') } }

  t.match(await cached('/account'), { status: 200, cache: 'MISS', body: '{"user":null}' })
  t.match(await cached('/account'), { status: 200, cache: 'HIT', body: '{"user":null}' }, 'no session: shared')
  const aliceAccount = await cached('/account', alice)
  t.match(aliceAccount, { status: 200, cache: 'BYPASS', body: '{"user":"alice"}' }, 'alice\'s cookie: her own answer')
  t.equal(aliceAccount.body, (await plain('/account', plainAlice)).body)
  t.match(await cached('/account', bob), { status: 200, cache: 'BYPASS', body: '{"user":"bob"}' })

  t.match(await cached('/account-keyed', alice), { status: 200, cache: 'MISS', body: '{"user":"alice"}' })
  t.match(await cached('/account-keyed', bob), { status: 200, cache: 'MISS', body: '{"user":"bob"}' }, 'bob: his own entry')
  const aliceAgain = await cached('/account-keyed', alice)
  t.match(aliceAgain, { status: 200, cache: 'HIT', body: '{"user":"alice"}' }, 'alice: her entry')
  t.same(aliceAgain.cookies, [], 'no set-cookie on a hit')
  t.match(await cached('/account-keyed', bob), { status: 200, cache: 'HIT', body: '{"user":"bob"}' })
  t.match(await cached('/account-keyed'), { status: 200, cache: 'MISS', body: '{"user":null}' }, 'no cookie: an entry of its own')
  t.equal(runs.runs, 6)
})

t.test('rolling sessions (the default): a keyed route is never stored, since every answer sets the cookie again', async (t) => {
  const runs = counter()
  const { cached } = await servePair(t, builder({ saveUninitialized: false }, runs))
  const alice = { headers: { cookie: await login(cached, 'alice') } }
  for (let i = 0; i < 2; i++) {
    const answer = await cached('/account-keyed', alice)
    t.match(answer, { status: 200, cache: 'MISS', body: '{"user":"alice"}' })
    t.equal(sessionIdOf(answer.cookies), alice.headers.cookie, 'her own session cookie, rolled')
  }
  t.equal(runs.runs, 2)
})

t.test('`ignoreCookies` on a route that does not read the session: shared, and each visitor keeps their own cookie', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, builder({ saveUninitialized: false }, runs))
  const alice = { headers: { cookie: await login(cached, 'alice') } }
  const bob = { headers: { cookie: await login(cached, 'bob') } }
  const without = await plain('/catalogue-shared')

  t.match(await cached('/catalogue-shared'), { status: 200, cache: 'MISS', body: without.body })
  const anonymous = await cached('/catalogue-shared')
  t.match(anonymous, { status: 200, cache: 'HIT', body: EXPECTED })
  t.same(anonymous.cookies, [], 'a visitor without a session gets no cookie from the entry')
  for (const [who, visitor] of [['alice', alice], ['bob', bob]] as const) {
    const answer = await cached('/catalogue-shared', visitor)
    t.match(answer, { status: 200, cache: 'HIT', body: EXPECTED }, `${who}: HIT`)
    // @fastify/session rolls the visitor's own cookie on the hit: theirs, never another visitor's.
    t.equal(sessionIdOf(answer.cookies), visitor.headers.cookie, `${who}: only their own session cookie`)
  }
  t.equal(runs.runs, 1)
})

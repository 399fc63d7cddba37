// A cached answer is given only after every hook that could refuse the request has run (issue 24,
// point 1): auth plugins registered as their READMEs show, hooks written as apps write them, over
// real sockets. A caller without credentials gets 401 while the entry exists; another tenant gets
// its own entry; tenant and key functions see what the hooks set.
import fastifyAuth from '@fastify/auth'
import fastifyBasicAuth from '@fastify/basic-auth'
import fastifyJwt from '@fastify/jwt'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type HookHandlerDoneFunction } from 'fastify'
import t, { type Test } from 'tap'
import { request as send } from 'undici'
import responseCache from '../lib/index.js'
import { counter, logCapture } from './helpers/app.js'

declare module 'fastify' {
  interface FastifyInstance {
    verifyApiKey: (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
  interface FastifyRequest {
    account?: { name: string, tenant: string }
  }
}

/** API keys as an app keeps them: alice and carol work for acme, bob for globex. */
const ACCOUNTS: Record<string, { name: string, tenant: string }> = {
  'key-alice': { name: 'alice', tenant: 'acme' },
  'key-carol': { name: 'carol', tenant: 'acme' },
  'key-bob': { name: 'bob', tenant: 'globex' }
}

interface Answer { status: number, cache: string | undefined, body: string, etag: string | undefined }

/** Listens on a free port; answers a function that sends a request over a real socket. */
async function serve (t: Test, app: FastifyInstance): Promise<(path: string, init?: { method?: string, headers?: Record<string, string>, body?: string }) => Promise<Answer>> {
  t.teardown(async () => { await app.close() })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return async (path, init = {}) => {
    const response = await send(address + path, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body })
    const body = await response.body.text()
    const header = (name: string): string | undefined => response.headers[name] as string | undefined
    return { status: response.statusCode, cache: header('x-cache'), body, etag: header('etag') }
  }
}

/** The tenant is what the auth hook found, never a header a caller can send. */
const tenantFromAccount = { tenant: (request: FastifyRequest) => request.account?.tenant }

function accountOf (request: FastifyRequest): { name: string, tenant: string } | undefined {
  const key = request.headers['x-api-key']
  return typeof key === 'string' ? ACCOUNTS[key] : undefined
}

t.test('@fastify/auth in preHandler (its README\'s form): no key gets 401 while the entry exists, another tenant its own entry', async (t) => {
  const app = Fastify()
  const runs = counter()
  await app.register(responseCache, { ttl: 60, ...tenantFromAccount })
  app.decorate('verifyApiKey', function (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    request.account = accountOf(request)
    done(request.account === undefined ? Object.assign(new Error('unknown API key'), { statusCode: 401 }) : undefined)
  })
  await app.register(fastifyAuth)
  app.after(() => {
    app.route({
      method: 'GET',
      url: '/reports',
      config: { cache: true },
      preHandler: app.auth([app.verifyApiKey]),
      handler: async (request) => ({ tenant: request.account?.tenant, run: runs.next() })
    })
  })
  const get = await serve(t, app)

  const alice = await get('/reports', { headers: { 'x-api-key': 'key-alice' } })
  t.match(alice, { status: 200, cache: 'MISS' })
  t.match(await get('/reports', { headers: { 'x-api-key': 'key-carol' } }), { status: 200, cache: 'HIT', body: alice.body }, 'same tenant: shared')
  t.match(await get('/reports'), { status: 401 }, 'no key: refused although the entry exists')
  t.match(await get('/reports', { headers: { 'x-api-key': 'stolen' } }), { status: 401 }, 'a wrong key: refused')
  t.match(await get('/reports', { method: 'HEAD' }), { status: 401 }, 'HEAD without a key: refused')
  t.match(await get('/reports', { headers: { 'if-none-match': alice.etag as string } }), { status: 401 }, 'a validator without a key: 401, not 304')
  const bob = await get('/reports', { headers: { 'x-api-key': 'key-bob' } })
  t.match(bob, { status: 200, cache: 'MISS' }, 'another tenant: its own entry')
  t.equal(JSON.parse(bob.body).tenant, 'globex')
  t.equal(runs.runs, 2)
  t.equal(app.cache.stats().routes['GET /reports'].lookupStage, 'preHandler')
})

t.test('@fastify/jwt in onRequest (its README\'s form): the lookup stays in onRequest, after it; the tenant comes from the token', async (t) => {
  const app = Fastify()
  const runs = counter()
  await app.register(responseCache, { ttl: 60, tenant: (request) => (request.user as { tenant?: string } | undefined)?.tenant })
  await app.register(fastifyJwt, { secret: 'a-secret-of-the-app' })
  app.decorate('authenticate', async function (request: FastifyRequest, reply: FastifyReply) {
    try {
      await request.jwtVerify()
    } catch (err) {
      reply.send(err)
    }
  })
  // A token per user: the route keys `authorization` so that a token may be cached at all.
  app.get('/me', { onRequest: [app.authenticate], config: { cache: { vary: ['authorization'] } } }, async (request) => ({ user: request.user, run: runs.next() }))
  const get = await serve(t, app)
  const alice = 'Bearer ' + app.jwt.sign({ name: 'alice', tenant: 'acme' })
  const bob = 'Bearer ' + app.jwt.sign({ name: 'bob', tenant: 'globex' })

  t.match(await get('/me', { headers: { authorization: alice } }), { status: 200, cache: 'MISS' })
  t.match(await get('/me', { headers: { authorization: alice } }), { status: 200, cache: 'HIT' })
  t.match(await get('/me'), { status: 401 }, 'no token')
  t.match(await get('/me', { headers: { authorization: alice.slice(0, -2) + 'xx' } }), { status: 401 }, 'a forged signature')
  const second = await get('/me', { headers: { authorization: bob } })
  t.match(second, { status: 200, cache: 'MISS' })
  t.match(JSON.parse(second.body), { user: { name: 'bob' } })
  t.equal(runs.runs, 2)
  t.equal(app.cache.stats().routes['GET /me'].lookupStage, 'onRequest')
})

t.test('@fastify/basic-auth as an app-level onRequest hook (its README\'s form): wrong or no credentials get 401 while the entry exists', async (t) => {
  const app = Fastify()
  const runs = counter()
  await app.register(responseCache, { ttl: 60 })
  await app.register(fastifyBasicAuth, {
    validate: async (username: string, password: string) => {
      if (username !== 'admin' || password !== 'hunter2') throw new Error('Winter is coming')
    },
    authenticate: true
  })
  app.after(() => {
    app.addHook('onRequest', app.basicAuth)
    app.get('/admin', { config: { cache: { vary: ['authorization'] } } }, async () => ({ run: runs.next() }))
  })
  const get = await serve(t, app)
  const good = 'Basic ' + Buffer.from('admin:hunter2').toString('base64')
  t.match(await get('/admin', { headers: { authorization: good } }), { status: 200, cache: 'MISS' })
  t.match(await get('/admin', { headers: { authorization: good } }), { status: 200, cache: 'HIT' })
  t.match(await get('/admin'), { status: 401 })
  t.match(await get('/admin', { headers: { authorization: 'Basic ' + Buffer.from('admin:guess').toString('base64') } }), { status: 401 })
  t.equal(runs.runs, 1)
})

t.test('a preValidation hook that resolves the tenant: GET and POST (raw bytes or parsed) are answered after it, per tenant', async (t) => {
  const app = Fastify()
  const runs = counter()
  await app.register(responseCache, { ttl: 60, ...tenantFromAccount })
  app.addHook('preValidation', async (request, reply) => {
    request.account = accountOf(request)
    if (request.account === undefined) await reply.code(401).send({ error: 'unknown API key' })
  })
  app.get('/usage', { config: { cache: true } }, async (request) => ({ tenant: request.account?.tenant, run: runs.next() }))
  app.post('/search', { config: { cache: true } }, async (request) => ({ tenant: request.account?.tenant, body: request.body, run: runs.next() }))
  const get = await serve(t, app)
  const json = { 'content-type': 'application/json' }
  const bytes = '{"q":"reports"}'

  t.match(await get('/usage', { headers: { 'x-api-key': 'key-alice' } }), { status: 200, cache: 'MISS' })
  t.match(await get('/usage'), { status: 401 })
  t.match(await get('/usage', { headers: { 'x-api-key': 'key-bob' } }), { status: 200, cache: 'MISS' })

  const alice = await get('/search', { method: 'POST', headers: { ...json, 'x-api-key': 'key-alice' }, body: bytes })
  t.match(alice, { status: 200, cache: 'MISS' })
  t.match(await get('/search', { method: 'POST', headers: { ...json, 'x-api-key': 'key-alice' }, body: bytes }), { status: 200, cache: 'HIT' })
  t.match(await get('/search', { method: 'POST', headers: json, body: bytes }), { status: 401 }, 'alice\'s exact bytes without a key')
  const bob = await get('/search', { method: 'POST', headers: { ...json, 'x-api-key': 'key-bob' }, body: bytes })
  t.match(bob, { status: 200, cache: 'MISS' }, 'bob\'s own entry, not acme\'s')
  t.equal(JSON.parse(bob.body).tenant, 'globex')
  t.equal(runs.runs, 4)
  t.match(app.cache.stats().routes, { 'GET /usage': { lookupStage: 'preValidation' }, 'POST /search': { lookupStage: 'preValidation' } })
})

t.test('a preValidation hook that sets the body\'s owner: the key is the body it made, never another caller\'s', async (t) => {
  const app = Fastify()
  await app.register(responseCache, { ttl: 60 })
  app.post('/notes', {
    config: { cache: true },
    preValidation: async (request, reply) => {
      const account = accountOf(request)
      if (account === undefined) return await reply.code(401).send()
      ;(request.body as { owner?: string }).owner = account.name
    }
  }, async (request) => request.body)
  const get = await serve(t, app)
  const post = async (key: string): Promise<Answer> => await get('/notes', { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: '{"text":"hi"}' })
  t.match(await post('key-alice'), { cache: 'MISS', body: '{"text":"hi","owner":"alice"}' })
  t.match(await post('key-alice'), { cache: 'HIT', body: '{"text":"hi","owner":"alice"}' })
  t.match(await post('key-bob'), { cache: 'MISS', body: '{"text":"hi","owner":"bob"}' })
  t.match(await post('nobody'), { status: 401 })
})

t.test('an app-level preHandler guard runs before every hit, stale answer and 304', async (t) => {
  const app = Fastify()
  const runs = counter()
  await app.register(responseCache, { ttl: 60 })
  app.addHook('preHandler', async (request, reply) => {
    if (accountOf(request) === undefined) await reply.code(401).send()
  })
  app.get('/catalogue', { config: { cache: true } }, async () => ({ run: runs.next() }))
  app.get('/prices', { config: { cache: { ttl: 0.05, staleWhileRevalidate: 60 } } }, async () => ({ run: runs.next() }))
  const get = await serve(t, app)
  const first = await get('/catalogue', { headers: { 'x-api-key': 'key-alice' } })
  t.match(first, { status: 200, cache: 'MISS' })
  t.match(await get('/catalogue', { headers: { 'x-api-key': 'key-bob' } }), { status: 200, cache: 'HIT' })
  t.match(await get('/catalogue'), { status: 401 })
  t.match(await get('/catalogue', { headers: { 'if-none-match': first.etag as string } }), { status: 401 })
  t.match(await get('/catalogue', { headers: { 'if-none-match': first.etag as string, 'x-api-key': 'key-bob' } }), { status: 304 })

  // A stale answer is a cached answer too.
  t.match(await get('/prices', { headers: { 'x-api-key': 'key-alice' } }), { status: 200, cache: 'MISS' })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(await get('/prices'), { status: 401 }, 'stale, no key')
  t.match(await get('/prices', { headers: { 'x-api-key': 'key-bob' } }), { status: 200, cache: 'STALE' })
})

t.test('a guard added after the cache\'s own preHandler hook (by a plugin registered later): never served from the cache, said once', async (t) => {
  const { lines, logger } = logCapture('warn')
  const app = Fastify({ logger })
  const runs = counter()
  await app.register(responseCache, { ttl: 60 })
  // A plugin that adds its guard to every route it sees, registered after the cache.
  app.addHook('onRoute', (route) => {
    const guard = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      if (accountOf(request) === undefined) await reply.code(401).send()
    }
    route.preHandler = [...(Array.isArray(route.preHandler) ? route.preHandler : route.preHandler === undefined ? [] : [route.preHandler]), guard]
  })
  app.get('/late', { config: { cache: true } }, async () => ({ run: runs.next() }))
  const get = await serve(t, app)
  t.match(await get('/late', { headers: { 'x-api-key': 'key-alice' } }), { status: 200, cache: 'BYPASS' })
  t.match(await get('/late', { headers: { 'x-api-key': 'key-alice' } }), { status: 200, cache: 'BYPASS' })
  t.match(await get('/late'), { status: 401 })
  t.equal(runs.runs, 2)
  t.equal(lines.filter((line) => String(line.msg).includes('never served from the cache')).length, 1)
  t.equal(app.cache.stats().routes['GET /late'].lookupStage, 'none')
})

t.test('routes without guards keep the early lookups: GET in onRequest, POST from its raw bytes', async (t) => {
  const app = Fastify()
  let parsed = 0
  await app.register(responseCache, { ttl: 60 })
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    parsed++
    done(null, JSON.parse(body as string))
  })
  app.get('/open', { config: { cache: true } }, async () => 'open')
  app.post('/find', { config: { cache: true } }, async (request) => request.body)
  const get = await serve(t, app)
  await get('/open')
  t.match(await get('/open'), { cache: 'HIT' })
  const post = async (): Promise<Answer> => await get('/find', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
  t.match(await post(), { cache: 'MISS' })
  t.match(await post(), { cache: 'HIT' })
  t.equal(parsed, 1, 'the second POST was answered from its raw bytes, unparsed')
  t.match(app.cache.stats().routes, { 'GET /open': { lookupStage: 'onRequest' }, 'POST /find': { lookupStage: 'preParsing' } })
})

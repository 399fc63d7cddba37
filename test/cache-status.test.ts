// Cache-Status (RFC 9211, issue 28 point 1): every answer of a cached route says what the cache did
// with it, as a member after those of the caches before it. Parsed with structured-headers, over real
// sockets (undici); the reverse-proxy example in front of a node:http origin that sends its own.
import Fastify, { type FastifyInstance } from 'fastify'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { parseList, Token, type List } from 'structured-headers'
import t, { type Test } from 'tap'
import { request as send } from 'undici'
import { build } from '../examples/reverse-proxy/app.js'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { appendCacheStatus, cacheStatusMember, hitMember, serializeCacheStatusName } from '../lib/rules/cache-status.js'
import { deferred, eventually, until } from './helpers/events.js'

interface Answer { status: number, body: string, headers: Record<string, string | string[] | undefined> }
type Get = (path: string, init?: { method?: string, headers?: Record<string, string> }) => Promise<Answer>

async function serve (t: Test, app: FastifyInstance): Promise<Get> {
  t.teardown(async () => { await app.close() })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return async (path, init = {}) => {
    const response = await send(address + path, { method: (init.method ?? 'GET') as 'GET', headers: init.headers })
    return { status: response.statusCode, body: await response.body.text(), headers: response.headers }
  }
}

async function cached (t: Test, options: ResponseCacheOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(responseCache, options)
  return app
}

/** Each member as its name and parameters, parameters as plain values (tokens as strings). */
function members (answer: Answer): Array<{ name: string, params: Record<string, unknown> }> {
  const field = answer.headers['cache-status']
  if (typeof field !== 'string') return []
  return (parseList(field) as List).map(([name, params]) => ({
    name: String(name instanceof Token ? name.toString() : name),
    params: Object.fromEntries([...params].map(([key, value]) => [key, value instanceof Token ? value.toString() : value]))
  }))
}

/** The plugin's own member: the last. */
function ours (answer: Answer): Record<string, unknown> {
  const all = members(answer)
  const last = all[all.length - 1]
  if (last?.name !== 'fastify-response-cache') throw new Error(`no member of the plugin's last in ${String(answer.headers['cache-status'])}`)
  return last.params
}

t.test('the serializer: members parse back, a hit is the same string the List serializer makes, order kept', async (t) => {
  const name = serializeCacheStatusName('fastify-response-cache')
  t.equal(name, 'fastify-response-cache', 'a token is sent bare')
  t.equal(serializeCacheStatusName('my cache'), '"my cache"', 'a name that is no token is a String')
  t.equal(hitMember(name, 42), cacheStatusMember(name, { hit: true, ttl: 42 }))
  t.equal(hitMember(name, -3), cacheStatusMember(name, { hit: true, ttl: -3 }))
  const member = cacheStatusMember(serializeCacheStatusName('my cache'), { fwd: 'uri-miss', fwdStatus: 200, stored: false, detail: 'too-large' })
  t.equal(member, '"my cache";fwd=uri-miss;fwd-status=200;detail=too-large')
  const quoted = cacheStatusMember(name, { fwd: 'bypass', fwdStatus: 200, detail: 'has "quotes" \\ and spaces' })
  const [[, params]] = parseList(quoted)
  t.equal(params.get('detail'), 'has "quotes" \\ and spaces', 'a detail that is no token is a String, escaped')
  t.equal(cacheStatusMember(name, { fwd: 'uri-miss', detail: 'caf\u00e9' }), 'fastify-response-cache;fwd=uri-miss', 'a detail that is not printable ASCII is left out')
  t.equal(appendCacheStatus('Origin; hit', 'me; fwd=uri-miss'), 'Origin; hit, me; fwd=uri-miss')
  t.equal(appendCacheStatus(['A; hit', 'B; fwd=stale'], 'me; hit'), 'A; hit, B; fwd=stale, me; hit', 'several fields are one list, in order')
  t.equal(appendCacheStatus(undefined, 'me; hit'), 'me; hit')
})

t.test('MISS stored, HIT with ttl, a 304 hit, HEAD hit and HEAD miss; x-cache kept', async (t) => {
  const app = await cached(t)
  app.get('/r', { config: { cache: { ttl: 60 } } }, async () => ({ ok: true }))
  app.get('/h', { config: { cache: { ttl: 60 } } }, async () => ({ ok: true }))
  const get = await serve(t, app)
  const miss = await get('/r')
  t.same(ours(miss), { fwd: 'uri-miss', 'fwd-status': 200, stored: true })
  t.equal(miss.headers['x-cache'], 'MISS')
  const hit = await get('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  const params = ours(hit)
  t.equal(params.hit, true)
  t.ok(params.ttl === 59 || params.ttl === 60, `ttl is the freshness left: ${String(params.ttl)}`)
  t.same(Object.keys(params), ['hit', 'ttl'])
  const notModified = await get('/r', { headers: { 'if-none-match': hit.headers.etag as string } })
  t.equal(notModified.status, 304)
  t.equal(ours(notModified).hit, true, 'a 304 from the entry is a hit')
  const head = await get('/r', { method: 'HEAD' })
  t.equal(ours(head).hit, true, 'HEAD reads the GET entry')
  const headMiss = await get('/h', { method: 'HEAD' })
  t.same(ours(headMiss), { fwd: 'uri-miss', 'fwd-status': 200 }, 'a HEAD miss stores nothing')
  t.equal(members(hit).length, 1, 'the member of the miss was not stored with the entry')
})

t.test('not stored: the reason in detail; BYPASS: fwd=bypass (method for an override) and the reason', async (t) => {
  const app = await cached(t)
  app.get('/cookie', { config: { cache: true } }, async (_request, reply) => {
    reply.header('set-cookie', 'a=1')
    return { ok: true }
  })
  app.get('/r', { config: { cache: true } }, async () => ({ ok: true }))
  const get = await serve(t, app)
  t.same(ours(await get('/cookie')), { fwd: 'uri-miss', 'fwd-status': 200, detail: 'set-cookie' })
  const bypass = await get('/r', { headers: { authorization: 'Bearer x' } })
  t.equal(bypass.headers['x-cache'], 'BYPASS')
  t.same(ours(bypass), { fwd: 'bypass', 'fwd-status': 200, detail: 'authorization' })
  t.same(ours(await get('/r', { headers: { 'x-http-method-override': 'DELETE' } })), { fwd: 'method', 'fwd-status': 200, detail: 'method-override' })
})

t.test('STALE is a hit with a negative ttl; stale-if-error goes forward as stale with the failed status', async (t) => {
  const app = await cached(t)
  let fail = false
  app.get('/swr', { config: { cache: { ttl: 1, staleWhileRevalidate: 60 } } }, async () => ({ ok: true }))
  app.get('/sie', { config: { cache: { ttl: 1, staleIfError: 60 } } }, async (_request, reply) => {
    if (fail) return await reply.code(500).send({ failed: true })
    return { ok: true }
  })
  app.get('/expired', { config: { cache: { ttl: 1, staleIfError: 60 } } }, async () => ({ ok: true }))
  const get = await serve(t, app)
  await get('/swr')
  await get('/sie')
  await get('/expired')
  const since = Date.now()
  await until(since, 2000)
  const stale = await get('/swr')
  t.equal(stale.headers['x-cache'], 'STALE')
  const params = ours(stale)
  t.equal(params.hit, true)
  t.ok(typeof params.ttl === 'number' && params.ttl < 0, `negative ttl: ${String(params.ttl)}`)
  t.same(ours(await get('/expired')), { fwd: 'stale', 'fwd-status': 200, stored: true }, 'a stale entry, not served, makes the request go forward')
  fail = true
  const saved = await get('/sie')
  t.equal(saved.status, 200)
  t.equal(saved.headers['x-cache'], 'STALE')
  const forward = ours(saved)
  t.equal(forward.fwd, 'stale')
  t.equal(forward['fwd-status'], 500)
  t.ok(typeof forward.ttl === 'number' && forward.ttl < 0)
  t.equal(members(saved).length, 1)
})

t.test('a client no-cache (honorClientNoCache) goes forward as fwd=request', async (t) => {
  const app = await cached(t, { honorClientNoCache: true })
  app.get('/r', { config: { cache: true } }, async () => ({ ok: true }))
  const get = await serve(t, app)
  await get('/r')
  t.same(ours(await get('/r', { headers: { 'cache-control': 'no-cache' } })), { fwd: 'request', 'fwd-status': 200, stored: true })
})

t.test('coalesced: the second of two concurrent requests is collapsed onto the first one\'s run', async (t) => {
  const app = await cached(t)
  const gate = deferred()
  let runs = 0
  let arrived = 0
  app.addHook('onRequest', async () => { arrived++ })
  app.get('/slow', { config: { cache: true } }, async () => {
    runs++
    await gate.promise
    return { ok: true }
  })
  const get = await serve(t, app)
  const first = get('/slow')
  t.ok(await eventually(() => runs === 1))
  const second = get('/slow')
  // The second has come in: its lookup (the memory store answers in place) finds the first one running.
  t.ok(await eventually(() => arrived === 2))
  await new Promise((resolve) => setImmediate(resolve))
  gate.resolve()
  const [a, b] = await Promise.all([first, second])
  t.equal(runs, 1)
  t.same(ours(a), { fwd: 'uri-miss', 'fwd-status': 200, stored: true })
  t.same(ours(b), { fwd: 'uri-miss', 'fwd-status': 200, collapsed: true })
})

t.test('origin mode: a stale entry revalidated goes forward as stale, 304, stored; the origin\'s own member kept first', async (t) => {
  const app = await cached(t, { ttl: 'origin' })
  let conditional = 0
  app.get('/doc', { config: { cache: true } }, async (request, reply) => {
    reply.header('cache-status', 'OriginCache; hit; ttl=5')
    reply.header('etag', '"v1"')
    reply.header('cache-control', 'no-cache')
    if (request.headers['if-none-match'] === '"v1"') {
      conditional++
      return await reply.code(304).send()
    }
    return 'the document'
  })
  const get = await serve(t, app)
  const miss = await get('/doc')
  t.same(members(miss).map((member) => member.name), ['OriginCache', 'fastify-response-cache'], "the origin's first, ours last")
  t.same(ours(miss), { fwd: 'uri-miss', 'fwd-status': 200, stored: true })
  const again = await get('/doc')
  t.equal(conditional, 1)
  t.equal(again.headers['x-cache'], 'REVALIDATED')
  t.equal(again.body, 'the document')
  const params = ours(again)
  t.same({ fwd: params.fwd, status: params['fwd-status'], stored: params.stored }, { fwd: 'stale', status: 304, stored: true })
  t.same(members(again).map((member) => member.name), ['OriginCache', 'fastify-response-cache'], 'the stored entry holds the origin\'s member only')
})

t.test('variants: a marker found, but not this request\'s variant, is a vary-miss', async (t) => {
  const app = await cached(t)
  app.get('/v', { config: { cache: true } }, async (request, reply) => {
    reply.header('vary', 'accept-language')
    return { language: request.headers['accept-language'] }
  })
  const get = await serve(t, app)
  t.equal(ours(await get('/v', { headers: { 'accept-language': 'en' } })).fwd, 'uri-miss')
  const other = await get('/v', { headers: { 'accept-language': 'fr' } })
  t.same(ours(other), { fwd: 'vary-miss', 'fwd-status': 200, stored: true })
  t.equal(ours(await get('/v', { headers: { 'accept-language': 'fr' } })).hit, true)
})

t.test('a streamed response with an upstream member: ours is sent, never stored', async (t) => {
  const app = await cached(t)
  app.get('/s', { config: { cache: true } }, async (_request, reply) => {
    reply.header('cache-status', 'Upstream; fwd=uri-miss')
    reply.header('content-type', 'text/plain')
    return Readable.from(['a', 'b'])
  })
  app.get('/plain', { config: { cache: true } }, async (_request, reply) => {
    reply.header('content-type', 'text/plain')
    return Readable.from(['a', 'b'])
  })
  const get = await serve(t, app)
  await get('/plain')
  let plain: Answer | undefined
  t.ok(await eventually(async () => (plain = await get('/plain')).headers['x-cache'] === 'HIT'))
  t.same(members(plain as Answer).map((member) => member.name), ['fastify-response-cache'], 'a stream with no member of its own stores none')
  const miss = await get('/s')
  t.same(members(miss).map((member) => member.name), ['Upstream', 'fastify-response-cache'])
  t.same(ours(miss), { fwd: 'uri-miss', 'fwd-status': 200 }, 'stored or not is known at the end of the stream')
  let hit: Answer | undefined
  t.ok(await eventually(async () => (hit = await get('/s')).headers['x-cache'] === 'HIT'))
  t.same(members(hit as Answer).map((member) => [member.name, member.params]), [['Upstream', { fwd: 'uri-miss' }], ['fastify-response-cache', { hit: true, ttl: (members(hit as Answer)[1].params.ttl) }]])
})

t.test('the reverse-proxy example appends its member after the origin\'s', async (t) => {
  const origin = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', 'cache-status': 'OriginCDN; hit; ttl=120' }).end('page')
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => { origin.close() })
  const app = await build({ upstream: `http://127.0.0.1:${(origin.address() as AddressInfo).port}` })
  const get = await serve(t, app)
  const miss = await get('/page')
  t.same(members(miss).map((member) => member.name), ['OriginCDN', 'fastify-response-cache'])
  t.equal(ours(miss).fwd, 'uri-miss')
  let hit: Answer | undefined
  t.ok(await eventually(async () => (hit = await get('/page')).headers['x-cache'] === 'HIT'))
  const all = members(hit as Answer)
  t.same(all.map((member) => member.name), ['OriginCDN', 'fastify-response-cache'])
  t.same(all[0].params, { hit: true, ttl: 120 }, "the origin's member as it sent it")
  t.equal(all[1].params.hit, true)
})

t.test('options: a name of one\'s own, Cache-Status off, x-cache off; checked at ready()', async (t) => {
  const named = await cached(t, { cacheStatus: { name: 'edge 1' } })
  named.get('/r', { config: { cache: true } }, async () => ({ ok: true }))
  const viaNamed = await serve(t, named)
  t.equal(members(await viaNamed('/r'))[0].name, 'edge 1')
  const off = await cached(t, { cacheStatus: false, xCache: false })
  off.get('/r', { config: { cache: true } }, async () => ({ ok: true }))
  const viaOff = await serve(t, off)
  for (const answer of [await viaOff('/r'), await viaOff('/r'), await viaOff('/r', { headers: { authorization: 'x' } })]) {
    t.equal(answer.headers['cache-status'], undefined)
    t.equal(answer.headers['x-cache'], undefined)
  }
  for (const [options, message] of [
    [{ cacheStatus: { name: '' } }, /cacheStatus\.name/],
    [{ cacheStatus: { name: 3 } }, /cacheStatus\.name/],
    [{ cacheStatus: { other: 'x' } }, /cacheStatus\.other/],
    [{ cacheStatus: 'yes' }, /cacheStatus/],
    [{ xCache: 'no' }, /xCache/]
  ] as const) {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await t.rejects(async () => {
      await app.register(responseCache, options as unknown as ResponseCacheOptions)
      await app.ready()
    }, message, JSON.stringify(options))
  }
})

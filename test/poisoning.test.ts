// Modelled on published web cache poisoning and deception research: an attacker's request must never
// change what an ordinary request to the same key gets, and must never get something stored that
// belongs to someone else.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fc from 'fast-check'
import { request as httpRequest } from 'node:http'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { storeKinds } from './helpers/stores.js'

/** A page that reflects everything an attacker might try to slip in. */
function reflecting (app: FastifyInstance, cache: boolean): void {
  app.get('/page/:id', { config: { cache } }, async (request) => ({
    link: `${request.protocol}://${request.host}${request.url.split('?')[0]}`,
    method: request.method,
    params: request.params,
    query: request.query
  }))
  app.get('/plain', async () => ({ private: 'not for caching' }))
}

async function pair (t: Tap, options: ResponseCacheOptions, server: FastifyServerOptions = {}): Promise<[FastifyInstance, FastifyInstance]> {
  const cached = Fastify(server)
  const plain = Fastify(server)
  t.teardown(async () => { await Promise.all([cached.close(), plain.close()]) })
  await cached.register(responseCache, options)
  reflecting(cached, true)
  reflecting(plain, false)
  await Promise.all([cached.ready(), plain.ready()])
  return [cached, plain]
}
type Tap = import('tap').Test

// X-HTTP-Method-Override and its kin are not among them: such requests bypass the cache (request-errors.test.ts).
const unkeyedHeaders: Array<Record<string, string>> = [
  { 'x-forwarded-host': 'evil.example' },
  { 'x-forwarded-proto': 'https' },
  { 'x-forwarded-for': '6.6.6.6' },
  { 'x-original-url': '/admin' },
  { 'x-rewrite-url': '/admin' },
  { 'x-host': 'evil.example' },
  { forwarded: 'host=evil.example;proto=https' }
]

for (const [kind, options] of await storeKinds(t)) {
  t.test(`${kind}: unkeyed headers cannot make a stored entry differ from what an ordinary request gets`, async (t) => {
    const [cached, plain] = await pair(t, options())
    const ordinary = (await plain.inject('/page/1?x=1')).body
    for (const headers of unkeyedHeaders) {
      await cached.cache.clear()
      const attack = await cached.inject({ url: '/page/1?x=1', headers })
      t.equal(attack.body, ordinary, `${Object.keys(headers)[0]} changes nothing without trustProxy`)
      const victim = await cached.inject('/page/1?x=1')
      t.equal(victim.headers['x-cache'], 'HIT')
      t.equal(victim.body, ordinary)
    }
  })

  t.test(`${kind}: with trustProxy, forwarded host and protocol are keyed, so they cannot poison other hosts`, async (t) => {
    const [cached, plain] = await pair(t, options(), { trustProxy: true })
    const attack = await cached.inject({ url: '/page/1', headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })
    t.match(attack.body, /https:\/\/evil\.example/)
    const victim = await cached.inject('/page/1')
    t.equal(victim.headers['x-cache'], 'MISS')
    t.equal(victim.body, (await plain.inject('/page/1')).body)
  })

  t.test(`${kind}: fat GET: a body on a GET never reads or fills the shared entry`, async (t) => {
    const [cached] = await pair(t, options())
    const fat = await cached.inject({ method: 'GET', url: '/page/1', headers: { 'content-type': 'application/json' }, payload: '{"x":"evil"}' })
    t.equal(fat.headers['x-cache'], 'BYPASS')
    t.equal((await cached.inject('/page/1')).headers['x-cache'], 'MISS')
  })

  t.test(`${kind}: parameter cloaking: ';', duplicates and encodings key as the handler parses them`, async (t) => {
    const [cached, plain] = await pair(t, options())
    const urls = ['/page/1?a=1;b=2', '/page/1?a=1&b=2', '/page/1?a=1&a=2', '/page/1?a=2&a=1', '/page/1?a=%31', '/page/1?a=1', '/page/1?a=1&a=1', '/page/1?%61=1']
    for (const url of urls) await cached.inject(url)
    for (const url of urls) {
      const hit = await cached.inject(url)
      t.equal(hit.body, (await plain.inject(url)).body, `${url} answers what the handler would`)
    }
  })

  t.test(`${kind}: path variants follow Fastify's routing without collisions`, async (t) => {
    const [cached, plain] = await pair(t, options())
    const urls = ['/page/1', '/page/1/', '/PAGE/1', '/page/%31', '/page/1%2F', '/page//1', '/page/1;x', '/page/1%3Bx', '/page/1.css']
    for (const url of urls) await cached.inject(url)
    for (const url of urls) {
      const [a, b] = [await cached.inject(url), await plain.inject(url)]
      t.equal(a.statusCode, b.statusCode, url)
      t.equal(a.body, b.body, url)
    }
  })

  t.test(`${kind}: routes without config.cache are never stored, whatever the URL looks like`, async (t) => {
    const [cached] = await pair(t, options())
    for (const url of ['/plain', '/plain/x.css', '/plain;.js', '/plain?x=.png', '/plain%2Fstyle.css', '/plain/..%2Fpage%2F1']) {
      const first = await cached.inject(url)
      const second = await cached.inject(url)
      t.equal(first.headers['x-cache'], undefined, url)
      t.equal(second.headers['x-cache'], undefined, url)
    }
    t.equal(cached.cache.stats().total.stores, 0)
  })

  t.test(`${kind}: tenant isolation: thousands of random tenant ids under concurrency, zero cross-tenant reads`, async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(responseCache, { ...options(), tenant: (request) => request.headers['x-tenant'] as string | undefined })
    app.get('/me', { config: { cache: true } }, async (request) => ({ tenant: request.headers['x-tenant'] }))
    const header = fc.string({ unit: fc.constantFrom(...'abcAB01:*?[]{}-_. %\\/|"\''.split('')), minLength: 0, maxLength: 40 })
    const tenants = [...new Set(fc.sample(header, { numRuns: 3000, seed: 42 }))].filter((id) => id.trim() === id)
    t.ok(tenants.length > 1000, `${tenants.length} distinct tenant ids`)
    let crossReads = 0
    for (let i = 0; i < tenants.length; i += 200) {
      const batch = tenants.slice(i, i + 200)
      const answers = await Promise.all([...batch, ...batch].map(async (tenant) => {
        const r = await app.inject({ url: '/me', headers: { 'x-tenant': tenant } })
        return [tenant, JSON.parse(r.body).tenant as string] as const
      }))
      crossReads += answers.filter(([asked, got]) => asked !== got).length
    }
    t.equal(crossReads, 0)
    t.ok(app.cache.stats().total.hits > 0)
  })
}

t.test('fat GET over a real socket: a chunked body with no content-length bypasses the cache too', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache)
  reflecting(app, true)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const chunked = await new Promise<{ status: number, xCache: string | undefined }>((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, method: 'GET', path: '/page/1', headers: { 'transfer-encoding': 'chunked', 'content-type': 'text/plain' } }, (response) => {
      response.resume()
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, xCache: response.headers['x-cache'] as string | undefined }) })
    })
    request.on('error', reject)
    request.write('evil')
    request.end()
  })
  t.equal(chunked.status, 200)
  t.equal(chunked.xCache, 'BYPASS')
  t.equal((await app.inject('/page/1')).headers['x-cache'], 'MISS', 'the chunked GET stored nothing')
})

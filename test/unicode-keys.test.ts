// Issue 24, point 2: distinct strings give distinct keys, tags and tenants, whatever code points they
// hold: characters past U+FFFF (emoji, CJK extensions), lone surrogates, U+FFFD; on every store, and
// never equal to a key an earlier release wrote for another string.
import Fastify, { type FastifyInstance } from 'fastify'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { hash } from 'node:crypto'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { valueEntry } from '../lib/client/values.js'
import { decodeSegment, encodeSegment, routeSegment, sha256, tenantSegment } from '../lib/key.js'
import { RedisStore } from '../lib/stores/redis.js'
import { counter } from './helpers/app.js'
import { eventually } from './helpers/events.js'
import { startRedis, writesSent } from './helpers/redis.js'
import { patientsApp } from './helpers/tiered.js'

type Tap = import('tap').Test

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`

/** A client as the README makes it, closed when the file's tests end. */
function redisClient (): Redis {
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  return redis
}
const redis = redisClient()

let namespaces = 0
const kinds: Array<[string, () => ResponseCacheOptions]> = [
  ['memory', () => ({})],
  ['redis', () => ({ store: 'redis', redis, namespace: `u${++namespaces}`, timeout: 2000 })],
  ['tiered', () => ({ store: 'tiered', redis, namespace: `u${++namespaces}`, timeout: 2000 })]
]

async function appWith (t: Tap, options: ResponseCacheOptions, routes = (app: FastifyInstance): void => {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, options)
  routes(app)
  await app.ready()
  return app
}

// Any code point and any UTF-16 code unit (lone surrogates included), and units that older releases
// encoded or hashed alike (a pair past U+FFFF, a lone surrogate and U+FFFD all became U+FFFD), so
// that short strings of those collide under the old code in most runs.
const alike = fc.constantFrom('😀', '😁', '𠀀', '\uD800', '\uDBFF', '\uDC00', '\uFFFD')
const unit = fc.oneof(
  alike,
  fc.constantFrom('a', ':', '%', 'u', 'D', 'é'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.integer({ min: 0, max: 0xFFFF }).map((code) => String.fromCharCode(code))
)
const anyString = fc.oneof(fc.string({ unit: alike, minLength: 1, maxLength: 2 }), fc.string({ unit, minLength: 1, maxLength: 8 }))
const distinctStrings = fc.uniqueArray(anyString, { minLength: 2, maxLength: 6 })

/** The encoding and hash of releases before this one, as they were: for keys they left in Redis. */
const legacyEncode = (value: string): string => value.replace(/[^A-Za-z0-9._-]/g, (ch) => {
  let out = ''
  for (const byte of Buffer.from(ch)) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  return out
})
const legacySha256 = (value: string): string => hash('sha256', value, 'base64url')

for (const [kind, options] of kinds) {
  t.test(`${kind}: app.cache values of keys that differ only past U+FFFF or in a lone surrogate stay apart`, async (t) => {
    const app = await appWith(t, options())
    await app.cache.set('note:😀', 'grin', { tags: ['notes:\uD800😀'] })
    await app.cache.set('note:\uD800', 'high', { tags: ['notes:\uD800😀'] })
    t.equal(await app.cache.get('note:😁'), undefined)
    t.equal(await app.cache.get('note:\uDBFF'), undefined)
    t.equal(await app.cache.get('note:\uFFFD\uFFFD'), undefined)
    t.equal(await app.cache.get('note:😀'), 'grin')
    t.equal(await app.cache.get('note:\uD800'), 'high')
    await app.cache.set('k', 'high tenant', { tenant: '\uD800' })
    for (const tenant of ['\uDC00', '\uFFFD', '\uD800\uDC00']) t.equal(await app.cache.get('k', { tenant }), undefined, JSON.stringify(tenant))
    t.equal(await app.cache.get('k', { tenant: '\uD800' }), 'high tenant')
    await writesSent()
    const listed = await app.cache.list({ tag: 'notes:\uD800😀' })
    t.same(listed?.entries.map(({ path, tags }) => ({ path, tags })).sort((a, b) => String(a.path) < String(b.path) ? -1 : 1),
      [{ path: 'note:\uD800', tags: ['notes:\uD800😀'] }, { path: 'note:😀', tags: ['notes:\uD800😀'] }], 'listed under their own key and tag')
  })

  t.test(`${kind}: property: distinct value keys, tags, tenants and key parts never share`, async (t) => {
    let tenants: string[] = []
    let parts: string[] = []
    const shared = options()
    const app = await appWith(t, { ...shared, tenant: (request) => tenants[Number(request.headers['x-i'])] }, (app) => {
      app.get('/tenant/:run', { config: { cache: true } }, async (request) => request.headers['x-i'])
      app.get('/part/:run', { config: { cache: { key: (request) => parts[Number(request.headers['x-i'])] } } }, async (request) => request.headers['x-i'])
    })
    // The tiered store's second instance keeps copies read from Redis, by the tags Redis gives back.
    const other = kind === 'tiered' ? await appWith(t, shared) : undefined
    let run = 0
    await fc.assert(fc.asyncProperty(distinctStrings, async (strings) => {
      run++
      tenants = parts = strings
      for (const [i, s] of strings.entries()) await app.cache.set(`${run}:${s}`, i, { tags: [`${run}:${s}`] })
      for (const [i, s] of strings.entries()) await app.cache.set(`${run}`, i, { tenant: s })
      for (const [i, s] of strings.entries()) if (await app.cache.get(`${run}:${s}`) !== i || await app.cache.get(`${run}`, { tenant: s }) !== i) return false
      for (const route of ['tenant', 'part']) {
        for (const i of strings.keys()) if ((await app.inject({ url: `/${route}/${run}`, headers: { 'x-i': String(i) } })).headers['x-cache'] !== 'MISS') return false
        for (const i of strings.keys()) if ((await app.inject({ url: `/${route}/${run}`, headers: { 'x-i': String(i) } })).body !== String(i)) return false
      }
      await writesSent()
      for (const [i, s] of strings.entries()) if (await other?.cache.get(`${run}:${s}`) !== (other === undefined ? undefined : i)) return false
      await writesSent()
      if (await app.cache.invalidate({ tags: [`${run}:${strings[0]}`] }) !== 1) return false
      for (const [i, s] of strings.entries()) if (await app.cache.get(`${run}:${s}`) !== (i === 0 ? undefined : i)) return false
      if (other === undefined) return true
      // The other instance drops its copy when the bus tells it, and only that one.
      return await eventually(async () => await other.cache.get(`${run}:${strings[0]}`) === undefined) &&
        (await Promise.all(strings.slice(1).map(async (s) => await other.cache.get(`${run}:${s}`)))).every((value, i) => value === i + 1)
    }), { numRuns: kind === 'memory' ? 200 : 40, seed: 24 })
    t.pass('held for every run')
  })
}

t.test('redis: a tag past U+FFFF drops its own entries only', async (t) => {
  const runs = counter()
  const app = await appWith(t, { store: 'redis', redis, namespace: 'doc-tags' }, (app) => {
    app.get('/docs/:name', { config: { cache: { tags: (request) => [`doc:${(request.params as { name: string }).name}`] } } }, async () => ({ run: runs.next() }))
  })
  for (const name of ['😀', '😁']) t.equal((await app.inject(`/docs/${encodeURIComponent(name)}`)).headers['x-cache'], 'MISS')
  await writesSent()
  t.equal(await app.cache.invalidate({ tags: ['doc:😀'] }), 1)
  t.equal((await app.inject(`/docs/${encodeURIComponent('😁')}`)).headers['x-cache'], 'HIT')
  t.equal((await app.inject(`/docs/${encodeURIComponent('😀')}`)).headers['x-cache'], 'MISS')
})

t.test('redis: routes whose patterns differ past U+FFFF are invalidated apart', async (t) => {
  const app = await appWith(t, { store: 'redis', redis, namespace: 'emoji-routes' }, (app) => {
    app.get('/😀', { config: { cache: true } }, async () => 'grin')
    app.get('/😁', { config: { cache: true } }, async () => 'beam')
  })
  for (const path of ['/😀', '/😁']) t.equal((await app.inject(encodeURI(path))).headers['x-cache'], 'MISS')
  await writesSent()
  t.equal(await app.cache.invalidate({ route: '/😀' }), 1)
  t.equal((await app.inject(encodeURI('/😁'))).headers['x-cache'], 'HIT')
  t.same(app.cache.stats().routes['GET /😁'].hits, 1)
})

t.test('tiered: a copy read from Redis is dropped by its tag past U+FFFF, not kept until localTtl', async (t) => {
  const runs = counter()
  const [a, b] = await Promise.all([patientsApp(t, redisClient(), 'patients', runs), patientsApp(t, redisClient(), 'patients', runs)])
  await Promise.all([a.ready(), b.ready()])
  const grin = `/patients/${encodeURIComponent('😀')}`
  const beam = `/patients/${encodeURIComponent('😁')}`
  t.same((await a.inject(grin)).json(), { id: '😀', run: 1 })
  t.same((await a.inject(beam)).json(), { id: '😁', run: 2 })
  await writesSent()
  for (const path of [grin, beam]) t.equal((await b.inject(path)).headers['x-cache'], 'HIT', 'b keeps a copy from Redis')
  t.equal(await a.cache.invalidate({ tags: ['patient:😀'] }), 1)
  t.ok(await eventually(async () => (await b.inject(grin)).json().run !== 1), 'b drops its copy on the bus message')
  t.same((await b.inject(beam)).json(), { id: '😁', run: 2 }, 'and keeps the other')
})

t.test('entries an earlier release left in Redis are read as they were, or miss: never another key\'s', async (t) => {
  const app = await appWith(t, { store: 'redis', redis, namespace: 'legacy' })
  const old = new RedisStore({ client: redis, namespace: 'legacy', log: app.log })
  const write = async (key: string, value: unknown): Promise<void> => { await old.set(key, valueEntry(value, 600), { ttl: 600, tags: ['g:v'] }) }
  // Keys as releases before this one wrote them.
  await write('legacy:-:v:' + legacyEncode('note:é'), 'café')
  await write('legacy:-:v:' + legacyEncode('note:😀'), 'grin')
  await write('legacy:-:v:' + legacyEncode('note:\uD800'), 'high')
  await write(`legacy:t${legacySha256('\uDC00').slice(0, 22)}:v:k`, 'low tenant')
  await write(`legacy:t${legacySha256('acme').slice(0, 22)}:v:k`, 'acme')
  await writesSent()
  t.equal(await app.cache.get('note:é'), 'café', 'a key that kept its encoding reads its entry')
  t.equal(await app.cache.get('k', { tenant: 'acme' }), 'acme')
  for (const key of ['note:😀', 'note:\uD800', 'note:\uFFFD\uFFFD', 'note:\uFFFD']) t.equal(await app.cache.get(key), undefined, JSON.stringify(key))
  for (const tenant of ['\uDC00', '\uFFFD']) t.equal(await app.cache.get('k', { tenant }), undefined, JSON.stringify(tenant))
})

t.test('property: segments and hashes are one to one, and never equal what an earlier release made of another string', async (t) => {
  fc.assert(fc.property(anyString, anyString, (a, b) => {
    const segment = encodeSegment(a)
    if (!/^[A-Za-z0-9._%-]*$/.test(segment) || decodeSegment(segment) !== a) return false
    if (a === b) return true
    return segment !== encodeSegment(b) && segment !== legacyEncode(b) &&
      routeSegment('GET', a) !== routeSegment('GET', b) &&
      sha256(a) !== sha256(b) && sha256(a) !== legacySha256(b) &&
      tenantSegment(a) !== tenantSegment(b)
  }), { numRuns: 5000, seed: 24 })
  // Strings with no lone surrogate and no U+FFFD keep their old hash (entries of such tenants, and
  // responses, stay), and in the BMP their old encoding too (values and tags stay).
  const clean = fc.string({ unit: 'binary' }).filter((s) => !s.includes('\uFFFD'))
  fc.assert(fc.property(clean, (s) => sha256(s) === legacySha256(s) &&
    (/[\u{10000}-\u{10FFFF}]/u.test(s) || encodeSegment(s) === legacyEncode(s))), { numRuns: 2000, seed: 24 })
  t.pass('held for every run')
})

import type { FastifyRequest } from 'fastify'
import { createHash } from 'node:crypto'
import t from 'tap'
import {
  decodeSegment, encodeSegment, KEY_MEMO_SIZE, rawPath, requestKey, routeSegment, sha256, tenantOf, tenantOfKey, tenantSegment
} from '../lib/key.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { cachedApp, counter } from './helpers/app.js'

t.test('segments hold no delimiter, glob or hash tag character, and never collide', async (t) => {
  const inputs = ['a:b', 'a%3Ab', 'a*', 'a?', 'a[b]', '{tag}', 'line\nbreak', 'é', '%', '', ' ', 'x'.repeat(5000)]
  const encoded = inputs.map(encodeSegment)
  t.equal(new Set(encoded).size, inputs.length)
  for (const e of encoded) t.match(e, /^[A-Za-z0-9._%-]*$/)
  t.equal(routeSegment('GET', '/items/:id'), 'GET:%2Fitems%2F%3Aid')
  t.equal(tenantSegment(undefined), '-')
  t.match(tenantSegment('acme'), /^t[A-Za-z0-9_-]{22}$/)
  t.equal(tenantSegment('x'.repeat(10_000)).length, 23)
  t.not(tenantSegment(''), tenantSegment('-'))
})

/** Captures every key the plugin asks the store for. */
class KeyLog extends MemoryStore {
  readonly keys: string[] = []
  override get (key: string): ReturnType<MemoryStore['get']> {
    this.keys.push(key)
    return super.get(key)
  }
}

t.test('key layout: namespace, tenant, method, route pattern, hash', async (t) => {
  const store = new KeyLog({ maxBytes: 1_000_000 })
  const app = await cachedApp(t, { store, namespace: 'app.v1', tenant: (r) => r.headers['x-tenant'] as string | undefined })
  app.get('/items/:id', { config: { cache: true } }, async () => 'x')
  await app.inject('/items/1')
  await app.inject({ url: '/items/1', headers: { 'x-tenant': 'acme' } })
  t.match(store.keys[0], /^app\.v1:-:GET:%2Fitems%2F%3Aid:[A-Za-z0-9_-]{43}$/)
  t.match(store.keys[1], /^app\.v1:t[A-Za-z0-9_-]{22}:GET:%2Fitems%2F%3Aid:[A-Za-z0-9_-]{43}$/)
  t.not(store.keys[0].slice(-43), store.keys[1].slice(-43 - 24, -24), 'tenant is outside the hash')
})

t.test('delimiter tricks in path parameters, queries, vary values and key parts do not collide', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  const body = async (): Promise<{ run: number }> => ({ run: runs.next() })
  app.get('/p/:a/:b', { config: { cache: true } }, body)
  app.get('/q', { config: { cache: { vary: ['x-a', 'x-b'] } } }, body)
  app.get('/k', { config: { cache: { key: (request) => request.headers['x-key'] as string | undefined } } }, body)
  const variants = [
    { url: '/p/a:b/c' }, { url: '/p/a/b:c' }, { url: '/p/a%253Ab/c' }, { url: '/p/*/c' }, { url: '/p/%3F/c' },
    { url: '/q?a=1&b=2' }, { url: '/q?a=1%26b%3D2' }, { url: '/q?a=1,b=2' }, { url: '/q?a=*' }, { url: '/q?a=%0A' },
    { url: '/q?x=' + 'y'.repeat(6000) }, { url: '/q?x=' + 'y'.repeat(6001) },
    { url: '/q', headers: { 'x-a': 'a:b', 'x-b': 'c' } }, { url: '/q', headers: { 'x-a': 'a', 'x-b': 'b:c' } },
    { url: '/q', headers: { 'x-a': 'a","b' } }, { url: '/q', headers: { 'x-a': '' } },
    { url: '/k', headers: { 'x-key': 'a:b' } }, { url: '/k', headers: { 'x-key': 'a' } }, { url: '/k', headers: { 'x-key': 'null' } }, { url: '/k' }
  ]
  for (const v of variants) t.equal((await app.inject(v)).headers['x-cache'], 'MISS', JSON.stringify(v).slice(0, 80))
  for (const v of variants) t.equal((await app.inject(v)).headers['x-cache'], 'HIT', JSON.stringify(v).slice(0, 80))
  t.equal(runs.runs, variants.length)
  // Fastify decodes an encoded colon to the same parameter value, but the raw path differs (a handler
  // may reflect request.url), so it is an entry of its own.
  t.equal((await app.inject('/p/a%3Ab/c')).headers['x-cache'], 'MISS')
})

t.test('tenants never read each other, however their ids are crafted', async (t) => {
  const app = await cachedApp(t, { tenant: (request) => request.headers['x-tenant'] as string | undefined })
  app.get('/me', { config: { cache: true } }, async (request) => ({ tenant: request.headers['x-tenant'] ?? null }))
  const tenants = ['a', 'a:b', 'a:', ':b', '*', 'a*', '?', '[a]', '{a}', '-', '', 'line\nbreak'.replace('\n', ' '), 'é', 'x'.repeat(8000), 'null', 'undefined']
  for (const tenant of [undefined, ...tenants]) {
    const headers = tenant === undefined ? {} : { 'x-tenant': tenant }
    t.equal((await app.inject({ url: '/me', headers })).headers['x-cache'], 'MISS', String(tenant).slice(0, 20))
  }
  for (const tenant of [undefined, ...tenants]) {
    const headers = tenant === undefined ? {} : { 'x-tenant': tenant }
    const hit = await app.inject({ url: '/me', headers })
    t.equal(hit.headers['x-cache'], 'HIT')
    t.same(JSON.parse(hit.body), { tenant: tenant ?? null })
  }
})

t.test('a numeric tenant keys like its string; an object is no tenant id and bypasses', async (t) => {
  let tenant: unknown = 7
  const app = await cachedApp(t, { tenant: () => tenant as string })
  app.get('/t', { config: { cache: true } }, async () => 'x')
  await app.inject('/t')
  tenant = '7'
  t.equal((await app.inject('/t')).headers['x-cache'], 'HIT')
  tenant = undefined
  t.equal((await app.inject('/t')).headers['x-cache'], 'MISS')
  tenant = { id: 7 }
  t.equal((await app.inject('/t')).headers['x-cache'], 'BYPASS', 'not the entry of no tenant')
})

t.test('the protocol is keyed: https behind a trusted proxy does not share with http', async (t) => {
  const app = await cachedApp(t, {}, { trustProxy: true })
  app.get('/proto', { config: { cache: true } }, async (request) => request.protocol)
  t.equal((await app.inject('/proto')).body, 'http')
  const https = await app.inject({ url: '/proto', headers: { 'x-forwarded-proto': 'https' } })
  t.equal(https.headers['x-cache'], 'MISS')
  t.equal(https.body, 'https')
})

t.test('without trustProxy, x-forwarded-host and -proto cannot change an entry', async (t) => {
  const app = await cachedApp(t)
  app.get('/link', { config: { cache: true } }, async (request) => `${request.protocol}://${request.host}/x`)
  const poison = await app.inject({ url: '/link', headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })
  t.equal(poison.body, 'http://localhost:80/x')
  const normal = await app.inject('/link')
  t.equal(normal.headers['x-cache'], 'HIT')
  t.equal(normal.body, 'http://localhost:80/x')
})

t.test('keys remembered per route stay right past the memo bound, and per host and protocol', async (t) => {
  const app = await cachedApp(t, {}, { trustProxy: true })
  let runs = 0
  app.get('/items/:id', { config: { cache: true } }, async (request) => `${request.protocol}://${request.host}${request.url} #${++runs}`)
  const count = KEY_MEMO_SIZE + 100
  for (let i = 0; i < count; i++) await app.inject(`/items/${i}`)
  t.equal(runs, count)
  for (const i of [0, 1, KEY_MEMO_SIZE, count - 1]) {
    const again = await app.inject(`/items/${i}`)
    t.equal(again.headers['x-cache'], 'HIT')
    t.match(again.body, `/items/${i} #${i + 1}`)
  }
  const otherHost = await app.inject({ url: '/items/0', headers: { host: 'other.example' } })
  t.equal(otherHost.headers['x-cache'], 'MISS')
  const https = await app.inject({ url: '/items/0', headers: { 'x-forwarded-proto': 'https' } })
  t.equal(https.headers['x-cache'], 'MISS')
  t.match(https.body, /^https:/)
})

t.test('encodeSegment: upper-case hex of every UTF-8 byte, two digits each', async (t) => {
  t.equal(encodeSegment('a:b é\n%'), 'a%3Ab%20%C3%A9%0A%25')
  t.equal(encodeSegment('AZaz09._-'), 'AZaz09._-', 'the safe set is kept')
  t.equal(encodeSegment('/items/:id'), '%2Fitems%2F%3Aid')
  t.equal(encodeSegment('{0a}*?[]'), '%7B0a%7D%2A%3F%5B%5D')
})

t.test('tenantSegment: a number keys like its string; the segment is the hash of the id', async (t) => {
  t.equal(tenantSegment(7), tenantSegment('7'))
  t.equal(tenantSegment('acme'), 't' + createHash('sha256').update('acme').digest('base64url').slice(0, 22))
  t.equal(sha256('abc'), createHash('sha256').update('abc').digest('base64url'))
  t.equal(sha256(Buffer.from('abc')), sha256('abc'))
})

t.test('rawPath and tenantOfKey', async (t) => {
  t.equal(rawPath('/a/b?c=1?d'), '/a/b')
  t.equal(rawPath('/a/b'), '/a/b')
  t.equal(rawPath('?x'), '')
  const tenant = tenantSegment('acme')
  t.equal(tenantOfKey(`app.v1:${tenant}:GET:%2Fx:hash`, 'app.v1'), tenant)
  t.equal(tenantOfKey('rc:-:GET:%2Fx:hash', 'rc'), '-')
  t.equal(tenantOfKey('rc:-:v:k', 'rc'), '-')
})

t.test('tenantOf: strings and finite numbers are tenants, undefined none, anything else an error naming the function', async (t) => {
  const request = {} as FastifyRequest
  t.equal(tenantOf({ tenant: undefined }, request), undefined)
  t.equal(tenantOf({ tenant: () => undefined }, request), undefined)
  t.equal(tenantOf({ tenant: () => 'a' }, request), 'a')
  t.equal(tenantOf({ tenant: () => '' }, request), '', 'an empty id is a tenant of its own')
  t.equal(tenantOf({ tenant: () => 7 }, request), '7')
  t.equal(tenantOf({ tenant: () => -0.5 }, request), '-0.5')
  const answers: Array<[unknown, string]> = [
    [null, 'null'], [{}, 'an object'], [['a'], 'an array'], [true, 'a boolean'], [Symbol('s'), 'a symbol'],
    [Number.NaN, 'NaN'], [-Infinity, '-Infinity'], [1n, 'a bigint'], [() => 'a', 'a function']
  ]
  for (const [value, described] of answers) {
    t.throws(() => tenantOf({ tenant: () => value as string }, request), {
      name: 'InvalidKeyPartError',
      option: 'tenant',
      reason: 'tenant-invalid',
      message: `the tenant function answered ${described}; expected a string, a finite number or undefined`
    })
  }
})

t.test('the key memo is bounded: past KEY_MEMO_SIZE it starts again', async (t) => {
  const memo = new Map<string, string>()
  const source = { namespace: 'rc', route: routeSegment('GET', '/m/:id'), vary: [], tenant: undefined, key: undefined, memo }
  const request = (url: string): FastifyRequest => ({ protocol: 'http', host: 'h', url, headers: {}, params: {} }) as unknown as FastifyRequest
  const first = requestKey(source, request('/m/0'), false)
  t.equal(memo.get('http h /m/0'), first, 'remembered by protocol, host and URL')
  for (let i = 1; i < KEY_MEMO_SIZE; i++) requestKey(source, request(`/m/${i}`), false)
  t.equal(memo.size, KEY_MEMO_SIZE)
  requestKey(source, request('/m/next'), false)
  t.equal(memo.size, 1, 'cleared, then the new key remembered')
  t.equal(requestKey(source, request('/m/0'), false), first, 'the same key once forgotten')
  t.equal(requestKey({ ...source, memo: undefined }, request('/m/0'), false), first, 'with or without the memo')
})

t.test('the memo cannot be fooled by moving characters between protocol, host and URL', async (t) => {
  const app = await cachedApp(t, {}, { trustProxy: true })
  app.get('/*', { config: { cache: true } }, async (request) => `${request.protocol} ${request.host} ${request.url}`)
  const pairs: Array<[Record<string, string>, string, Record<string, string>, string]> = [
    [{ 'x-forwarded-proto': 'https', host: 'x.example' }, '/p', { 'x-forwarded-proto': 'http', host: 'sx.example' }, '/p'],
    [{ host: 'example.com' }, '/a/b', { host: 'example.com/a' }, '/b']
  ]
  for (const [headersA, urlA, headersB, urlB] of pairs) {
    const a = await app.inject({ url: urlA, headers: headersA })
    const b = await app.inject({ url: urlB, headers: headersB })
    if (b.statusCode !== 200) continue // a host Fastify refuses cannot share anything either
    t.equal(b.headers['x-cache'], 'MISS', `${JSON.stringify(headersB)} ${urlB}`)
    t.not(b.body, a.body)
  }
})

t.test('a key function answering undefined is no key part; the string "undefined" is one', async (t) => {
  const app = await cachedApp(t)
  let part: unknown
  const runs = counter()
  app.get('/k', { config: { cache: { key: () => part as string } } }, async () => ({ run: runs.next() }))
  part = undefined
  t.equal((await app.inject('/k')).headers['x-cache'], 'MISS')
  part = 'undefined'
  t.equal((await app.inject('/k')).headers['x-cache'], 'MISS')
  part = 0
  t.equal((await app.inject('/k')).headers['x-cache'], 'MISS')
  part = '0'
  t.equal((await app.inject('/k')).headers['x-cache'], 'HIT', 'a number keys like its string')
  part = undefined
  t.equal((await app.inject('/k')).headers['x-cache'], 'HIT')
  t.equal(runs.runs, 3)
})

t.test('a vary header that is absent keys apart from one that is empty', async (t) => {
  const app = await cachedApp(t)
  app.get('/v', { config: { cache: { vary: ['x-a'] } } }, async (request) => String(request.headers['x-a']))
  t.equal((await app.inject('/v')).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ url: '/v', headers: { 'x-a': '' } })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ url: '/v', headers: { 'x-a': 'null' } })).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/v')).body, 'undefined')
})

// Keyed by the parsed body: a JSON string and the same text parse alike, so they may share.
t.test('POST bodies of every kind never share a key across kinds', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })
  app.post('/b', { config: { cache: true } }, async () => ({ run: runs.next() }))
  const bodies: Array<[string, string]> = [
    ['application/json', '{"a":1}'],
    ['text/plain', 'j{"a":1}'],
    ['text/plain', '{"a":1}'],
    ['application/octet-stream', '{"a":1}'],
    ['text/plain', 's'],
    ['application/json', '5'],
    ['text/plain', 'j5'],
    // What a Buffer would serialise to as JSON must not meet the Buffer itself.
    ['application/json', '{"type":"Buffer","data":[120]}'],
    ['application/octet-stream', 'x']
  ]
  for (const [type, payload] of bodies) {
    t.equal((await app.inject({ method: 'POST', url: '/b', headers: { 'content-type': type }, payload })).headers['x-cache'], 'MISS', `${type} ${payload}`)
  }
  for (const [type, payload] of bodies) {
    t.equal((await app.inject({ method: 'POST', url: '/b', headers: { 'content-type': type }, payload })).headers['x-cache'], 'HIT', `${type} ${payload}`)
  }
  t.equal(runs.runs, bodies.length)
  t.equal((await app.inject({ method: 'POST', url: '/b' })).headers['x-cache'], 'MISS', 'no body')
  t.equal((await app.inject({ method: 'POST', url: '/b' })).headers['x-cache'], 'HIT')
  // A handler sees null for a JSON null and undefined for no body: they may answer differently.
  const nullBody = { method: 'POST' as const, url: '/b', headers: { 'content-type': 'application/json' }, payload: 'null' }
  t.equal((await app.inject(nullBody)).headers['x-cache'], 'MISS', 'a JSON null is not the absence of a body')
  t.equal((await app.inject(nullBody)).headers['x-cache'], 'HIT')
})

// The kind letter before each body: without 'b', a Buffer keys as its bare SHA-256, which a string body
// equal to that hash minus a leading 's' would meet.
t.test('a Buffer body never shares a key with a string body, even one spelling its hash', async (t) => {
  const app = await cachedApp(t)
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })
  app.post('/b', { config: { cache: true } }, async (request) => ({ body: Buffer.isBuffer(request.body) ? 'bytes' : request.body }))
  let bytes = ''
  for (let i = 0; !sha256(bytes).startsWith('s'); i++) bytes = `payload ${i}`
  const buffer = await app.inject({ method: 'POST', url: '/b', headers: { 'content-type': 'application/octet-stream' }, payload: bytes })
  t.same([buffer.headers['x-cache'], buffer.json()], ['MISS', { body: 'bytes' }])
  const text = sha256(bytes).slice(1)
  const string = await app.inject({ method: 'POST', url: '/b', headers: { 'content-type': 'text/plain' }, payload: text })
  t.same([string.headers['x-cache'], string.json()], ['MISS', { body: text }])
})

t.test('no body never shares a key with a parsed value that JSON cannot hold', async (t) => {
  const app = await cachedApp(t)
  // A parser may answer anything, a function (a lazy parse) included; the handler tells it from no body.
  app.addContentTypeParser('application/x-lazy', { parseAs: 'string' }, (_request, body, done) => { done(null, () => body) })
  app.post('/lazy', { config: { cache: true } }, async (request) => typeof request.body)
  t.equal((await app.inject({ method: 'POST', url: '/lazy' })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ method: 'POST', url: '/lazy' })).headers['x-cache'], 'HIT')
  const lazy = await app.inject({ method: 'POST', url: '/lazy', headers: { 'content-type': 'application/x-lazy' }, payload: 'x' })
  t.same([lazy.headers['x-cache'], lazy.body], ['MISS', 'function'])
})

t.test('the raw-bytes key holds content-encoding: the same bytes decoded otherwise never reach the entry', async (t) => {
  const app = await cachedApp(t)
  // A parser that honours content-encoding, as request decompression does.
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (request, body, done) => {
    done(null, request.headers['content-encoding'] === 'base64' ? Buffer.from(body as string, 'base64').toString() : body)
  })
  app.post('/echo', { config: { cache: true } }, async (request) => request.body)
  const payload = Buffer.from('decoded').toString('base64')
  const encoded = { method: 'POST' as const, url: '/echo', headers: { 'content-type': 'text/plain', 'content-encoding': 'base64' }, payload }
  t.same([(await app.inject(encoded)).body, (await app.inject(encoded)).headers['x-cache']], ['decoded', 'HIT'], 'these bytes now lead to an entry')
  const plain = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'text/plain' }, payload })
  t.same([plain.headers['x-cache'], plain.body], ['MISS', payload])
  const other = await app.inject({ ...encoded, headers: { ...encoded.headers, 'content-encoding': 'identity' } })
  t.same([other.headers['x-cache'], other.body], ['HIT', payload], 'identity parses the bytes as the plain request did')
})

t.test('sha256: bytes as they are; strings by an encoding no two strings share', async (t) => {
  const invalidUtf8 = Buffer.from([0x61, 0xFF, 0xED, 0xA0, 0x80])
  t.equal(sha256(invalidUtf8), createHash('sha256').update(invalidUtf8).digest('base64url'), 'bytes are never re-encoded')
  t.equal(sha256('😀é'), createHash('sha256').update(Buffer.from('😀é')).digest('base64url'), 'a well-formed string: its UTF-8')
  // A string with a lone surrogate or U+FFFD is hashed as 0xFF and its JSON text: never the JSON text alone.
  for (const [odd, spelled] of [['\uD800', '"\\ud800"'], ['\uFFFD', '"\uFFFD"'], ['a\uDC00', '"a\\udc00"']]) {
    t.not(sha256(odd), sha256(spelled), JSON.stringify(odd))
    t.equal(sha256(odd), createHash('sha256').update(Buffer.concat([Buffer.from([0xFF]), Buffer.from(spelled)])).digest('base64url'))
  }
  t.equal(encodeSegment('\uD800\uFFFD😀'), '%uD800%uFFFD%F0%9F%98%80')
  t.equal(decodeSegment('%uD800%uFFFD%F0%9F%98%80%25u'), '\uD800\uFFFD😀%u')
})

// POST (and QUERY) requests looked up from their raw body bytes, before Fastify parses them.
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import { RawKeyMemo } from '../lib/http/raw-body.js'
import { cachedApp, counter } from './helpers/app.js'

/** The app's own JSON parser, counting the bodies it parses. */
function countingJson (app: FastifyInstance): { parsed: number } {
  const seen = { parsed: 0 }
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    seen.parsed++
    try {
      done(null, JSON.parse(body as string))
    } catch (error) {
      (error as { statusCode?: number }).statusCode = 400
      done(error as Error, undefined)
    }
  })
  return seen
}

const json = (payload: string, headers: Record<string, string> = {}): InjectOptions =>
  ({ method: 'POST', url: '/search', headers: { 'content-type': 'application/json', ...headers }, payload })

t.test('a body seen before is answered from its bytes, without parsing or the handler', async (t) => {
  const app = await cachedApp(t)
  const parser = countingJson(app)
  const runs = counter()
  app.post('/search', { config: { cache: true } }, async (request) => ({ run: runs.next(), q: (request.body as { q: string }).q }))
  const first = await app.inject(json('{"q":"tea","page":1}'))
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(parser.parsed, 1, 'the app\'s parser runs on a miss')
  const again = await app.inject(json('{"q":"tea","page":1}'))
  t.equal(again.headers['x-cache'], 'HIT')
  t.equal(again.body, first.body)
  t.equal(parser.parsed, 1, 'the same bytes are not parsed again')
  for (const shuffled of ['{"page":1,"q":"tea"}', '{ "q": "tea",\n  "page": 1 }']) {
    const hit = await app.inject(json(shuffled))
    t.equal(hit.headers['x-cache'], 'HIT', shuffled)
    t.equal(hit.body, first.body)
  }
  t.equal(parser.parsed, 3, 'another key order or other whitespace is parsed once, and keyed as parsed')
  t.equal((await app.inject(json('{"page":1,"q":"tea"}'))).headers['x-cache'], 'HIT')
  t.equal(parser.parsed, 3, 'then remembered by its bytes too')
  const other = await app.inject(json('{"q":"coffee","page":1}'))
  t.equal(other.headers['x-cache'], 'MISS', 'a different body misses')
  t.same(other.json(), { run: 2, q: 'coffee' })
  t.equal(runs.runs, 2)
  t.equal(app.cache.stats().routes['POST /search'].hits, 4)
})

t.test('the bytes are keyed with the content-type, URL, tenant, vary headers and key part', async (t) => {
  const app = await cachedApp(t, { tenant: (request) => request.headers['x-tenant'] as string | undefined })
  const parser = countingJson(app)
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_request, body, done) => { done(null, { text: body }) })
  const runs = counter()
  const answer = async (): Promise<{ run: number }> => ({ run: runs.next() })
  app.post('/search', { config: { cache: { vary: ['accept-language'], key: (request) => request.headers['x-key'] as string | undefined } } }, answer)
  const body = '{"q":"tea"}'
  const variants: InjectOptions[] = [
    json(body),
    json(body, { 'x-tenant': 'acme' }),
    json(body, { 'x-tenant': 'globex' }),
    json(body, { 'accept-language': 'fr' }),
    json(body, { 'x-key': 'k' }),
    json(body, { 'content-type': 'text/plain' }),
    { ...json(body), url: '/search?page=2' }
  ]
  for (const request of variants) t.equal((await app.inject(request)).headers['x-cache'], 'MISS', JSON.stringify(request.headers))
  for (const request of variants) {
    const hit = await app.inject(request)
    t.equal(hit.headers['x-cache'], 'HIT', JSON.stringify(request.headers))
  }
  t.equal(runs.runs, variants.length, 'no two variants shared an entry')
  const answers = await Promise.all(variants.map(async (request) => (await app.inject(request)).json<{ run: number }>().run))
  t.same(answers, [1, 2, 3, 4, 5, 6, 7], 'each variant is answered its own entry from its bytes')
  t.equal(parser.parsed, variants.length - 1, 'the JSON variants were parsed once each')
})

t.test('authorization and cookie requests still bypass, whatever their body', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.post('/search', { config: { cache: true } }, async () => ({ run: runs.next() }))
  await app.inject(json('{"q":"tea"}'))
  for (const headers of [{ authorization: 'Bearer a' }, { cookie: 'sid=1' }] as Array<Record<string, string>>) {
    const answer = await app.inject(json('{"q":"tea"}', headers))
    t.equal(answer.headers['x-cache'], 'BYPASS')
  }
  t.equal(runs.runs, 3)
})

/** The same routes with and without the plugin, answering what they parsed. */
async function pair (t: Test, route: { bodyLimit?: number } = {}, plugin = {}): Promise<[FastifyInstance, FastifyInstance]> {
  const cached = await cachedApp(t, plugin)
  const plain = Fastify()
  t.teardown(async () => { await plain.close() })
  for (const [app, cache] of [[cached, true], [plain, false]] as const) {
    app.post('/search', { ...route, config: { cache } }, async (request) => ({ body: request.body ?? null }))
  }
  return [cached, plain]
}

async function same (t: Test, apps: [FastifyInstance, FastifyInstance], request: InjectOptions, label: string): Promise<string | undefined> {
  const [a, b] = await Promise.all(apps.map(async (app) => await app.inject(request)))
  t.equal(a.statusCode, b.statusCode, `${label}: status`)
  t.equal(a.body, b.body, `${label}: body`)
  return a.headers['x-cache'] as string | undefined
}

t.test('bodies that fail to parse, or do not match their content-length, get the answer they get without the plugin', async (t) => {
  const apps = await pair(t)
  await same(t, apps, json('{"q":"tea"}'), 'a good body first')
  const bad: Array<[string, InjectOptions]> = [
    ['broken JSON', json('{"q":"tea"')],
    ['empty JSON', json('')],
    ['a prototype key', json('{"__proto__":{"x":1}}')],
    ['content-length too long', json('{"q":"tea"}', { 'content-length': '12' })],
    ['unknown content-type', json('{"q":"tea"}', { 'content-type': 'application/x-unknown' })],
    ['a stream that fails', { ...json('{"q":"tea"}'), simulate: { end: true, split: false, error: true, close: false } }]
  ]
  for (const [label, request] of bad) {
    // Twice: a failed body is never remembered as if it had a key.
    t.equal(await same(t, apps, request, label), 'BYPASS', label)
    t.equal(await same(t, apps, request, `${label}, again`), 'BYPASS', `${label}, again`)
  }
})

t.test('a body one byte over bodyLimit gets 413 as without the plugin; one at the limit is cached', async (t) => {
  const apps = await pair(t, { bodyLimit: 64 })
  const atLimit = '{"q":"' + 'x'.repeat(64 - 8) + '"}'
  t.equal(atLimit.length, 64)
  t.equal(await same(t, apps, json(atLimit), 'at the limit'), 'MISS')
  t.equal(await same(t, apps, json(atLimit), 'at the limit, again'), 'HIT')
  const over = '{"q":"' + 'x'.repeat(64 - 7) + '"}'
  for (const label of ['one byte over', 'one byte over, again']) {
    t.equal(await same(t, apps, json(over), label), 'BYPASS')
    t.equal((await apps[0].inject(json(over))).statusCode, 413)
  }
})

t.test('over the network: chunked bodies, split anywhere, hit by their bytes; one byte over bodyLimit is 413', async (t) => {
  const app = await cachedApp(t)
  const parser = countingJson(app)
  const runs = counter()
  app.post('/search', { bodyLimit: 64, config: { cache: true } }, async (request) => ({ run: runs.next(), body: request.body }))
  const plain = Fastify()
  t.teardown(async () => { await plain.close() })
  plain.post('/search', { bodyLimit: 64 }, async (request) => ({ run: 1, body: request.body }))
  const [cachedUrl, plainUrl] = await Promise.all([app.listen({ port: 0, host: '127.0.0.1' }), plain.listen({ port: 0, host: '127.0.0.1' })])
  // A ReadableStream body goes out chunked (no content-length), in the pieces given.
  const send = async (base: string, pieces: string[]): Promise<Response> => await fetch(base + '/search', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      start (controller) {
        for (const piece of pieces) controller.enqueue(new TextEncoder().encode(piece))
        controller.close()
      }
    }),
    duplex: 'half'
  } as RequestInit)
  const first = await send(cachedUrl, ['{"q":', '"tea"}'])
  t.equal(first.headers.get('x-cache'), 'MISS')
  const firstBody = await first.text()
  const second = await send(cachedUrl, ['{"q":"t', 'ea"', '}'])
  t.equal(second.headers.get('x-cache'), 'HIT')
  t.equal(await second.text(), firstBody)
  t.equal(parser.parsed, 1, 'answered from the bytes, not parsed')
  const over = ['{"q":"', 'x'.repeat(64 - 7), '"}']
  const [cachedOver, plainOver] = await Promise.all([send(cachedUrl, over), send(plainUrl, over)])
  t.equal(cachedOver.status, 413)
  t.equal(await cachedOver.text(), await plainOver.text())
  t.equal(plainOver.status, 413)
  t.equal(runs.runs, 1)
})

t.test('a body over maxEntryBytes is parsed and keyed as before', async (t) => {
  // A 48-byte body; the answer, 'ok' and its content-type header, takes 39 of the 40 bytes.
  const app = await cachedApp(t, { maxEntryBytes: 40 })
  const parser = countingJson(app)
  app.post('/search', { config: { cache: true } }, async () => 'ok')
  const body = JSON.stringify({ q: 'x'.repeat(40) })
  t.equal((await app.inject(json(body))).headers['x-cache'], 'MISS')
  t.equal((await app.inject(json(body))).headers['x-cache'], 'HIT')
  t.equal(parser.parsed, 2, 'not read before parsing: parsed on every request')
})

t.test('content-type parsers of the app run on misses, and their errors keep their status', async (t) => {
  const app = await cachedApp(t)
  const seen: string[] = []
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    seen.push(body as string)
    if ((body as string).includes('bad')) {
      done(Object.assign(new Error('no thanks'), { statusCode: 422 }), undefined)
      return
    }
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  app.post('/form', { config: { cache: true } }, async (request) => request.body)
  const form = (payload: string): InjectOptions => ({ method: 'POST', url: '/form', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload })
  const miss = await app.inject(form('a=1&b=2'))
  t.equal(miss.headers['x-cache'], 'MISS')
  t.same(miss.json(), { a: '1', b: '2' })
  t.equal((await app.inject(form('a=1&b=2'))).headers['x-cache'], 'HIT')
  t.equal((await app.inject(form('b=2&a=1'))).headers['x-cache'], 'HIT', 'other bytes, parsed by the app\'s parser to the same object')
  const bad = await app.inject(form('bad=1'))
  t.equal(bad.statusCode, 422)
  t.same(seen, ['a=1&b=2', 'b=2&a=1', 'bad=1'])
})

t.test('QUERY requests are looked up from their bytes too', async (t) => {
  const app = await cachedApp(t)
  const parser = countingJson(app)
  const runs = counter()
  app.route({ method: 'QUERY', url: '/search', config: { cache: true }, handler: async () => ({ run: runs.next() }) })
  const query = { ...json('{"q":"tea"}'), method: 'QUERY' } as unknown as InjectOptions
  t.equal((await app.inject(query)).headers['x-cache'], 'MISS')
  t.equal((await app.inject(query)).headers['x-cache'], 'HIT')
  t.equal(parser.parsed, 1)
})

t.test('the raw-key memo is bounded and drops the least recently used', async (t) => {
  const memo = new RawKeyMemo(2)
  memo.remember('a', 'A')
  memo.remember('b', 'B')
  t.equal(memo.get('a'), 'A')
  memo.remember('c', 'C')
  t.equal(memo.get('b'), undefined, 'b was used least recently')
  t.equal(memo.get('a'), 'A')
  t.equal(memo.get('c'), 'C')
  memo.remember('c', 'C2')
  memo.remember('d', 'D')
  t.equal(memo.get('a'), undefined)
  t.equal(memo.get('c'), 'C2')
})

t.test('a key function that throws before parsing sends the request on to the lookup after it', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  // Reads the parsed body: throws while the body is still raw bytes.
  app.post('/search', { config: { cache: { key: (request) => (request.body as { user: string }).user } } }, async () => ({ run: runs.next() }))
  t.equal((await app.inject(json('{"user":"a"}'))).headers['x-cache'], 'MISS')
  const again = await app.inject(json('{"user":"a"}'))
  t.equal(again.headers['x-cache'], 'HIT', 'keyed once parsed, as before')
  t.equal((await app.inject(json('{"user":"b"}'))).headers['x-cache'], 'MISS')
  t.equal(runs.runs, 2)
})

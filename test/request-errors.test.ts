// Cache-poisoned denial of service: a request an attacker shapes must not store an answer that every
// clean request of its key then gets. Answers to errors the request itself caused (origin mode),
// requests with preconditions a cache does not evaluate, and requests that name another method. The
// same attacks through the reverse-proxy example and a real origin: test/examples/reverse-proxy.test.ts.
import type { FastifyReply } from 'fastify'
import t from 'tap'
import { REQUEST_ERROR_STATUSES } from '../lib/rules/storability.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { storeKinds } from './helpers/stores.js'

const ago = (seconds: number): string => new Date(Date.now() - seconds * 1000).toUTCString()

const reasons = (lines: Array<Record<string, unknown>>, msg: string): string[] =>
  lines.filter((l) => l.msg === msg).map((l) => (l.responseCache as { reason: string }).reason)

/** What an attacker adds to a clean request, and the bypass reason each gets. */
const SHAPED: Array<[Record<string, string>, string]> = [
  [{ 'if-match': '"x"' }, 'request-conditional'],
  [{ 'if-match': '*' }, 'request-conditional'],
  [{ 'if-unmodified-since': ago(86_400) }, 'request-conditional'],
  [{ 'if-range': '"x"' }, 'request-conditional'],
  [{ 'x-http-method-override': 'DELETE' }, 'method-override'],
  [{ 'x-http-method': 'DELETE' }, 'method-override'],
  [{ 'x-method-override': 'DELETE' }, 'method-override']
]

const REQUEST_ERRORS = [400, 411, 412, 413, 414, 416, 431]

t.test('the request errors are the seven the docs list', async (t) => {
  t.same([...REQUEST_ERROR_STATUSES].sort(), REQUEST_ERRORS)
})

for (const [kind, options] of await storeKinds(t)) {
  t.test(`${kind}: origin mode never stores an error the request caused, whatever max-age it carries`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.get('/s/:status', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      runs.next()
      return await reply.code(Number((request.params as { status: string }).status)).header('cache-control', 'max-age=60').send('error')
    })
    for (const status of REQUEST_ERRORS) {
      t.same([(await app.inject(`/s/${status}`)).headers['x-cache'], (await app.inject(`/s/${status}`)).headers['x-cache']], ['MISS', 'MISS'], `${status}`)
    }
    t.equal(runs.runs, 2 * REQUEST_ERRORS.length)
    // Its neighbours are stored as before: the rule is the list, not a range.
    for (const status of [401, 403, 404, 410]) {
      await app.inject(`/s/${status}`)
      t.equal((await app.inject(`/s/${status}`)).headers['x-cache'], 'HIT', `${status}`)
    }
  })

  for (const [headers] of SHAPED) {
    const name = Object.keys(headers)[0]
    t.test(`${kind}: a request with ${name} goes to the handler in both modes; its answer is never stored`, async (t) => {
      const app = await cachedApp(t, options())
      const runs = counter()
      // The handler honours the header: a 200 of another body, which must not replace the page.
      const handler = async (request: { headers: Record<string, unknown> }, reply: FastifyReply): Promise<string> => {
        runs.next()
        reply.header('cache-control', 'max-age=60')
        return request.headers[name] === undefined ? 'page' : `answer to ${name}`
      }
      app.get('/origin', { config: { cache: { ttl: 'origin' } } }, handler)
      app.get('/default', { config: { cache: { ttl: 60 } } }, handler)
      for (const url of ['/origin', '/default']) {
        const shaped = await app.inject({ url, headers })
        t.same([shaped.headers['x-cache'], shaped.body], ['BYPASS', `answer to ${name}`], `${url}: first, to an empty cache`)
        t.same([(await app.inject(url)).body, (await app.inject(url)).headers['x-cache']], ['page', 'HIT'], `${url}: clean requests get the page`)
        const onStored = await app.inject({ url, headers })
        t.same([onStored.headers['x-cache'], onStored.body], ['BYPASS', `answer to ${name}`], `${url}: not answered from the stored page either`)
        t.equal((await app.inject(url)).body, 'page', `${url}: the page is still what is stored`)
      }
      t.equal(runs.runs, 6)
    })
  }

  t.test(`${kind}: a POST keyed by its body bypasses on the same headers, before and after its body is parsed`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.post('/search', { config: { cache: { ttl: 60 } } }, async () => ({ run: runs.next() }))
    const search = async (headers: Record<string, string> = {}): Promise<string | undefined> =>
      (await app.inject({ method: 'POST', url: '/search', payload: { q: 'a' }, headers })).headers['x-cache'] as string | undefined
    t.equal(await search(), 'MISS')
    t.equal(await search(), 'HIT', 'by its parsed body, and its raw bytes remembered')
    t.equal(await search(), 'HIT')
    for (const [headers] of SHAPED) t.equal(await search(headers), 'BYPASS', Object.keys(headers)[0])
    t.equal(runs.runs, 1 + SHAPED.length)
  })
}

t.test('each case logs its reason at debug: the bypasses, and status-request-error in origin mode only', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, {}, { logger })
  const answer = async (_request: unknown, reply: FastifyReply): Promise<FastifyReply> => await reply.code(412).header('cache-control', 'max-age=60').send('x')
  app.get('/origin', { config: { cache: { ttl: 'origin' } } }, answer)
  app.get('/default', { config: { cache: { ttl: 60 } } }, answer)
  app.get('/page', { config: { cache: true } }, async () => 'page')
  for (const [headers] of SHAPED) await app.inject({ url: '/page', headers })
  t.same(reasons(lines, 'response cache bypass'), SHAPED.map(([, reason]) => reason))
  await app.inject('/origin')
  await app.inject('/default')
  t.same(reasons(lines, 'response cache: not stored'), ['status-request-error', 'status'], 'the default mode: not among its statusCodes')
})

t.test('the default mode stores a request error its route lists: the app owns the handler and its reasons', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.get('/bad', { config: { cache: { statusCodes: [200, ...REQUEST_ERRORS] } } }, async (request, reply) => {
    runs.next()
    return await reply.code(Number((request.query as { status: string }).status)).send('invalid query')
  })
  for (const status of REQUEST_ERRORS) {
    await app.inject(`/bad?status=${status}`)
    const hit = await app.inject(`/bad?status=${status}`)
    t.same([hit.headers['x-cache'], hit.statusCode], ['HIT', status], `${status}`)
  }
  t.equal(runs.runs, REQUEST_ERRORS.length)
})

t.test('statusCodes: 304 fails ready() in both modes; a request error fails it in origin mode, plugin-wide or the route\'s own', async (t) => {
  const bad: Array<[string, object, object, RegExp]> = [
    ['304', {}, { statusCodes: [200, 304] }, /"statusCodes" may not list 304: a 304 answers one client's conditional request and has no body/],
    ['304 in origin mode', {}, { ttl: 'origin', statusCodes: [304] }, /"statusCodes" may not list 304/],
    ...REQUEST_ERRORS.map((status): [string, object, object, RegExp] => [`${status} in origin mode`, {}, { ttl: 'origin', statusCodes: [200, status] },
      new RegExp(`"statusCodes" may not list ${status} with ttl: 'origin': an error the request caused is never stored from another server \\(400, 411, 412, 413, 414, 416, 431\\)`)]),
    ['400 under a plugin-wide origin mode', { ttl: 'origin' }, { statusCodes: [400] }, /may not list 400 with ttl: 'origin'/]
  ]
  for (const [name, plugin, cache, message] of bad) {
    const app = await cachedApp(t, plugin)
    app.get('/r', { config: { cache } }, async () => 'x')
    await t.rejects(async () => await app.ready(), { code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG', message }, name)
  }
  const app = await cachedApp(t, { ttl: 'origin' })
  app.get('/r', { config: { cache: { ttl: 60, statusCodes: [400] } } }, async () => 'x')
  await t.resolves(async () => { await app.ready() }, "a route's own number of seconds is the default mode")
})

t.test('If-None-Match and If-Modified-Since still use the cache: a hit answers them, a miss stores the 200 and never a 304', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  // A handler that answers its own conditional requests, as @fastify/etag does.
  app.get('/e', { config: { cache: true } }, async (request, reply) => {
    runs.next()
    reply.header('etag', '"e1"')
    return request.headers['if-none-match'] === '"e1"' ? await reply.code(304).send() : 'whole'
  })
  const conditional = await app.inject({ url: '/e', headers: { 'if-none-match': '"e1"' } })
  t.same([conditional.statusCode, conditional.headers['x-cache']], [304, 'MISS'], "the handler's 304, not stored")
  const clean = await app.inject('/e')
  t.same([clean.statusCode, clean.body, clean.headers['x-cache']], [200, 'whole', 'MISS'])
  const hit = await app.inject({ url: '/e', headers: { 'if-none-match': '"e1"' } })
  t.same([hit.statusCode, hit.headers['x-cache']], [304, 'HIT'], 'answered by the cache from the stored 200')
  t.equal((await app.inject({ url: '/e', headers: { 'if-modified-since': ago(0) } })).headers['x-cache'], 'HIT')
  t.equal(runs.runs, 2)
})

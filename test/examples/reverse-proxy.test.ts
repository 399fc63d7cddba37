// The reverse-proxy example in front of a plain node:http origin that sets every kind of freshness
// header, through real sockets: what is a hit, what goes to the origin (counted there), what unsafe
// methods forward and drop. On the memory store and on a real redis-server.
import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { build } from '../../examples/reverse-proxy/app.js'
import { eventually, until } from '../helpers/events.js'
import { exampleApp, redisServer } from '../helpers/examples.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const ago = (seconds: number): string => new Date(Date.now() - seconds * 1000).toUTCString()
const ahead = (seconds: number): string => new Date(Date.now() + seconds * 1000).toUTCString()

/** What the origin answers on each path, and what the proxy makes of a second GET of it. */
const PATHS: Record<string, { status?: number, headers: () => Record<string, string>, second: 'HIT' | 'MISS' }> = {
  '/max-age': { headers: () => ({ 'cache-control': 'max-age=60' }), second: 'HIT' },
  '/s-maxage': { headers: () => ({ 'cache-control': 'max-age=0, s-maxage=60' }), second: 'HIT' },
  '/expires': { headers: () => ({ expires: ahead(60), date: ago(0) }), second: 'HIT' },
  '/expires-past': { headers: () => ({ expires: ago(10), date: ago(0) }), second: 'MISS' },
  '/age': { headers: () => ({ 'cache-control': 'max-age=60', age: '30' }), second: 'HIT' },
  '/age-spent': { headers: () => ({ 'cache-control': 'max-age=60', age: '90' }), second: 'MISS' },
  '/no-store': { headers: () => ({ 'cache-control': 'no-store, max-age=60' }), second: 'MISS' },
  '/private': { headers: () => ({ 'cache-control': 'private, max-age=60' }), second: 'MISS' },
  '/no-freshness': { headers: () => ({}), second: 'MISS' },
  '/cdn': { headers: () => ({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' }), second: 'HIT' },
  '/cdn-no-store': { headers: () => ({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' }), second: 'MISS' },
  '/vary-encoding': { headers: () => ({ 'cache-control': 'max-age=60', vary: 'Accept-Encoding' }), second: 'HIT' },
  '/vary-other': { headers: () => ({ 'cache-control': 'max-age=60', vary: 'User-Agent' }), second: 'HIT' },
  '/vary-star': { headers: () => ({ 'cache-control': 'max-age=60', vary: '*' }), second: 'MISS' },
  '/set-cookie': { headers: () => ({ 'cache-control': 'max-age=60', 'set-cookie': 'session=1' }), second: 'MISS' },
  '/gone': { status: 404, headers: () => ({ 'cache-control': 'max-age=60' }), second: 'HIT' },
  '/unavailable': { status: 503, headers: () => ({ 'cache-control': 'max-age=60' }), second: 'MISS' },
  '/stream': { headers: () => ({ 'cache-control': 'max-age=60' }), second: 'HIT' },
  '/tagged': { headers: () => ({ 'cache-control': 'max-age=60', 'surrogate-key': 'product:1 catalog', 'cache-tag': 'shelf:a' }), second: 'HIT' },
  // The origin's Date counts whole seconds, so up to one of these goes to the age the response arrives with.
  '/validated': { headers: () => ({ 'cache-control': 'max-age=2', etag: '"v1"' }), second: 'HIT' }
}

/** Sent by /stream in separate writes, without content-length: the proxy gets a chunked body. */
const STREAM_LINES = Array.from({ length: 40 }, (_, i) => `line ${i} `.padEnd(1000, '.') + '\n')

interface Origin { url: string, requests: Map<string, number>, received: Array<{ method: string, path: string, type?: string, body: string }> }

async function startOrigin (t: Teardown): Promise<Origin> {
  const requests = new Map<string, number>()
  const received: Origin['received'] = []
  const answer = (req: IncomingMessage, res: ServerResponse, body: string): void => {
    const path = new URL(req.url ?? '/', 'http://origin').pathname
    received.push({ method: req.method ?? '', path, type: req.headers['content-type'], body })
    requests.set(path, (requests.get(path) ?? 0) + 1)
    const spec = PATHS[path]
    if (spec === undefined || req.method !== 'GET') {
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'text/plain', ...(req.method === 'POST' ? { location: '/max-age' } : {}) })
      res.end(`${req.method ?? ''} ${path} done`)
      return
    }
    const headers = spec.headers()
    // An origin that honours conditional requests: a 304, no body, when the client holds its version.
    if (headers.etag !== undefined && req.headers['if-none-match'] === headers.etag) {
      res.writeHead(304, { 'cache-control': 'max-age=60', etag: headers.etag })
      res.end()
      return
    }
    res.writeHead(spec.status ?? 200, { 'content-type': 'text/plain', ...headers })
    if (path !== '/stream') {
      res.end(`${path} #${requests.get(path) ?? 0}`)
      return
    }
    let i = 0
    const next = (): void => {
      if (i === STREAM_LINES.length) res.end()
      else res.write(STREAM_LINES[i++], () => setImmediate(next))
    }
    next()
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => { answer(req, res, Buffer.concat(chunks).toString()) })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, received }
}

interface Answer { status: number, headers: Record<string, string>, body: string }

async function proxied (t: Teardown, url: string | undefined, purgeToken?: string): Promise<{ origin: Origin, proxy: FastifyInstance, get: (path: string, init?: { method?: string, headers?: Record<string, string>, body?: string }) => Promise<Answer> }> {
  const origin = await startOrigin(t)
  const proxy = await exampleApp(t, url, async (redis) => await build({ upstream: origin.url, redis, purgeToken }))
  const address = await proxy.listen({ port: 0, host: '127.0.0.1' })
  const get = async (path: string, init: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Answer> => {
    const response = await request(address + path, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body })
    return { status: response.statusCode, headers: response.headers as Record<string, string>, body: await response.body.text() }
  }
  return { origin, proxy, get }
}

/**
 * An origin that, as many do, sends its caching headers on every answer, errors the request itself
 * caused included: a header section past its 4 KiB limit (400, or 431 on /431), a failed `If-Match`
 * or `If-Unmodified-Since` (412), and a method named by `X-HTTP-Method-Override` and its kin, which it
 * honours (a DELETE of a page it cannot delete: 404). Every clean GET gets the page, a 200.
 */
async function startStrictOrigin (t: Teardown): Promise<{ url: string, requests: Map<string, number> }> {
  const requests = new Map<string, number>()
  const count = (path: string): void => { requests.set(path, (requests.get(path) ?? 0) + 1) }
  const cached = { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }
  const lastModified = ago(3600)
  const server = createServer({ maxHeaderSize: 4096 }, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://origin').pathname
    count(path)
    const override = req.headers['x-http-method-override'] ?? req.headers['x-http-method'] ?? req.headers['x-method-override']
    const method = typeof override === 'string' ? override : req.method
    const ifMatch = req.headers['if-match']
    const ifUnmodifiedSince = req.headers['if-unmodified-since']
    if (method !== 'GET' && method !== 'HEAD') res.writeHead(404, cached).end(`nothing to ${method ?? ''} at ${path}`)
    else if ((ifMatch !== undefined && ifMatch !== '"v1"') || (ifUnmodifiedSince !== undefined && Date.parse(ifUnmodifiedSince) < Date.parse(lastModified))) {
      res.writeHead(412, cached).end('precondition failed')
    } else res.writeHead(200, { ...cached, etag: '"v1"', 'last-modified': lastModified }).end(`the page at ${path}`)
  })
  // Node's parser refuses the header section before any handler: the origin answers it itself.
  server.on('clientError', (error: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket) => {
    const path = error.rawPacket?.toString('latin1').split(' ')[1] ?? '/'
    count(path)
    const status = path === '/431' ? '431 Request Header Fields Too Large' : '400 Bad Request'
    const body = 'bad request'
    socket.end(`HTTP/1.1 ${status}\r\ncache-control: max-age=60\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

const redis = await redisServer(t)

for (const [store, url] of [['memory', undefined], ['redis', redis.url]] as const) {
  t.test(`${store}: each kind of freshness the origin sets decides what the proxy stores`, async (t) => {
    const { origin, get } = await proxied(t, url)
    for (const [path, spec] of Object.entries(PATHS)) {
      const first = await get(path)
      const second = await get(path)
      t.same([first.headers['x-cache'], second.headers['x-cache']], ['MISS', spec.second], path)
      t.equal(origin.requests.get(path), spec.second === 'HIT' ? 1 : 2, `${path}: origin requests`)
      t.equal(second.status, spec.status ?? 200)
      if (spec.second === 'HIT') t.equal(second.body, first.body, `${path}: the hit sends the origin's bytes`)
    }
  })

  t.test(`${store}: the origin's Vary selects the variant each client gets`, async (t) => {
    const { origin, get } = await proxied(t, url)
    const gzip = { 'accept-encoding': 'gzip' }
    const br = { 'accept-encoding': 'br, gzip' }
    t.equal((await get('/vary-encoding', { headers: gzip })).headers['x-cache'], 'MISS')
    t.equal((await get('/vary-encoding', { headers: br })).headers['x-cache'], 'MISS', 'another Accept-Encoding, another variant')
    t.equal((await get('/vary-encoding', { headers: gzip })).headers['x-cache'], 'HIT')
    t.equal((await get('/vary-encoding', { headers: { 'accept-encoding': 'br,gzip' } })).headers['x-cache'], 'HIT', 'the same list, spaced otherwise')
    t.equal((await get('/vary-other', { headers: { 'user-agent': 'a' } })).headers['x-cache'], 'MISS')
    t.equal((await get('/vary-other', { headers: { 'user-agent': 'b' } })).headers['x-cache'], 'MISS')
    t.equal((await get('/vary-other', { headers: { 'user-agent': 'a' } })).headers['x-cache'], 'HIT')
    t.equal(origin.requests.get('/vary-encoding'), 2)
    t.equal(origin.requests.get('/vary-other'), 2)
  })

  t.test(`${store}: a chunked body from the origin is passed on chunked, stored once it has ended, and hit with the same bytes`, async (t) => {
    const { origin, get } = await proxied(t, url)
    const miss = await get('/stream')
    t.equal(miss.headers['transfer-encoding'], 'chunked')
    t.equal(miss.headers['content-length'], undefined)
    t.equal(miss.body, STREAM_LINES.join(''))
    const hit = await get('/stream')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.body, miss.body)
    t.equal(hit.headers['content-length'], String(Buffer.byteLength(miss.body)))
    t.equal(hit.headers['cache-control'], 'max-age=60')
    t.equal(hit.headers.date, miss.headers.date, 'the origin\'s date, passed through')
    t.equal(origin.requests.get('/stream'), 1)
  })

  t.test(`${store}: a stale entry is revalidated upstream: the origin's 304 renews it, the body crosses the network once`, async (t) => {
    const { origin, get } = await proxied(t, url)
    const first = await get('/validated')
    const storedAt = Date.now()
    t.equal(first.headers.etag, '"v1"')
    await until(storedAt, 2000)
    const revalidated = await get('/validated')
    t.equal(revalidated.headers['x-cache'], 'REVALIDATED')
    t.equal(revalidated.status, 200)
    t.equal(revalidated.body, first.body, 'the stored body')
    t.equal(revalidated.headers['cache-control'], 'max-age=60', "the 304's headers")
    t.equal(revalidated.headers['content-type'], 'text/plain')
    t.equal(origin.requests.get('/validated'), 2)
    t.ok(await eventually(async () => (await get('/validated')).headers['x-cache'] === 'HIT'), 'fresh for the 304\'s max-age=60')
    t.equal(origin.requests.get('/validated'), 2)
    const conditional = await get('/validated', { headers: { 'if-none-match': '"v1"' } })
    t.equal(conditional.status, 304, "the client's own copy, confirmed by the cache")
  })

  t.test(`${store}: Age and Date on hits count the age the response arrived with`, async (t) => {
    const { get } = await proxied(t, url)
    await get('/age')
    const hit = await get('/age')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.ok(Number(hit.headers.age) >= 30 && Number(hit.headers.age) < 60, `age ${hit.headers.age}: the origin's 30, and more`)
  })

  t.test(`${store}: every method is forwarded with its body; unsafe ones drop what they change`, async (t) => {
    const { origin, get } = await proxied(t, url)
    const read = async (): Promise<string> => (await get('/max-age')).headers['x-cache']
    t.equal(await read(), 'MISS')
    t.equal(await read(), 'HIT')
    for (const method of ['PUT', 'PATCH', 'DELETE']) {
      const write = await get('/max-age', { method, headers: { 'content-type': 'application/x-anything' }, body: `${method} body` })
      t.equal(write.status, 200)
      t.equal(write.body, `${method} /max-age done`)
      t.match(origin.received.at(-1), { method, path: '/max-age', type: 'application/x-anything', body: `${method} body` }, `${method}: forwarded as sent`)
      t.equal(await read(), 'MISS', `${method}: the next GET goes to the origin`)
      t.equal(await read(), 'HIT')
    }
    // A POST elsewhere whose Location names the cached path drops it too (RFC 9111 section 4.4).
    const created = await get('/items', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
    t.equal(created.status, 201)
    t.match(origin.received.at(-1), { method: 'POST', path: '/items', body: '{"a":1}' })
    t.equal(await read(), 'MISS', 'dropped by the Location of a POST')
    // Safe methods are forwarded and drop nothing.
    t.equal((await get('/max-age', { method: 'OPTIONS' })).status, 200)
    t.equal(await read(), 'HIT')
  })

  t.test(`${store}: the origin's Surrogate-Key tags the entry and stops here; PURGE and the purge route behind PURGE_TOKEN`, async (t) => {
    const { origin, get } = await proxied(t, url, 'tok3n')
    const miss = await get('/tagged')
    t.same([miss.headers['x-cache'], miss.headers['surrogate-key'], miss.headers['cache-tag']], ['MISS', undefined, undefined], 'not sent on')
    const hit = await get('/tagged')
    t.same([hit.headers['x-cache'], hit.headers['surrogate-key']], ['HIT', undefined], 'nor stored')
    for (const authorization of [undefined, 'Bearer wrong', 'tok3n']) {
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization }
      t.equal((await get('/tagged', { method: 'PURGE', headers })).status, 401, `PURGE with ${authorization ?? 'no authorization'}`)
      t.equal((await get('/cache/purge', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{"tags":["catalog"]}' })).status, 401)
    }
    t.equal((await get('/tagged')).headers['x-cache'], 'HIT', 'nothing dropped')
    const purged = await get('/tagged', { method: 'PURGE', headers: { authorization: 'Bearer tok3n' } })
    t.same([purged.status, JSON.parse(purged.body)], [200, { purged: 1, soft: false }])
    t.equal((await get('/tagged')).headers['x-cache'], 'MISS', 'PURGE dropped it')
    t.ok(await eventually(async () => (await get('/tagged')).headers['x-cache'] === 'HIT'))
    for (const tag of ['catalog', 'shelf:a']) {
      const byTag = await get('/cache/purge', { method: 'POST', headers: { authorization: 'Bearer tok3n', 'content-type': 'application/json' }, body: JSON.stringify({ tags: [tag] }) })
      t.same([byTag.status, JSON.parse(byTag.body)], [200, { purged: 1, soft: false }], `the origin's ${tag}`)
      t.equal((await get('/tagged')).headers['x-cache'], 'MISS')
      t.ok(await eventually(async () => (await get('/tagged')).headers['x-cache'] === 'HIT'))
    }
    t.equal(origin.received.filter((request) => request.method !== 'GET').length, 0, 'PURGE and the purge route never reach the origin')
  })

  t.test(`${store}: without PURGE_TOKEN there is no purge: PURGE is refused, POST /cache/purge goes to the origin`, async (t) => {
    const { origin, get } = await proxied(t, url)
    await get('/tagged')
    t.equal((await get('/tagged', { method: 'PURGE' })).status, 404)
    t.equal((await get('/cache/purge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tags":["catalog"]}' })).body, 'POST /cache/purge done')
    t.equal((await get('/tagged')).headers['x-cache'], 'HIT')
    t.equal(origin.requests.get('/tagged'), 1)
  })

  t.test(`${store}: HEAD from the GET entry, queries apart, authorization never shared`, async (t) => {
    const { origin, get } = await proxied(t, url)
    await get('/max-age')
    const head = await get('/max-age', { method: 'HEAD' })
    t.equal(head.headers['x-cache'], 'HIT')
    t.equal(head.body, '')
    t.same([(await get('/max-age?page=2')).headers['x-cache'], (await get('/max-age?page=2')).headers['x-cache']], ['MISS', 'HIT'])
    const personal = await get('/max-age', { headers: { authorization: 'Bearer a' } })
    t.equal(personal.headers['x-cache'], 'BYPASS')
    t.equal(origin.requests.get('/max-age'), 3)
  })

  t.test(`${store}: cache-poisoned denial of service: an error the attacker's request caused never reaches a clean request`, async (t) => {
    const origin = await startStrictOrigin(t)
    const proxy = await exampleApp(t, url, async (redis) => await build({ upstream: origin.url, redis }))
    const address = await proxy.listen({ port: 0, host: '127.0.0.1' })
    const get = async (path: string, headers: Record<string, string> = {}): Promise<Answer> => {
      const response = await request(address + path, { headers })
      return { status: response.statusCode, headers: response.headers as Record<string, string>, body: await response.body.text() }
    }
    // Each attack as an attacker runs it, on a page of its own: the bad request first, then clean ones.
    const attacks: Array<[string, Record<string, string>, number, 'MISS' | 'BYPASS']> = [
      ['/oversized', { 'x-padding': 'a'.repeat(6000) }, 400, 'MISS'],
      ['/431', { 'x-padding': 'a'.repeat(6000) }, 431, 'MISS'],
      ['/if-match', { 'if-match': '"not-the-victims"' }, 412, 'BYPASS'],
      ['/if-unmodified-since', { 'if-unmodified-since': ago(86_400) }, 412, 'BYPASS'],
      ['/x-http-method-override', { 'x-http-method-override': 'DELETE' }, 404, 'BYPASS'],
      ['/x-http-method', { 'x-http-method': 'DELETE' }, 404, 'BYPASS'],
      ['/x-method-override', { 'x-method-override': 'DELETE' }, 404, 'BYPASS']
    ]
    for (const [path, headers, status, cache] of attacks) {
      const attack = await get(path, headers)
      t.same([attack.status, attack.headers['cache-control'], attack.headers['x-cache']], [status, 'max-age=60', cache], `${path}: the attacker gets the origin's error`)
      const victim = await get(path)
      t.same([victim.status, victim.body, victim.headers['x-cache']], [200, `the page at ${path}`, 'MISS'], `${path}: a clean request reaches the origin and gets the page`)
      t.equal(origin.requests.get(path), 2, `${path}: origin requests`)
      let hit = victim
      t.ok(await eventually(async () => (hit = await get(path)).headers['x-cache'] === 'HIT'), `${path}: stored`)
      t.same([hit.status, hit.body], [200, `the page at ${path}`], `${path}: the page is what is stored`)
    }
  })
}

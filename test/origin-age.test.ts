// Age and Date through real sockets: an origin server that sets its own freshness, Fastify in front of
// it with ttl: 'origin' (the way a caching proxy forwards: undici upstream, headers copied), and an
// undici client. The origin's Date goes through untouched; Age counts the age the response arrived
// with (from the origin's Age and Date) plus its time in the cache.
import Fastify from 'fastify'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import responseCache from '../lib/index.js'

/** What the origin sends for each path: its Date is `dateAgo` seconds old. */
const ORIGIN: Record<string, { cacheControl: string, age?: string, dateAgo: number }> = {
  '/dated': { cacheControl: 'max-age=600', dateAgo: 20 },
  '/aged': { cacheControl: 'max-age=600', age: '100', dateAgo: 0 },
  '/spent': { cacheControl: 'max-age=600', age: '700', dateAgo: 0 }
}

/** Not forwarded: they describe one connection (and Fastify sets content-length itself). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length'])

async function listen (server: Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('through HTTP: Date passes through as the origin sent it, Age adds the age it arrived with', async (t) => {
  let originRuns = 0
  const origin = createServer((req, res) => {
    originRuns++
    const spec = ORIGIN[req.url ?? '']
    const headers: Record<string, string> = {
      'content-type': 'text/plain',
      'cache-control': spec.cacheControl,
      date: new Date(Date.now() - spec.dateAgo * 1000).toUTCString()
    }
    if (spec.age !== undefined) headers.age = spec.age
    res.writeHead(200, headers).end(`body of ${req.url ?? ''}`)
  })
  const upstream = await listen(origin)
  t.teardown(() => { origin.close() })

  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache, { ttl: 'origin' })
  app.get('/*', { config: { cache: true } }, async (req, reply) => {
    const answer = await request(upstream + req.url)
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) reply.header(name, value)
    }
    return await reply.code(answer.statusCode).send(Buffer.from(await answer.body.arrayBuffer()))
  })
  const proxy = await app.listen({ port: 0, host: '127.0.0.1' })

  const get = async (path: string): Promise<{ headers: Record<string, string>, body: string }> => {
    const answer = await request(proxy + path)
    return { headers: answer.headers as Record<string, string>, body: await answer.body.text() }
  }

  const miss = await get('/dated')
  const hit = await get('/dated')
  t.equal(miss.headers['x-cache'], 'MISS')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.body, 'body of /dated')
  t.equal(hit.headers.date, miss.headers.date, 'the origin\'s Date, not the time of the hit')
  t.ok(Date.now() - Date.parse(hit.headers.date) >= 20_000, 'which is 20 s old')
  t.ok(Number(hit.headers.age) >= 20 && Number(hit.headers.age) < 600, `age ${hit.headers.age}: the 20 s it was old on arrival, and more`)

  await get('/aged')
  const aged = await get('/aged')
  t.equal(aged.headers['x-cache'], 'HIT')
  t.ok(Number(aged.headers.age) >= 100 && Number(aged.headers.age) < 600, `age ${aged.headers.age}: the origin's Age 100, and more`)

  const spent = [await get('/spent'), await get('/spent')]
  t.same(spent.map((r) => r.headers['x-cache']), ['MISS', 'MISS'], 'Age 700 > max-age 600: stale on arrival, not stored')
  t.equal(spent[1].headers.age, '700', 'a miss passes the origin\'s Age through')
  t.equal(originRuns, 4)
})

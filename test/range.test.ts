// A stored 200 never answers a Range request (docs/API.md, "HTTP caching (RFC 9111)"): a GET with
// Range goes to the route (which may answer 206 with part of the body), and a 206 is never stored as
// the whole, in both modes.
import type { FastifyReply, FastifyRequest } from 'fastify'
import t from 'tap'
import { cachedApp, counter, logCapture } from './helpers/app.js'

const BODY = '0123456789'

/** Answers a range of BODY when asked, like @fastify/static: 206 with content-range. */
function ranged (runs: { next: () => number }) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<string> => {
    runs.next()
    reply.header('cache-control', 'max-age=600').header('accept-ranges', 'bytes')
    const match = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '')
    if (match === null) return BODY
    const [from, to] = [Number(match[1]), Number(match[2])]
    reply.code(206).header('content-range', `bytes ${from}-${to}/${BODY.length}`)
    return BODY.slice(from, to + 1)
  }
}

for (const ttl of [60, 'origin'] as const) {
  t.test(`ttl ${ttl}: a GET with Range goes to the route, whether or not the whole is stored, and nothing partial is stored`, async (t) => {
    const { lines, logger } = logCapture()
    const app = await cachedApp(t, {}, { logger })
    const runs = counter()
    app.get('/file', { config: { cache: { ttl, statusCodes: [200, 206] } } }, ranged(runs))
    const range = { url: '/file', headers: { range: 'bytes=2-4' } }

    const first = await app.inject(range)
    t.equal(first.statusCode, 206)
    t.equal(first.body, '234')
    t.equal(first.headers['x-cache'], 'BYPASS')
    t.equal((await app.inject('/file')).headers['x-cache'], 'MISS', 'the 206 was not stored as the whole')

    const hit = await app.inject('/file')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.body, BODY)
    const partial = await app.inject(range)
    t.equal(partial.statusCode, 206, 'the stored 200 does not answer a Range request')
    t.equal(partial.body, '234')
    t.equal(partial.headers['content-range'], 'bytes 2-4/10')
    t.equal((await app.inject('/file')).body, BODY, 'and the whole stays stored')
    t.equal(runs.runs, 3)

    const head = await app.inject({ method: 'HEAD', url: '/file', headers: { range: 'bytes=2-4' } })
    t.equal(head.headers['x-cache'], 'HIT', 'Range means nothing to HEAD (RFC 9110 section 14.2): served from the entry')
    t.equal(head.statusCode, 200)
    const reasons = lines.filter((l) => l.msg === 'response cache bypass').map((l) => (l.responseCache as { reason: string }).reason)
    t.same(reasons, ['range', 'range'])
  })
}

t.test('Range on a POST means nothing (RFC 9110 section 14.2): the body-keyed entry is used', async (t) => {
  const app = await cachedApp(t)
  const runs = counter()
  app.post('/search', { config: { cache: true } }, async () => ({ run: runs.next() }))
  const search = { method: 'POST' as const, url: '/search', payload: { q: 1 }, headers: { range: 'bytes=0-1' } }
  await app.inject(search)
  t.equal((await app.inject(search)).headers['x-cache'], 'HIT')
  t.equal(runs.runs, 1)
})

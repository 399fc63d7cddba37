// @fastify/static next to the cache (issue 26, point 4), registered as its README shows: its files
// are served as before (bytes, etag, last-modified, 304, ranges) next to cached routes, and a cached
// route that answers with reply.sendFile is stored when its cache-control lets it be.
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyInstance } from 'fastify'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import responseCache from '../../lib/index.js'
import { CATALOGUE, counter, NAVIGATION, servePair, stableHeaders } from './helpers.js'

const root = await mkdtemp(join(tmpdir(), 'compat-static-'))
t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
const PAGE = '<!doctype html><title>Shop</title>' + '<p>garden tools</p>'.repeat(100)
const STYLES = 'body { color: #333 }\n'.repeat(80)
await writeFile(join(root, 'index.html'), PAGE)
await writeFile(join(root, 'app.css'), STYLES)

function builder (runs: { next: () => number }): (withCache: boolean) => Promise<FastifyInstance> {
  return async (withCache) => {
    const app = Fastify()
    if (withCache) await app.register(responseCache, { ttl: 60 })
    // The README's form.
    await app.register(fastifyStatic, { root, prefix: '/public/' })
    app.get('/api/catalogue', { config: { cache: true } }, async () => {
      if (withCache) runs.next()
      return CATALOGUE
    })
    // The README's sendFile forms, from cached routes.
    app.get('/home', { config: { cache: true } }, async (_request, reply) => {
      if (withCache) runs.next()
      return await reply.sendFile('index.html', { cacheControl: false })
    })
    app.get('/home-max-age-0', { config: { cache: true } }, async (_request, reply) => {
      if (withCache) runs.next()
      return await reply.sendFile('index.html')
    })
    return app
  }
}

t.test('static files next to cached routes: served as without the cache, with their validators and 304s', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, builder(runs))
  t.match(await cached('/api/catalogue'), { status: 200, cache: 'MISS' })
  t.match(await cached('/api/catalogue'), { status: 200, cache: 'HIT', body: JSON.stringify(CATALOGUE) })

  for (const [path, content] of [['/public/app.css', STYLES], ['/public/index.html', PAGE], ['/public/', PAGE]] as const) {
    const answer = await cached(path, { headers: NAVIGATION })
    const without = await plain(path, { headers: NAVIGATION })
    t.match(answer, { status: 200, body: content }, `${path}: the file`)
    t.equal(answer.cache, undefined, `${path}: not a cached route`)
    t.same(stableHeaders(answer, 'last-modified'), stableHeaders(without, 'last-modified'))
    t.equal(answer.headers.etag, without.headers.etag, `${path}: @fastify/static's etag`)
    t.ok(answer.headers['last-modified'])
    const notModified = await cached(path, { headers: { ...NAVIGATION, 'if-none-match': answer.headers.etag as string } })
    t.match(notModified, { status: 304, body: '' }, `${path}: 304 to its etag`)
    const part = await cached(path, { headers: { range: 'bytes=0-9', 'accept-encoding': undefined } })
    t.match(part, { status: 206, body: content.slice(0, 10) }, `${path}: a range`)
  }
  t.match(await cached('/public/missing.css'), { status: 404 })
  t.equal(runs.runs, 1)
})

t.test('reply.sendFile from a cached route: stored with `cacheControl: false`, passed on with static\'s max-age=0', async (t) => {
  const runs = counter()
  const { cached, plain } = await servePair(t, builder(runs))
  const without = await plain('/home', { headers: NAVIGATION })
  t.match(await cached('/home', { headers: NAVIGATION }), { status: 200, cache: 'MISS', body: PAGE })
  const hit = await cached('/home', { headers: NAVIGATION })
  t.match(hit, { status: 200, cache: 'HIT', body: without.body }, 'the file from the cache')
  t.same(stableHeaders(hit, 'transfer-encoding', 'content-length'), stableHeaders(without, 'transfer-encoding', 'content-length'))
  t.match(await cached('/home', { headers: { ...NAVIGATION, 'if-none-match': hit.headers.etag as string } }), { status: 304, cache: 'HIT' })
  t.match(await cached('/home', { headers: { range: 'bytes=0-14' } }), { status: 206, cache: 'BYPASS', body: PAGE.slice(0, 15) }, 'a range goes to @fastify/static')
  t.equal(runs.runs, 2)

  // `cache-control: public, max-age=0`, @fastify/static's default: fresh for no time, so not stored.
  const withoutZero = await plain('/home-max-age-0', { headers: NAVIGATION })
  t.equal(withoutZero.headers['cache-control'], 'public, max-age=0')
  for (let i = 0; i < 2; i++) {
    const answer = await cached('/home-max-age-0', { headers: NAVIGATION })
    t.match(answer, { status: 200, cache: 'MISS', body: PAGE })
    t.equal(answer.headers['cache-control'], 'public, max-age=0')
  }
})

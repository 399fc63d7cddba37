// surrogateKeys: an origin's Surrogate-Key (Fastly) and Cache-Tag (Cloudflare) headers tag the entry,
// and leave the response, on memory, Redis, a Redis Cluster and three tiered instances.
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { Readable } from 'node:stream'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { eventually } from './helpers/events.js'
import { freePort, spawnRedis } from './helpers/redis.js'
import { storeKinds } from './helpers/stores.js'

type Tap = import('tap').Test

/**
 * Items an origin tags: `/items/:id` in origin mode, `/plain/:id` with a number ttl, `/stream/:id` a
 * streamed body; each with `Surrogate-Key: item:<id> all` and `Cache-Tag: shelf:<id>, all`.
 */
function itemRoutes (app: FastifyInstance, runs: { next: () => number }, route: { surrogateKeys?: boolean | { keep: boolean } } = {}): void {
  const tagged = (id: string): Record<string, string> => ({ 'surrogate-key': ` item:${id}  all `, 'cache-tag': `shelf:${id} ,all,` })
  app.get<{ Params: { id: string } }>('/items/:id', { config: { cache: { ttl: 'origin', ...route } } }, async (request, reply) => {
    reply.headers({ 'cache-control': 'max-age=600', ...tagged(request.params.id) })
    return { id: request.params.id, run: runs.next() }
  })
  app.get<{ Params: { id: string } }>('/plain/:id', { config: { cache: { ttl: 600, ...route } } }, async (request, reply) => {
    reply.headers(tagged(request.params.id))
    return { id: request.params.id, run: runs.next() }
  })
  app.get<{ Params: { id: string } }>('/stream/:id', { config: { cache: { ttl: 'origin', ...route } } }, async (request, reply) => {
    reply.headers({ 'cache-control': 'max-age=600', 'content-type': 'text/plain', ...tagged(request.params.id) })
    return await reply.send(Readable.from([`stream ${request.params.id} `, `run ${runs.next()}`]))
  })
}

const surrogateHeaders = (headers: Record<string, unknown>): unknown[] => [headers['surrogate-key'], headers['cache-tag']]

async function storedAndPurged (t: Tap, options: () => ResponseCacheOptions): Promise<void> {
  const runs = counter()
  const app = await cachedApp(t, { ...options(), surrogateKeys: true })
  itemRoutes(app, runs)
  await app.ready()
  for (const path of ['/items/1', '/plain/1', '/stream/1']) {
    const miss = await app.inject(path)
    t.equal(miss.headers['x-cache'], 'MISS', path)
    t.same(surrogateHeaders(miss.headers), [undefined, undefined], `${path}: the headers are not sent`)
    let hit = miss
    t.ok(await eventually(async () => (hit = await app.inject(path)).headers['x-cache'] === 'HIT'), `${path}: stored`)
    t.same(surrogateHeaders(hit.headers), [undefined, undefined], `${path}: nor stored`)
    t.equal(hit.body, miss.body)
  }
  await app.inject('/items/2')
  t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 3, 'a Surrogate-Key drops the entries of each route that named it')
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items/2')).headers['x-cache'], 'HIT', 'and no other')
  t.ok(await eventually(async () => (await app.inject('/items/1')).headers['x-cache'] === 'HIT'))
  t.equal(await app.cache.invalidate({ tags: ['shelf:1'] }), 1, 'a Cache-Tag item, trimmed')
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  t.ok(await eventually(async () => (await app.inject('/items/1')).headers['x-cache'] === 'HIT'))
  t.equal(await app.cache.invalidate({ tags: [''] }), 0, 'no empty key was taken from the separators')
  t.equal(await app.cache.invalidate({ tags: ['all'] }), 2, 'a key both headers name: /items/1 and /items/2')
}

const redisKinds = await storeKinds(t)
for (const [name, options] of redisKinds) {
  t.test(`${name}: the origin's keys tag the entry and leave the response`, async (t) => { await storedAndPurged(t, options) })
}

t.test('Redis Cluster: the origin\'s keys tag the entry and leave the response', async (t) => {
  const cluster = await startCluster(t)
  let n = 0
  await storedAndPurged(t, () => ({ store: 'redis', redis: cluster, namespace: `cl${++n}`, timeout: 2000 }))
})

t.test('three tiered instances: a purge by a surrogate key on one is seen by the others', async (t) => {
  const port = await freePort()
  const server = await spawnRedis(port)
  t.teardown(server.kill)
  const runs = counter()
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 3; i++) {
    // As the README shows it: a client straight from `new Redis(url)`, still connecting.
    const redis = new Redis(`redis://127.0.0.1:${port}`)
    redis.on('error', () => {})
    t.teardown(() => { redis.disconnect() })
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(responseCache, { store: 'tiered', redis, namespace: 'tiered-sk', surrogateKeys: true })
    itemRoutes(app, runs)
    await app.ready()
    apps.push(app)
  }
  const [a, b, c] = apps
  t.equal((await a.inject('/items/1')).headers['x-cache'], 'MISS')
  for (const app of [b, c]) {
    let hit = await app.inject('/items/1')
    t.ok(await eventually(async () => (hit = await app.inject('/items/1')).headers['x-cache'] === 'HIT'), 'stored in Redis, then in its memory')
    t.same(surrogateHeaders(hit.headers), [undefined, undefined])
  }
  t.equal(await b.cache.invalidate({ tags: ['item:1'] }), 1)
  for (const app of [a, c]) t.ok(await eventually(async () => (await app.inject('/items/1')).json().run !== 1), 'gone from every memory tier')
})

t.test('keep: the headers go on to the client, on the miss and on hits', async (t) => {
  for (const option of [{ keep: true }, true] as const) {
    const app = await cachedApp(t, { surrogateKeys: option })
    itemRoutes(app, counter(), { surrogateKeys: { keep: true } })
    const miss = await app.inject('/items/1')
    const hit = await app.inject('/items/1')
    t.equal(hit.headers['x-cache'], 'HIT')
    for (const answer of [miss, hit]) t.same(surrogateHeaders(answer.headers), [' item:1  all ', 'shelf:1 ,all,'])
    t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 1, 'and the keys still tag the entry')
  }
})

t.test('off by default, and a route may turn it off: the headers are passed on and tag nothing', async (t) => {
  for (const [plugin, route] of [[undefined, undefined], [true, false]] as const) {
    const app = await cachedApp(t, plugin === undefined ? {} : { surrogateKeys: plugin })
    itemRoutes(app, counter(), route === undefined ? {} : { surrogateKeys: route })
    await app.inject('/items/1')
    const hit = await app.inject('/items/1')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.same(surrogateHeaders(hit.headers), [' item:1  all ', 'shelf:1 ,all,'])
    t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 0)
  }
  const app = await cachedApp(t)
  itemRoutes(app, counter(), { surrogateKeys: true })
  t.same(surrogateHeaders((await app.inject('/items/1')).headers), [undefined, undefined], 'a route turns it on alone')
  t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 1)
})

t.test('an uncached answer loses the headers too: a bypass, an error', async (t) => {
  const app = await cachedApp(t, { surrogateKeys: true })
  itemRoutes(app, counter())
  const bypass = await app.inject({ url: '/items/1', headers: { authorization: 'Bearer x' } })
  t.equal(bypass.headers['x-cache'], 'BYPASS')
  t.same(surrogateHeaders(bypass.headers), [undefined, undefined])
  t.equal(await app.cache.invalidate({ tags: ['item:1'] }), 0, 'nothing stored')
})

t.test('past the bounds of tags: served, not stored, one warning naming the bound', async (t) => {
  const { lines, logger } = logCapture('warn')
  const app = await cachedApp(t, { surrogateKeys: true }, { logger })
  app.get('/many', { config: { cache: { ttl: 'origin', tags: ['route-tag'] } } }, async (_request, reply) => {
    // 64 of the origin's and the route's own: 65 tags.
    reply.headers({ 'cache-control': 'max-age=60', 'surrogate-key': Array.from({ length: 64 }, (_, i) => `k${i}`).join(' ') })
    return 'many'
  })
  app.get('/long', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => {
    reply.headers({ 'cache-control': 'max-age=60', 'cache-tag': 'short, ' + 'é'.repeat(129) })
    return 'long'
  })
  app.get('/just', { config: { cache: { ttl: 'origin' } } }, async (_request, reply) => {
    reply.headers({ 'cache-control': 'max-age=60', 'surrogate-key': Array.from({ length: 63 }, (_, i) => `k${i}`).join(' ') + ' k0 ' + 'a'.repeat(256) })
    return 'just'
  })
  for (const [path, reason] of [['/many', 'too-many-tags'], ['/long', 'tag-too-long']]) {
    const answers = [await app.inject(path), await app.inject(path)]
    t.same(answers.map((answer) => [answer.statusCode, answer.headers['x-cache'], answer.headers['surrogate-key']]), [[200, 'MISS', undefined], [200, 'MISS', undefined]], `${path}: served, not stored`)
    t.match(answers[1].headers['cache-status'], `detail=${reason}`)
    t.equal(lines.filter((line) => (line.responseCache as { reason?: string } | undefined)?.reason === reason).length, 1, `${path}: said once`)
  }
  t.notMatch(JSON.stringify(lines), /k12|éé/, 'never the keys')
  await app.inject('/just')
  t.equal((await app.inject('/just')).headers['x-cache'], 'HIT', '64 distinct keys of 256 bytes: within the bounds')
})

t.test('a tenant\'s keys are the tenant\'s: a purge within one tenant leaves the others\'', async (t) => {
  for (const [name, options] of redisKinds) {
    const app = await cachedApp(t, { ...options(), surrogateKeys: true, tenant: (request) => request.headers['x-tenant'] as string | undefined })
    itemRoutes(app, counter())
    for (const tenant of ['a', 'b']) {
      await app.inject({ url: '/items/1', headers: { 'x-tenant': tenant } })
      t.ok(await eventually(async () => (await app.inject({ url: '/items/1', headers: { 'x-tenant': tenant } })).headers['x-cache'] === 'HIT'))
    }
    t.equal(await app.cache.invalidate({ tags: ['item:1'], tenant: 'a' }), 1, `${name}: one tenant's`)
    t.equal((await app.inject({ url: '/items/1', headers: { 'x-tenant': 'a' } })).headers['x-cache'], 'MISS')
    t.equal((await app.inject({ url: '/items/1', headers: { 'x-tenant': 'b' } })).headers['x-cache'], 'HIT', `${name}: the other tenant's entry stays`)
  }
})

t.test('keys that look like Redis patterns or hash tags select only themselves', async (t) => {
  const [, [, redis]] = redisKinds
  const app = await cachedApp(t, { ...redis(), surrogateKeys: true })
  app.get<{ Params: { id: string } }>('/k/:id', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
    reply.headers({ 'cache-control': 'max-age=60', 'surrogate-key': ['*', '{x}', 'x', 'a?c'][Number(request.params.id)] })
    return request.params.id
  })
  for (const id of ['0', '1', '2', '3']) {
    await app.inject(`/k/${id}`)
    t.ok(await eventually(async () => (await app.inject(`/k/${id}`)).headers['x-cache'] === 'HIT'))
  }
  t.equal(await app.cache.invalidate({ tags: ['*'] }), 1)
  t.equal(await app.cache.invalidate({ tags: ['{x}'] }), 1)
  t.equal(await app.cache.invalidate({ tags: ['abc'] }), 0)
  t.equal((await app.inject('/k/2')).headers['x-cache'], 'HIT')
  t.equal((await app.inject('/k/3')).headers['x-cache'], 'HIT')
})

t.test('a bad surrogateKeys fails ready() naming it', async (t) => {
  for (const value of ['yes', { keep: 'no' }, { keeep: true }]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(responseCache, { surrogateKeys: value as never }).ready().then(() => t.fail('ready'), (error: unknown) => {
      t.match(error, { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message: /"surrogateKeys": expected a boolean or an object \{ keep: boolean \}/ })
    })
  }
  const app = await cachedApp(t)
  app.get('/x', { config: { cache: { surrogateKeys: 1 as never } } }, async () => 'x')
  await t.rejects(async () => { await app.ready() }, { code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG', message: /"GET \/x": "surrogateKeys"/ })
})

t.test('a 304 that renews a stale entry: the keys it names tag it; with keep, the stored ones stay', async (t) => {
  for (const [keep, expected] of [[false, ['from-304']], [true, ['from-304', 'from-200']]] as const) {
    const app = await cachedApp(t, { surrogateKeys: { keep } })
    let runs = 0
    app.get('/doc', { config: { cache: { ttl: 'origin' } } }, async (request, reply) => {
      // Stored, and revalidated on every use: renewed by a 304.
      reply.header('cache-control', 'no-cache').header('etag', '"v1"')
      if (request.headers['if-none-match'] === '"v1"') return await reply.code(304).header('cache-tag', 'from-304').send()
      reply.header('surrogate-key', 'from-200')
      return `doc ${++runs}`
    })
    t.equal((await app.inject('/doc')).headers['x-cache'], 'MISS')
    const renewed = await app.inject('/doc')
    t.same([renewed.headers['x-cache'], renewed.body], ['REVALIDATED', 'doc 1'])
    t.equal(renewed.headers['cache-tag'], keep ? 'from-304' : undefined)
    t.same((await app.cache.list({ route: 'GET /doc' }))?.entries.map((entry) => entry.tags), [expected], `keep: ${String(keep)}`)
    t.equal(await app.cache.invalidate({ tags: ['from-304'] }), 1)
  }
})

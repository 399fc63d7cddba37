import t from 'tap'
import type { EntryPage, WrapContext } from '../lib/index.js'
import { cachedApp, counter } from './helpers/app.js'
import { eventually, until } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'

const kinds = await storeKinds(t)

async function listed (app: Awaited<ReturnType<typeof cachedApp>>, selector: { tag?: string, route?: string }): Promise<EntryPage['entries']> {
  return (await app.cache.list({ ...selector, limit: 100 }) as EntryPage).entries
}

for (const [kind, options] of kinds) {
  t.test(`${kind}: wrap's fn sets ctx.ttl and ctx.tags from the value it made`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    const seen: Array<Pick<WrapContext, 'ttl' | 'tags' | 'staleIfError'>> = []
    const load = async (): Promise<{ org: string }> => await app.cache.wrap('user:1', async (ctx) => {
      runs.next()
      seen.push({ ttl: ctx.ttl, tags: [...ctx.tags], staleIfError: ctx.staleIfError })
      ctx.ttl = 1000
      ctx.tags.push('org:7')
      return { org: '7' }
    }, { ttl: 10, tags: ['users'] })
    t.same(await load(), { org: '7' })
    t.same(seen[0], { ttl: 10, tags: ['users'], staleIfError: 0 }, 'ctx starts from the call\'s options')
    const [entry] = await listed(app, { tag: 'org:7' })
    t.equal(entry?.ttl, 1000, 'stored for ctx.ttl, not the call\'s ttl')
    t.same(entry?.tags.sort(), ['org:7', 'users'])
    t.same(await load(), { org: '7' })
    t.equal(runs.runs, 1, 'a hit')
    await app.cache.invalidate({ tags: ['org:7'] })
    t.same(await load(), { org: '7' })
    t.equal(runs.runs, 2, 'the tag fn added drops it')

    // Untouched, ctx leaves the call's settings as they were.
    await app.cache.wrap('plain', () => 1, { ttl: 10, tags: ['plain'] })
    t.equal((await listed(app, { tag: 'plain' }))[0]?.ttl, 10)
  })

  t.test(`${kind}: ctx.skip() answers the value without caching it`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    const load = async (skip: boolean): Promise<number> => await app.cache.wrap('maybe', (ctx) => {
      if (skip) ctx.skip()
      return runs.next()
    })
    t.equal(await load(true), 1)
    t.equal(await app.cache.get('maybe'), undefined, 'nothing stored')
    t.equal(await load(true), 2, 'fn runs again on the next call')
    t.equal(await load(false), 3)
    t.equal(await load(false), 3, 'without skip the value is cached')
    t.equal(app.cache.stats().values.stores, 1)
  })

  t.test(`${kind}: ctx.staleIfError keeps the value for a later call's stale-if-error`, async (t) => {
    const app = await cachedApp(t, options())
    await app.cache.wrap('kept', (ctx) => { ctx.ttl = 0.05; ctx.staleIfError = 600; return 'old' }, { ttl: 60 })
    // Past its ttl (50 ms), the value is still held; a failing fn gets it within the call's window.
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.equal(await app.cache.wrap('kept', () => { throw new Error('down') }, { staleIfError: 600 }), 'old')
    await app.cache.wrap('dropped', (ctx) => { ctx.ttl = 0.05; ctx.staleIfError = 0; return 'old' }, { ttl: 60, staleIfError: 600 })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await t.rejects(app.cache.wrap('dropped', () => { throw new Error('down') }, { staleIfError: 600 }), /down/, 'ctx.staleIfError 0: not kept past its ttl')
  })

  t.test(`${kind}: a bad ctx field throws naming it; nothing is stored`, async (t) => {
    const app = await cachedApp(t, options())
    await t.rejects(app.cache.wrap('k', (ctx) => { ctx.ttl = 0; return 1 }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"ctx\.ttl"/ })
    await t.rejects(app.cache.wrap('k', (ctx) => { ctx.tags.push(''); return 1 }), { message: /"ctx\.tags"/ })
    await t.rejects(app.cache.wrap('k', (ctx) => { ctx.staleIfError = -1; return 1 }), { message: /"ctx\.staleIfError"/ })
    t.equal(await app.cache.get('k'), undefined)
    t.equal(await app.cache.wrap('k', () => 2), 2, 'the key is free again')
  })

  t.test(`${kind}: reply.cacheTtl(n) sets the stored entry's TTL; 0 stores nothing`, async (t) => {
    const app = await cachedApp(t, { ...options(), ttl: 10 })
    const runs = counter()
    app.get('/t/:n', { config: { cache: true } }, async (request, reply) => {
      runs.next()
      reply.cacheTtl(Number((request.params as { n: string }).n))
      return 'x'
    })
    app.get('/bad/:n', { config: { cache: true } }, async (request, reply) => {
      const n = (request.params as { n: string }).n
      reply.cacheTtl(n === 'text' ? n as unknown as number : Number(n))
      return 'x'
    })
    await app.inject('/t/1000')
    const entries = await listed(app, { route: 'GET /t/:n' })
    t.same(entries.map((e) => e.ttl), [1000], 'stored for 1000 s, not the route\'s 10')
    t.equal((await app.inject('/t/1000')).headers['x-cache'], 'HIT')

    t.equal((await app.inject('/t/0')).headers['x-cache'], 'MISS')
    const before = runs.runs
    t.equal((await app.inject('/t/0')).headers['x-cache'], 'MISS', 'cacheTtl(0): not stored')
    t.equal(runs.runs, before + 1)
    t.same((await listed(app, { route: 'GET /t/:n' })).length, 1)

    for (const n of ['-1', 'Infinity', 'NaN', 'text']) {
      const res = await app.inject(`/bad/${n}`)
      t.equal(res.statusCode, 500, n)
      t.match(res.json(), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"cacheTtl"/ }, n)
    }
  })

  t.test(`${kind}: reply.cacheTtl(n) in origin mode replaces the freshness the headers give`, async (t) => {
    const app = await cachedApp(t, { ...options(), ttl: 'origin' })
    app.get('/o/:n', { config: { cache: true } }, async (request, reply) => {
      const n = Number((request.params as { n: string }).n)
      reply.header('cache-control', 'max-age=10')
      if (n >= 0) reply.cacheTtl(n)
      return 'o'
    })
    await app.inject('/o/1000')
    await app.inject('/o/-1')
    t.same((await listed(app, { route: 'GET /o/:n' })).map((e) => [e.path, e.ttl]).sort(), [['GET /o/-1', 10], ['GET /o/1000', 1000]])
    t.equal((await app.inject('/o/0')).headers['x-cache'], 'MISS')
    t.equal((await app.inject('/o/0')).headers['x-cache'], 'MISS', 'cacheTtl(0): not stored')
  })

  t.test(`${kind}: reply.cacheTtl(n) on a 304 to the cache's revalidation, and on a HEAD's 200, sets the renewed entry's ttl`, async (t) => {
    const app = await cachedApp(t, { ...options(), ttl: 'origin' })
    // The TTL the handler asks for on its next answer; undefined for the headers' max-age=1.
    const asked: { ttl?: number } = {}
    app.get('/doc/:id', { exposeHeadRoute: true, config: { cache: true } }, async (request, reply) => {
      reply.header('cache-control', 'max-age=1').header('etag', '"d1"')
      if (asked.ttl !== undefined) reply.cacheTtl(asked.ttl)
      if (request.headers['if-none-match'] === '"d1"') return await reply.code(304).send()
      return 'doc'
    })
    const ttlOf = async (path: string): Promise<number | undefined> => (await listed(app, { route: 'GET /doc/:id' })).find((e) => e.path === path)?.ttl
    for (const id of ['304', 'head', 'zero']) t.equal((await app.inject(`/doc/${id}`)).headers['x-cache'], 'MISS')
    t.ok(await eventually(async () => await ttlOf('GET /doc/zero') === 1), 'stored for max-age=1')
    await until(Date.now(), 1000)
    asked.ttl = 1000
    const revalidated = await app.inject('/doc/304')
    t.same([revalidated.headers['x-cache'], revalidated.body], ['REVALIDATED', 'doc'])
    t.ok(await eventually(async () => await ttlOf('GET /doc/304') === 1000), "the 304's cacheTtl(1000), not its max-age=1")
    const head = await app.inject({ method: 'HEAD', url: '/doc/head' })
    t.equal(head.statusCode, 200)
    t.ok(await eventually(async () => await ttlOf('GET /doc/head') === 1000), "the HEAD's cacheTtl(1000) renews the GET entry for 1000 s")
    t.same([(await app.inject('/doc/head')).headers['x-cache'], (await app.inject('/doc/304')).headers['x-cache']], ['HIT', 'HIT'])
    asked.ttl = 0
    const zero = await app.inject('/doc/zero')
    t.equal(zero.headers['x-cache'], 'REVALIDATED')
    t.match(zero.headers['cache-status'], /fwd=stale;fwd-status=304;ttl=-?[0-9]+;detail=cache-ttl-0$/, 'cacheTtl(0) on the 304: not stored again')
    t.equal((await app.inject('/doc/zero')).headers['x-cache'], 'REVALIDATED', 'so the next request revalidates it again')
  })
}

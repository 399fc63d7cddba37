import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import responseCache, { errors, type CacheHealth, type CompressOptions, type CacheStats, type CacheStore, type EntryPage, type ListedEntry, type StoreListPage, type StoreListQuery, type CounterSnapshot, type EncryptionOptions, type ResponseCacheOptions, type StatsRouteOptions, type PurgeRouteOptions, type SurrogateKeysOptions, type WarmReport, type WarmOptions, type WarmCounters } from '../dist/esm/index.js'

const app = Fastify()
await app.register(responseCache, { ttl: 30, store: 'memory', statsRoute: { path: '/ops/cache' } })
// statsRoute.dashboard: true or { interval }, with a guard or public
await app.register(responseCache, { statsRoute: { path: '/ops/cache', onRequest: async () => {}, dashboard: true } })
await app.register(responseCache, { statsRoute: { onRequest: [async () => {}], dashboard: { interval: 5 } } })
expectAssignable<StatsRouteOptions>({ dashboard: true, public: true })
expectError(app.register(responseCache, { statsRoute: { dashboard: 'yes' } }))
expectError(app.register(responseCache, { statsRoute: { dashboard: { interval: '5s' } } }))
expectError(app.register(responseCache, { statsRoute: { public: 1 } }))
// purgeRoute and surrogateKeys
await app.register(responseCache, { purgeRoute: { path: '/ops/purge', onRequest: async () => {}, purgeMethod: true }, surrogateKeys: true })
await app.register(responseCache, { purgeRoute: { public: true }, surrogateKeys: { keep: true } })
expectAssignable<PurgeRouteOptions>({ onRequest: [async () => {}] })
expectAssignable<SurrogateKeysOptions>({ keep: false })
expectError(app.register(responseCache, { purgeRoute: true }))
expectError(app.register(responseCache, { purgeRoute: { purgeMethod: 'yes' } }))
expectError(app.register(responseCache, { surrogateKeys: 'yes' }))
expectError(app.register(responseCache, { surrogateKeys: { keep: 1 } }))
app.get('/sk', { config: { cache: { ttl: 'origin', surrogateKeys: { keep: true } } } }, async () => 'sk')
expectError(app.get('/sk2', { config: { cache: { surrogateKeys: { keep: 'no' } } } }, async () => 'sk'))
expectError(app.register(responseCache, { ttl: '30' }))

// config.cache on routes
app.get('/a', { config: { cache: true } }, async () => 'a')
app.get('/b', { config: { cache: { ttl: 5, tags: (request) => [request.url], vary: ['accept-language'] } } }, async () => 'b')
app.put('/c', { config: { cache: { invalidate: ['items'] } } }, async () => 'c')
app.get('/j', { config: { cache: { ttl: 600, ttlJitter: 0.1 } } }, async () => 'j')
await app.register(responseCache, { ttlJitter: 0.1 })
expectError(app.register(responseCache, { ttlJitter: 'some' }))
// eagerRefresh: a fraction, or false; the plugin's is the routes' default
await app.register(responseCache, { eagerRefresh: 0.8 })
app.get('/eager', { config: { cache: { ttl: 60, eagerRefresh: 0.8 } } }, async () => 'eager')
app.get('/not-eager', { config: { cache: { eagerRefresh: false } } }, async () => 'not eager')
expectAssignable<ResponseCacheOptions>({ eagerRefresh: false })
expectError(app.register(responseCache, { eagerRefresh: '80%' }))
expectError(app.register(responseCache, { eagerRefresh: true }))
expectError(app.get('/eager-bad', { config: { cache: { eagerRefresh: 'soon' } } }, async () => 'x'))
expectError(app.get('/d', { config: { cache: { ttl: 'long' } } }, async () => 'd'))
expectError(app.get('/e', { config: { cache: { tags: 'items' } } }, async () => 'e'))
// ttl: 'origin' (freshness from the response) and its heuristic options
expectAssignable<ResponseCacheOptions>({ ttl: 'origin', heuristicFreshness: true, heuristicMaxTtl: 3600, keepForRevalidation: 600 })
app.get('/o', { config: { cache: { ttl: 'origin', heuristicFreshness: true, heuristicMaxTtl: 600, keepForRevalidation: 0, statusCodes: [200, 404] } } }, async () => 'o')
expectError(app.get('/p', { config: { cache: { ttl: 'upstream' } } }, async () => 'p'))
expectError(app.register(responseCache, { heuristicFreshness: 'yes' }))
await app.register(responseCache, { compress: false })
await app.register(responseCache, { compress: { threshold: 2048, encodings: ['br', 'gzip', 'zstd'], brotliQuality: 5, gzipLevel: 9 } })
expectError(app.register(responseCache, { compress: true }))
expectError(app.register(responseCache, { compress: { encodings: ['deflate'] } }))
expectError(app.register(responseCache, { compress: { threshold: '1kb' } }))
app.get('/z', { config: { cache: { compress: { encodings: ['gzip'] } } } }, async () => 'z')
app.get('/z2', { config: { cache: { compress: false } } }, async () => 'z')
expectError(app.get('/z3', { config: { cache: { compress: { encodings: ['deflate'] } } } }, async () => 'z'))
expectAssignable<CompressOptions>({ threshold: 0 })

// reply.cacheTags
app.get('/f', { config: { cache: true } }, async (request, reply) => {
  expectType<typeof reply>(reply.cacheTags('item:1', 'items'))
  expectType<typeof reply>(reply.cacheTtl(30).cacheTags('x'))
  expectError(reply.cacheTtl('30s'))
  return 'f'
})

// app.cache generics
expectType<Promise<number | undefined>>(app.cache.get<number>('k'))
expectType<Promise<unknown>>(app.cache.get('k'))
expectType<Promise<boolean>>(app.cache.set('k', { a: 1 }, { ttl: 10, tags: ['t'], tenant: 'acme' }))
expectType<Promise<boolean>>(app.cache.del('k', { tenant: 42 }))
expectType<Promise<{ drug: string }>>(app.cache.wrap('k', async () => ({ drug: 'x' })))
expectType<Promise<string>>(app.cache.wrap('k', () => 'sync', { staleWhileRevalidate: 10 }))
expectType<Promise<{ kcal: number }>>(app.cache.wrap('usda:apple', async () => ({ kcal: 52 }), { ttl: 86_400, staleIfError: 604_800 }))
expectError(app.cache.wrap('k', () => 1, { staleIfError: '1h' }))
expectError(app.cache.set('k', 1, { staleIfError: 60 }))
expectType<Promise<boolean>>(app.cache.set('k', 1, { ttl: 600, ttlJitter: 0.1 }))
expectType<Promise<number>>(app.cache.wrap('k', () => 1, { ttlJitter: 0.5 }))
// shared frozen values, per call and per plugin
expectType<Promise<{ n: number } | undefined>>(app.cache.get<{ n: number }>('k', { shared: true }))
expectType<Promise<Readonly<{ n: number }> | undefined>>(app.cache.get<Readonly<{ n: number }>>('k', { shared: true, tenant: 'acme' }))
expectType<Promise<{ n: number }>>(app.cache.wrap('k', () => ({ n: 1 }), { shared: false }))
expectError(app.cache.get('k', { shared: 'yes' }))
expectError(app.cache.set('k', 1, { shared: true }))
expectAssignable<ResponseCacheOptions>({ sharedValues: true })
expectError<ResponseCacheOptions>({ sharedValues: 'yes' })
expectType<Promise<number>>(app.cache.wrap('k', (ctx) => {
  expectType<number>(ctx.ttl)
  expectType<string[]>(ctx.tags)
  expectType<number>(ctx.staleIfError)
  ctx.ttl = 5
  ctx.tags.push('t')
  ctx.skip()
  return 1
}))
expectError(app.cache.wrap('k', (ctx) => { ctx.ttl = '5'; return 1 }))
// eagerRefresh, softTimeout, hardTimeout
expectType<Promise<number>>(app.cache.wrap('k', () => 1, { ttl: 600, eagerRefresh: 0.8 }))
expectType<Promise<number>>(app.cache.wrap('k', async () => 1, { staleIfError: 3600, softTimeout: 100, hardTimeout: 2000 }))
expectError(app.cache.wrap('k', () => 1, { eagerRefresh: '80%' }))
expectError(app.cache.wrap('k', () => 1, { hardTimeout: '2s' }))
expectError(app.cache.set('k', 1, { eagerRefresh: 0.8 }))
expectError(app.cache.get('k', { softTimeout: 100 }))
expectType<'FST_RESPONSE_CACHE_WRAP_TIMEOUT'>(new errors.FST_RESPONSE_CACHE_WRAP_TIMEOUT(2000).code)
expectError(app.cache.set('k', 1, { ttlJitter: '10%' }))
expectError(app.cache.set('k', 1, { ttl: '10' }))

// schema inference in wrap and get
const Analysis = Type.Object({ drug: Type.String(), score: Type.Number() })
expectType<Promise<{ drug: string, score: number }>>(app.cache.wrap('k', async () => ({ drug: 'x', score: 1 }), { schema: Analysis }))
expectError(app.cache.wrap('k', async () => ({ drug: 'x' }), { schema: Analysis }))
expectType<Promise<{ drug: string, score: number } | undefined>>(app.cache.get('k', { schema: Analysis }))

// invalidation, warm, stats, health
expectType<Promise<number | undefined>>(app.cache.invalidate({ tags: ['a'], route: 'GET /b', tenant: 'acme' }))
expectError(app.cache.invalidate({ tag: ['a'] }))
expectType<Promise<number | undefined>>(app.cache.invalidate({ tags: ['a'], soft: true }))
expectError(app.cache.invalidate({ tags: ['a'], soft: 'yes' }))
expectType<Promise<WarmReport>>(app.cache.warm(['/a', { url: '/b', method: 'POST', body: { q: 1 } }]))
expectType<Promise<WarmReport>>(app.cache.warm(['/a'], { keep: true }))
expectError(app.cache.warm(['/a'], { keep: 'yes' }))
expectType<WarmCounters>(app.cache.stats().warm)
expectType<number>(app.cache.stats().warm.emptied)
// the warm option: requests, or { requests, host, interval }
expectAssignable<ResponseCacheOptions>({ warm: ['/a', { url: '/b', method: 'POST', body: { q: 1 } }] })
expectAssignable<ResponseCacheOptions>({ warm: { requests: ['/a'], host: 'shop.example.com', interval: 30 } })
expectAssignable<WarmOptions>({ requests: [{ url: '/a', headers: { 'accept-language': 'en' } }] })
expectError<WarmOptions>({ host: 'shop.example.com' })
expectError<ResponseCacheOptions>({ warm: [{ url: '/a', method: 'DELETE' }] })
expectType<CacheStats>(app.cache.stats())
expectType<CounterSnapshot>(app.cache.stats().routes['GET /a'])
expectAssignable<{ hits: number, misses: number, stale: number, bypasses: number, stores: number, errors: number, hitRatio: number }>(app.cache.stats().total)
expectAssignable<{ name: string, entries: number, bytes: number, evictions: number }>(app.cache.stats().store)
// the entry listing
expectType<Promise<EntryPage | undefined>>(app.cache.list({ route: 'GET /b', tag: 'a', tenant: 7, limit: 10, cursor: 'abc' }))
const listed = await app.cache.list({ tag: 'a' })
if (listed !== undefined) {
  expectType<string | undefined>(listed.cursor)
  expectType<string>(listed.source)
  expectType<ListedEntry[]>(listed.entries)
  expectType<'response' | 'value'>(listed.entries[0].kind)
  expectType<number>(listed.entries[0].age)
  expectType<number>(listed.entries[0].ttl)
  expectType<number>(listed.entries[0].size)
  expectType<string[]>(listed.entries[0].tags)
  expectType<string | undefined>(listed.entries[0].path)
  expectType<string | number | undefined>(listed.entries[0].tenant)
}
expectError(app.cache.list({ tags: ['a'] }))
expectError(app.cache.list({ tag: 'a', limit: '10' }))
expectAssignable<CacheStore['list']>((query: StoreListQuery): StoreListPage => ({ entries: [], cursor: query.cursor }))
expectAssignable<CacheStore['softInvalidateTags']>(async (tags: readonly string[], at: number): Promise<number> => tags.length + at)
expectType<Promise<CacheHealth>>(app.cache.health())
expectType<'up' | 'connecting' | 'down'>((await app.cache.health()).state)
expectAssignable<{ ok: boolean, store: string, state: 'up' | 'connecting' | 'down', latencyMs?: number, error?: string }>(await app.cache.health())

// options: readyTimeout, encryption and the tiered store
expectAssignable<ResponseCacheOptions>({ store: 'redis', readyTimeout: 5000, encryption: { keys: [{ id: '2026-11', key: 'base64…' }, { id: 'old', key: Buffer.alloc(32) }] } })
expectAssignable<ResponseCacheOptions>({ store: 'tiered', tiered: { localTtl: 30 }, memory: { maxBytes: 1_048_576 } })
expectError<ResponseCacheOptions>({ readyTimeout: '5s' })
expectError<ResponseCacheOptions>({ encryption: { keys: [{ key: 'no id' }] } })
expectError<ResponseCacheOptions>({ store: 'layered' })
expectType<EncryptionOptions | undefined>(({} as ResponseCacheOptions).encryption)

// tenant: a string or a number (7 and '7' are one tenant), undefined for none
expectAssignable<ResponseCacheOptions>({ tenant: (request) => Number(request.headers['x-org']) })
expectAssignable<ResponseCacheOptions>({ tenant: (request) => request.headers['x-org'] as string | undefined })
expectError<ResponseCacheOptions>({ tenant: () => ({ id: 7 }) })

// perRequestHeaders: response header names, on the plugin and on a route
expectAssignable<ResponseCacheOptions>({ perRequestHeaders: ['x-request-id', 'server-timing'] })
app.get('/q', { config: { cache: { perRequestHeaders: ['x-request-id'] } } }, async () => 'q')
expectError<ResponseCacheOptions>({ perRequestHeaders: 'x-request-id' })
expectError(app.get('/s', { config: { cache: { perRequestHeaders: [1] } } }, async () => 's'))

// cacheStatus: an object with an optional name, or false; xCache: a boolean
expectAssignable<ResponseCacheOptions>({ cacheStatus: { name: 'edge-1' } })
expectAssignable<ResponseCacheOptions>({ cacheStatus: {} })
expectAssignable<ResponseCacheOptions>({ cacheStatus: false, xCache: false })
expectError<ResponseCacheOptions>({ cacheStatus: true })
expectError<ResponseCacheOptions>({ cacheStatus: { name: 1 } })
expectError<ResponseCacheOptions>({ xCache: 'no' })
expectType<Promise<{ drug: string, score: number }>>(app.cache.wrap('k', async (ctx) => { ctx.skip(); return { drug: 'x', score: 1 } }, { schema: Analysis }))

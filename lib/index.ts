import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { createClient, type ResponseCacheClient } from './client/app-cache.js'
import { InFlight } from './coalescing/coalesce.js'
import { createHooks, planOf } from './http/hooks.js'
import { decorateRequestAndReply } from './http/request-state.js'
import { cacheRoute, addRouteHook } from './http/route-hooks.js'
import { addStatsRoute } from './observability/stats-route.js'
import { addPurgeRoutes } from './http/purge-route.js'
import { invalidateOnSend, isUnsafe } from './http/invalidation.js'
import { registerMetrics } from './observability/metrics.js'
import { Refresher } from './coalescing/refresh.js'
import { resolveOptions, resolveRouteOptions, type ResponseCacheOptions, type RouteCacheOptions } from './options.js'
import { RawKeyMemo } from './http/raw-body.js'
import { Stats } from './observability/stats.js'
import { TroubleLog } from './observability/trouble.js'
import { GuardedStore } from './stores/guard.js'
import { createStore } from './stores/index.js'
import { createWarm, listeningHost } from './client/warm.js'
import { WarmKeeper } from './client/keep-warm.js'

export type { ResponseCacheOptions, RouteCacheOptions, FromRequest, CompressOptions, StatsRouteOptions, WarmOptions, PurgeRouteOptions, SurrogateKeysOptions } from './options.js'
export type {
  ResponseCacheClient, InvalidateSelector, GetValueOptions, SetValueOptions, ValueOptions, WrapContext, WrapFunction, WrapOptions,
  WarmCallOptions, WarmReport, WarmRequest, WarmResult, EntryPage, ListedEntry, ListSelector
} from './client/app-cache.js'
export type { CacheStats, CounterSnapshot, WarmCounters } from './observability/stats.js'
export type { CacheEntry, HeaderValue, Encoding, EncodedBodies } from './entry.js'
export type {
  CacheHealth, CacheStore, StoreSetOptions, StoreState, StoreStats, MaybePromise, StoreCursor, StoreListQuery, StoreListedEntry, StoreListPage
} from './stores/store.js'
export { MemoryStore } from './stores/memory.js'
export { RedisStore, type RedisClientLike } from './stores/redis.js'
export type { EncryptionOptions, EncryptionKey } from './stores/encryption-options.js'
export * as errors from './errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache this route's responses: `true` for the plugin's defaults, or per-route options. */
    cache?: boolean | RouteCacheOptions
  }
  interface FastifyInstance {
    /** The response cache's client. */
    cache: ResponseCacheClient
  }
  interface FastifyReply {
    /** Adds tags to the entry this response is stored under, decided at run time. */
    cacheTags: (...tags: string[]) => this
    /**
     * Seconds the entry this response is stored under stays fresh, decided at run time: replaces the
     * route's `ttl` (and what `s-maxage` / `max-age` or `ttlJitter` made of it); `0` stores nothing.
     * Throws FST_RESPONSE_CACHE_INVALID_ARGUMENT for a negative or non-finite number.
     * @example `reply.cacheTtl(user.premium ? 600 : 30)`
     */
    cacheTtl: (seconds: number) => this
  }
}

/** A config that only lists tags to drop after writes: the route itself is not cached. */
function isInvalidateOnly (config: unknown): boolean {
  return typeof config === 'object' && config !== null && Object.keys(config).every((name) => name === 'invalidate')
}

const responseCache: FastifyPluginAsync<ResponseCacheOptions> = async (app, opts) => {
  const options = resolveOptions(opts)
  const { store, remote, ownedByPlugin } = createStore(options, app)
  const guarded = new GuardedStore(store, options.timeoutMs, new TroubleLog(app.log), remote)
  const stats = new Stats()
  // Stale entries shared by several instances are refreshed by one of them, under the store's lock.
  const refresher = new Refresher(app, guarded.canLock ? guarded : undefined, options.coalesceTimeoutMs)
  const inFlight = new InFlight(options.coalesceTimeoutMs)
  const flush = (): Promise<void> | undefined => inFlight.flush()
  const rawKeys = new RawKeyMemo()
  const hooks = createHooks({ store: guarded, options, inFlight, refresher, rawKeys })
  const wiring = { options, stats, hooks, raw: { options, refresher, rawKeys, lookupKey: hooks.lookupKey, planOf }, bodyLimit: app.initialConfig.bodyLimit }
  let cachesGet = false
  const invalidation = { store: guarded, options, cachesGet: () => cachesGet, flush }
  const routeErrors: Error[] = []

  decorateRequestAndReply(app)
  const storedRoutes = new Set<string>()
  // Entries are warmed for the host clients send: the `warm.host` option, or the address listened on.
  const warmHost = options.warm.host
  const warm = createWarm(refresher, options.timeoutMs + 1000, () => warmHost ?? listeningHost(app))
  const keeper = new WarmKeeper({
    store: guarded,
    warm,
    log: app.log,
    namespace: options.namespace,
    counters: stats.warm,
    intervalMs: options.warm.intervalMs,
    listening: () => listeningHost(app) !== undefined,
    hostGiven: warmHost !== undefined
  })
  keeper.add(options.warm.requests)
  const { client, refreshStoreStats, purge } = createClient({
    store: guarded,
    stats,
    namespace: options.namespace,
    ttl: options.valueTtl,
    staleIfError: options.staleIfError,
    ttlJitter: options.ttlJitter,
    sharedValues: options.sharedValues,
    lockMs: options.coalesceTimeoutMs,
    log: app.log,
    warm,
    keeper,
    flush,
    routeIds: () => storedRoutes
  })
  app.decorate('cache', client)
  // Before the onRoute hook: purging is not a write to the purge route's own path.
  if (options.purgeRoute !== undefined) addPurgeRoutes(app, options.purgeRoute, options, purge)

  app.addHook('onRoute', (routeOptions) => {
    const config: unknown = routeOptions.config?.cache
    const methods = Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method]
    const routeName = `${methods.join(',')} ${routeOptions.url}`
    let resolved
    try {
      resolved = resolveRouteOptions(config, options, routeName)
    } catch (error) {
      // Reported by ready(), which is where Fastify users look for a bad configuration.
      routeErrors.push(error as Error)
      return
    }
    if (resolved !== undefined && !isInvalidateOnly(config)) {
      for (const state of cacheRoute(wiring, routeOptions, methods, resolved)) {
        if (!state.readOnly) storedRoutes.add(state.id)
        if (state.id.startsWith('GET ')) cachesGet = true
      }
    }
    // Methods not known to be safe drop what they change (RFC 9111 section 4.4), and a route's
    // `invalidate` its tags; last, after the store hook, so that the status is final.
    if (resolved?.invalidate !== undefined || methods.some(isUnsafe)) {
      addRouteHook(routeOptions, 'onSend', invalidateOnSend(invalidation, routeName, resolved?.invalidate, stats.other))
    }
  })

  // Prometheus metrics only where something reads them: the stats route or the app's registry.
  const metrics = options.statsRoute === false && options.registry === undefined
    ? undefined
    : registerMetrics({ namespace: options.namespace, stats: client.stats, health: client.health, refresh: refreshStoreStats }, options.registry)

  // A store that can answer again (all of it, or the keys of some failure domains) is used from the
  // next request, not after the breaker's pause.
  const stopWatching = store.onReady?.((domains) => {
    guarded.reset(domains)
    // Back after a restart or a failover: it may have come back empty.
    if (domains === undefined) keeper.storeReady()
  })

  app.addHook('onReady', async () => {
    if (routeErrors.length > 0) throw routeErrors[0]
    // A client passed in straight from `new Redis(url)` is still connecting: the first requests
    // and app.cache calls after ready() should find it ready.
    const connected = store.connect === undefined || await store.connect(options.readyTimeoutMs)
    if (!connected) {
      app.log.warn({ responseCache: { store: store.name, readyTimeoutMs: options.readyTimeoutMs } },
        'response cache: the store is not ready; serving without the cache until it is')
    }
    // Never awaited: ready() neither waits for the declared requests nor fails with them; a store
    // still connecting has them run once its client is ready.
    keeper.start(connected)
  })

  app.addHook('onListen', async () => { keeper.listened() })

  app.addHook('onClose', async () => {
    keeper.close()
    stopWatching?.()
    metrics?.remove()
    // A graceful restart keeps what was answered last: writes on their way to the store land first.
    await flush()
    // A store or client passed in by the app is the app's to close; the memory store is ours.
    if (ownedByPlugin) await store.close?.()
  })

  if (options.statsRoute !== false && metrics !== undefined) addStatsRoute(app, options.statsRoute, metrics.own, refreshStoreStats)
}

/** The plugin. Register it before the routes it should cache. */
export const fastifyResponseCache = fp(responseCache, {
  fastify: '5.x',
  name: 'fastify-response-cache'
})

export default fastifyResponseCache

import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { createClient, type ResponseCacheClient } from './client/app-cache.js'
import { InFlight } from './http/coalesce.js'
import * as errors from './errors.js'
import { createHooks, planOf } from './http/hooks.js'
import { kRawBodyKey, kReplyTags, kRequestState, type RouteState } from './http/request-state.js'
import { invalidateOnSend, isUnsafe } from './http/invalidation.js'
import { registerMetrics } from './observability/metrics.js'
import { Refresher } from './http/refresh.js'
import { routeSegment } from './key.js'
import { resolveOptions, resolveRouteOptions, type ResolvedRouteOptions, type ResponseCacheOptions, type RouteCacheOptions } from './options.js'
import { BODYLESS_METHODS, CACHEABLE_METHODS } from './http/policy.js'
import { RawKeyMemo } from './http/raw-body.js'
import { rawLookup } from './http/raw-lookup.js'
import type { Stage } from './http/lookup-stage.js'
import { Stats } from './observability/stats.js'
import { TroubleLog } from './observability/trouble.js'
import { GuardedStore } from './stores/guard.js'
import { createStore } from './stores/index.js'
import { createWarm } from './client/warm.js'

export type { ResponseCacheOptions, RouteCacheOptions, FromRequest } from './options.js'
export type {
  ResponseCacheClient, InvalidateSelector, GetValueOptions, SetValueOptions, ValueOptions, WrapOptions,
  WarmReport, WarmRequest, WarmResult, EntryPage, ListedEntry, ListSelector
} from './client/app-cache.js'
export type { CacheStats, CounterSnapshot } from './observability/stats.js'
export type { CacheEntry, HeaderValue } from './entry.js'
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
  }
}

/** Where GET and HEAD may be looked up: before anything is parsed, unless a hook of the route says otherwise. */
const BODYLESS_LOOKUPS: readonly Stage[] = ['onRequest', 'preValidation', 'preHandler']
/** Where a route keyed by its parsed body may be looked up (the raw bytes are looked up in preParsing). */
const BODY_LOOKUPS: readonly Stage[] = ['preValidation', 'preHandler']

/** Fastify's own default bodyLimit. */
const DEFAULT_BODY_LIMIT = 1_048_576

type HookName = 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'onSend'

/** Adds a route-level hook after the route's own: only cached routes pay for the cache. */
function addRouteHook (routeOptions: RouteOptions, name: HookName, hook: unknown): void {
  const hooks = routeOptions as unknown as Record<HookName, unknown>
  const existing = hooks[name]
  hooks[name] = existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook]
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
  const raw = { options, refresher, rawKeys, lookupKey: hooks.lookupKey, planOf }
  let cachesGet = false
  const invalidation = { store: guarded, options, cachesGet: () => cachesGet, flush }
  const routeErrors: Error[] = []

  app.decorateRequest(kRequestState, null)
  app.decorateRequest(kRawBodyKey, null)
  app.decorateReply(kReplyTags, null)
  app.decorateReply('cacheTags', function (this: FastifyReply, ...tags: string[]) {
    for (const tag of tags) {
      if (typeof tag !== 'string' || tag.length === 0) throw new errors.FST_RESPONSE_CACHE_INVALID_ARGUMENT('cacheTags', 'expected non-empty strings')
    }
    (this[kReplyTags] ??= []).push(...tags)
    return this
  })
  const storedRoutes = new Set<string>()
  const { client, refreshStoreStats } = createClient({
    store: guarded,
    stats,
    namespace: options.namespace,
    ttl: options.valueTtl,
    staleIfError: options.staleIfError,
    lockMs: options.coalesceTimeoutMs,
    log: app.log,
    warm: createWarm(refresher, options.timeoutMs + 1000),
    flush,
    routeIds: () => storedRoutes
  })
  app.decorate('cache', client)

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
    if (resolved !== undefined && !isInvalidateOnly(config)) cacheRoute(routeOptions, methods, resolved)
    // Methods not known to be safe drop what they change (RFC 9111 section 4.4), and a route's
    // `invalidate` its tags; last, after the store hook, so that the status is final.
    if (resolved?.invalidate !== undefined || methods.some(isUnsafe)) {
      addRouteHook(routeOptions, 'onSend', invalidateOnSend(invalidation, routeName, resolved?.invalidate, stats.other))
    }
  })

  function cacheRoute (routeOptions: RouteOptions, methods: string[], resolved: ResolvedRouteOptions): void {
    const bodyless: Record<string, RouteState> = {}
    const withBody: Record<string, RouteState> = {}
    for (const method of methods) {
      if (!CACHEABLE_METHODS.has(method)) continue
      const id = `${method} ${routeOptions.url}`
      const keyedByBody = !BODYLESS_METHODS.has(method)
      const state: RouteState = {
        id,
        entryRoute: method === 'HEAD' ? `GET ${routeOptions.url}` : id,
        options: resolved,
        keySource: {
          namespace: options.namespace,
          // HEAD is answered from the GET entry.
          route: routeSegment(method === 'HEAD' ? 'GET' : method, routeOptions.url),
          vary: resolved.vary,
          tenant: options.tenant,
          key: resolved.key,
          memo: keyedByBody || resolved.vary.length > 0 || options.tenant !== undefined || resolved.key !== undefined ? undefined : new Map()
        },
        counters: stats.forRoute(id),
        withBody: keyedByBody,
        readOnly: method === 'HEAD',
        // Within Fastify's limit for the route, which then answers 413 for longer bodies as it would.
        rawBodyLimit: Math.min(routeOptions.bodyLimit ?? app.initialConfig.bodyLimit ?? DEFAULT_BODY_LIMIT, options.maxEntryBytes),
        lookups: keyedByBody ? BODY_LOOKUPS : BODYLESS_LOOKUPS,
        plan: undefined
      }
      if (!state.readOnly) storedRoutes.add(id)
      if (state.withBody) withBody[method] = state
      else bodyless[method] = state
    }
    const any = { ...bodyless, ...withBody }
    if (Object.keys(any).length === 0) return
    if (bodyless.GET !== undefined) cachesGet = true
    const stateFor = (states: Record<string, RouteState>) => (request: FastifyRequest): RouteState | undefined => states[request.method]

    // A lookup hook in each stage the route may be looked up in, after the route's own hooks; the
    // route's first request says which of them looks up (http/lookup-stage.ts).
    if (Object.keys(bodyless).length > 0) {
      for (const stage of BODYLESS_LOOKUPS) addRouteHook(routeOptions, stage, hooks.lookup(stateFor(bodyless), stage))
    }
    if (Object.keys(withBody).length > 0) {
      // Bodies seen before are looked up from their bytes; others once parsed, then remembered.
      addRouteHook(routeOptions, 'preParsing', rawLookup(raw, stateFor(withBody)))
      for (const stage of BODY_LOOKUPS) addRouteHook(routeOptions, stage, hooks.lookup(stateFor(withBody), stage))
    }
    if (resolved.ttl === 'origin') addRouteHook(routeOptions, 'preHandler', hooks.conditions)
    // Last, so that what is stored is the payload the client gets after the route's own onSend hooks.
    addRouteHook(routeOptions, 'onSend', hooks.storeOnSend(stateFor(any)))
  }

  // Prometheus metrics only where something reads them: the stats route or the app's registry.
  const metrics = options.statsRoute === false && options.registry === undefined
    ? undefined
    : registerMetrics({ namespace: options.namespace, stats: client.stats, health: client.health, refresh: refreshStoreStats }, options.registry)

  // A store that can answer again (all of it, or the keys of some failure domains) is used from the
  // next request, not after the breaker's pause.
  const stopWatching = store.onReady?.((domains) => { guarded.reset(domains) })

  app.addHook('onReady', async () => {
    if (routeErrors.length > 0) throw routeErrors[0]
    // A client passed in straight from `new Redis(url)` is still connecting: the first requests
    // and app.cache calls after ready() should find it ready.
    if (store.connect !== undefined && !await store.connect(options.readyTimeoutMs)) {
      app.log.warn({ responseCache: { store: store.name, readyTimeoutMs: options.readyTimeoutMs } },
        'response cache: the store is not ready; serving without the cache until it is')
    }
  })

  app.addHook('onClose', async () => {
    stopWatching?.()
    metrics?.remove()
    // A graceful restart keeps what was answered last: writes on their way to the store land first.
    await flush()
    // A store or client passed in by the app is the app's to close; the memory store is ours.
    if (ownedByPlugin) await store.close?.()
  })

  if (options.statsRoute !== false && metrics !== undefined) {
    const own = metrics.own
    const { path, onRequest } = options.statsRoute
    // Route names, hit ratios and store health are for operators: an open route shows them to anyone.
    if (onRequest.length === 0) app.addHook('onReady', async () => { app.log.warn({ responseCache: { statsRoute: path } }, 'response cache: the stats route has no onRequest guard; anyone who can reach it can read it') })
    app.get(options.statsRoute.path, { onRequest: options.statsRoute.onRequest }, async (request, reply) => {
      // Prometheus scrapers ask for text/plain (or OpenMetrics, which accepts it); browsers and tools get JSON.
      const accept = request.headers.accept ?? ''
      if (accept.includes('text/plain') || accept.includes('openmetrics')) {
        return await reply.type(own.contentType).send(await own.metrics())
      }
      await refreshStoreStats()
      return { ...app.cache.stats(), health: await app.cache.health() }
    })
  }
}

/** The plugin. Register it before the routes it should cache. */
export const fastifyResponseCache = fp(responseCache, {
  fastify: '5.x',
  name: 'fastify-response-cache'
})

export default fastifyResponseCache

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { CacheEntry } from '../entry.js'
import { FST_RESPONSE_CACHE_INVALID_ARGUMENT } from '../errors.js'
import type { KeySource } from '../key.js'
import type { FromRequest, ResolvedOptions, ResolvedRouteOptions } from '../options.js'
import type { RouteCounters } from '../observability/stats.js'
import type { GuardedStore } from '../stores/guard.js'
import type { InFlight } from '../coalescing/coalesce.js'
import type { LookupPlan, Stage } from './lookup-stage.js'
import type { RawKeyMemo } from './raw-body.js'
import type { Refresher } from '../coalescing/refresh.js'
import type { ClientConditions } from '../rules/revalidation.js'
import type { FieldValue } from '../rules/lists.js'
import { withoutRequestHeaders } from '../rules/per-request.js'
import type { Forward } from '../rules/cache-status.js'
import { traceEnd, traceStart, type CacheTraceContext } from '../observability/tracing.js'

// What the lookup hooks (hooks.ts) and the store hook (store-hook.ts) share about a request and its route.

export const kRequestState = Symbol('fastify-response-cache.requestState')
/** Tags a handler added with `reply.cacheTags()`. */
export const kReplyTags = Symbol('fastify-response-cache.replyTags')
/** Seconds a handler set with `reply.cacheTtl()`. */
export const kReplyTtl = Symbol('fastify-response-cache.replyTtl')
/** The raw-body key of a request whose body was read before parsing but not yet known to the memo. */
export const kRawBodyKey = Symbol('fastify-response-cache.rawBodyKey')

export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'BYPASS' | 'REVALIDATED'

/** What the lookup decided, for the onSend hook of the same request: bypassed, or keyed. */
export type RequestState = BypassState | KeyedState

/** A request that goes past the cache: nothing is looked up or stored for it. */
export interface BypassState {
  route: RouteState
  status: 'BYPASS'
  key: undefined
  /** The client's own conditional headers, while the handler sees them without the cache's etags. */
  client?: ClientConditions
  /** Why: the Cache-Status `detail`. */
  reason: string
}

/** A request looked up under its key; its answer may be stored under it. */
export interface KeyedState {
  route: RouteState
  status: Exclude<CacheStatus, 'BYPASS'>
  key: string
  /** The request, its reply, and what lets it go on to the handler: what the lookup works with. */
  request: FastifyRequest
  reply: FastifyReply
  done: () => void
  /** This request runs the handler for its key while others wait for what it stores. */
  leader: boolean
  /** A stale entry to answer with if the handler fails (stale-if-error). */
  stale: CacheEntry | undefined
  /** A stale origin-mode entry whose validators go to the handler (RFC 9111 section 4.3). */
  revalidating?: CacheEntry
  /** The client's own conditional headers, while the handler sees the cache's. */
  client?: ClientConditions
  /** The cross-process lock this request holds while it computes its key. */
  lockToken?: string
  /** The body of the entry a HIT or STALE answer sent. */
  served?: Buffer
  /** The raw-body key to remember this key under once an entry is found or stored for it. */
  rawKey?: string
  /** The raw body, for a request answered before its body was parsed (a refresh replays it). */
  rawBody?: readonly Buffer[]
  /** Set once the request looks up its own variant (rules/variants.ts): the resource's key, `key` being the variant's. */
  variantOf?: string
  /** The reply's headers when the request went on to the handler: set by its own hooks (rules/per-request.ts). */
  before?: Readonly<Record<string, FieldValue>>
  /** Why the request went on to the handler when not for want of an entry (Cache-Status `fwd`). */
  fwd?: Forward
  /** Answered with what another request's run stored (Cache-Status `collapsed`). */
  collapsed?: boolean
  /** Why its response was not stored (Cache-Status `detail`). */
  notStored?: string
  /**
   * The reply's `cache-status` before the cache added its own member (null: none), once it has: what
   * an entry keeps of it (the origin's members), never the cache's own.
   */
  upstream?: FieldValue | null
  /** The lookup being traced, when someone subscribes (observability/tracing.ts). */
  trace?: CacheTraceContext
}

/**
 * The request goes on to the handler. What its hooks have set on the reply by now is its own: taken
 * here, not at the lookup, so that a hit allocates nothing for it.
 */
export function toHandler (state: KeyedState): void {
  state.before = state.reply.getHeaders()
  state.done()
}

/** The reply's headers an entry may keep: less the request's own. */
export function responseHeaders (state: KeyedState, reply: FastifyReply): Record<string, FieldValue> {
  const headers = withoutRequestHeaders(reply.getHeaders(), state.before, state.route.options.perRequestHeaders)
  // A streamed response is stored after its headers went out, with the cache's own Cache-Status member.
  if (state.upstream === null) delete headers['cache-status']
  else if (state.upstream !== undefined) headers['cache-status'] = state.upstream
  return headers
}

/** The state of a request that bypasses the cache, with the reason at debug. */
export function bypassed (request: FastifyRequest, route: RouteState, reason: string): BypassState {
  route.counters.bypasses++
  traceEnd(traceStart('lookup', route.storeKind, route.id), 'bypass', { reason })
  request.log.debug({ responseCache: { route: route.id, reason } }, 'response cache bypass')
  return (request[kRequestState] = { route, status: 'BYPASS', key: undefined, reason })
}

declare module 'fastify' {
  interface FastifyRequest {
    [kRequestState]: RequestState | null
    [kRawBodyKey]: string | null
  }
  interface FastifyReply {
    [kReplyTags]: string[] | null
    [kReplyTtl]: number | null
  }
}

/** The request and reply slots the hooks share, `reply.cacheTags()` and `reply.cacheTtl()`. */
export function decorateRequestAndReply (app: FastifyInstance): void {
  app.decorateRequest(kRequestState, null)
  app.decorateRequest(kRawBodyKey, null)
  app.decorateReply(kReplyTags, null)
  app.decorateReply('cacheTags', function (this: FastifyReply, ...tags: string[]) {
    for (const tag of tags) {
      if (typeof tag !== 'string' || tag.length === 0) throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT('cacheTags', 'expected non-empty strings')
    }
    (this[kReplyTags] ??= []).push(...tags)
    return this
  })
  app.decorateReply(kReplyTtl, null)
  app.decorateReply('cacheTtl', function (this: FastifyReply, seconds: number) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
      throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT('cacheTtl', 'expected a number of seconds, 0 or more (0: not stored)')
    }
    this[kReplyTtl] = seconds
    return this
  })
}

/** A route's `tags` or `invalidate`: a list, or a function of the request. */
export function tagsOf (from: FromRequest<string[]> | undefined, request: FastifyRequest): readonly string[] {
  if (from === undefined) return []
  return typeof from === 'function' ? from(request) : from
}

/** Everything one route and method needs on the request path, worked out once when the route is added. */
export interface RouteState {
  /** `"GET /items/:id"`: names the route in stats and logs. */
  id: string
  /** The route an entry written here is tagged with: HEAD writes (updates) the GET entry. */
  entryRoute: string
  options: ResolvedRouteOptions
  keySource: KeySource
  counters: RouteCounters
  /** POST and QUERY are keyed by their body, so their lookup waits for it to be parsed. */
  withBody: boolean
  /** HEAD reads the GET entry but never stores: an explicit HEAD handler may send no body. */
  readOnly: boolean
  /** Bodies up to this many bytes are read before parsing and looked up by their bytes. */
  rawBodyLimit: number
  /** The stages where the cache has a lookup hook for this route, in order. */
  lookups: readonly Stage[]
  /** Where the route is looked up: worked out from its first request (lookup-stage.ts). */
  plan: LookupPlan | undefined
  /** The not-stored reasons this route has warned about: once each, a setup to fix, not a load. */
  warned: Set<string>
  /** The store's kind, for the tracing channels (observability/tracing.ts). */
  storeKind: string
}

/** The route state for a request's method, or undefined when the hook does not apply to it. */
export type StateFor = (request: FastifyRequest) => RouteState | undefined

export interface HookContext {
  store: GuardedStore
  options: ResolvedOptions
  inFlight: InFlight
  refresher: Refresher
  rawKeys: RawKeyMemo
}

import type {
  FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler, onSendHookHandler, preHandlerHookHandler, preValidationHookHandler
} from 'fastify'
import type { InFlight } from './coalesce.js'
import { freshMs, type CacheEntry, type HeaderValue } from '../entry.js'
import { rawPath, sha256, type KeySource, requestKey, tenantOfKey } from '../key.js'
import type { FromRequest, ResolvedOptions, ResolvedRouteOptions } from '../options.js'
import { clientAsksNoCache, payloadBytes, requestBypassReason, storableTtl, storedHeaders } from './policy.js'
import type { Refresher } from './refresh.js'
import { discard, replaceWithEntry, sendEntry } from './respond.js'
import {
  applyOriginVerdict, canRevalidate, type ClientConditions, conditionalHeaders, headAgrees, restoreConditions, staleWindowsOf, updatedEntry
} from './revalidation.js'
import { crossProcess } from './cross-process.js'
import { isNodeStream, streamStore } from './stream-store.js'
import type { RouteCounters } from '../observability/stats.js'
import type { RawKeyMemo } from './raw-body.js'
import { isPromise, type GuardedStore } from '../stores/guard.js'
import type { MaybePromise } from '../stores/store.js'
import { entryTags, pathGroup } from '../tags.js'
import { ownVariant, rememberVariant, responseVariant, storeVariant, type Variant, VARIANTS_HEADER } from './variants.js'

export const kRequestState = Symbol('fastify-response-cache.requestState')
/** Tags a handler added with `reply.cacheTags()`. */
export const kReplyTags = Symbol('fastify-response-cache.replyTags')
/** The raw-body key of a request whose body was read before parsing but not yet known to the memo. */
export const kRawBodyKey = Symbol('fastify-response-cache.rawBodyKey')

export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'BYPASS' | 'REVALIDATED'

/** What the lookup decided, for the onSend hook of the same request. */
export interface RequestState {
  route: RouteState
  status: CacheStatus
  /** Set when the response may be stored under it. */
  key: string | undefined
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
  /** Set once the request looks up its own variant (variants.ts): the resource's key, `key` being the variant's. */
  variantOf?: string
}

declare module 'fastify' {
  interface FastifyRequest {
    [kRequestState]: RequestState | null
    [kRawBodyKey]: string | null
  }
  interface FastifyReply {
    [kReplyTags]: string[] | null
  }
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

function bypass (request: FastifyRequest, route: RouteState, reason: string): void {
  route.counters.bypasses++
  request[kRequestState] = { route, status: 'BYPASS', key: undefined, leader: false, stale: undefined }
  request.log.debug({ responseCache: { route: route.id, reason } }, 'response cache bypass')
}

export function createHooks (ctx: HookContext): {
  /** For onRequest (GET, HEAD) and preValidation (routes keyed by their body) alike. */
  lookup: (stateFor: StateFor) => onRequestHookHandler & preValidationHookHandler
  storeOnSend: (stateFor: StateFor) => onSendHookHandler
  /** Origin mode, before the handler: the cache's validators instead of the client's, when it revalidates. */
  conditions: preHandlerHookHandler
  /** Looks a request up under a key already worked out, with the lookup's own state on the request. */
  lookupKey: (state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
} {
  const { store, options, inFlight, refresher, rawKeys } = ctx
  const { lockOrWait, release } = crossProcess(ctx, handOver)
  const storeStream = streamStore({ options, inFlight, refresher, release, save: (state, request, reply, body) => save(state, request, reply, undefined, body) })

  function lookup (route: RouteState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const reason = requestBypassReason(route.options, request, route.withBody)
    if (reason !== undefined) {
      bypass(request, route, reason)
      done()
      return
    }
    let key: string
    try {
      key = requestKey(route.keySource, request, route.withBody)
    } catch (error) {
      // A throwing tenant or key function must not fail a request that works without the cache.
      request.log.warn({ err: error, responseCache: { route: route.id } }, 'response cache key function threw; bypassing')
      bypass(request, route, 'key-error')
      done()
      return
    }
    const state: RequestState = { route, status: 'MISS', key, leader: false, stale: undefined }
    if (route.withBody && request[kRawBodyKey] !== null) state.rawKey = request[kRawBodyKey]
    request[kRequestState] = state
    lookupKey(state, request, reply, done)
  }

  function lookupKey (state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const { route } = state
    const key = state.key as string
    // A background refresh, or a client allowed to ask for a fresh copy, goes straight to the handler.
    if (refresher.isRefresh(request) || (options.honorClientNoCache && clientAsksNoCache(request))) {
      route.counters.misses++
      state.leader = inFlight.lead(key)
      // A refresh in origin mode asks the handler whether the entry it replaces still holds.
      const stale = refresher.staleOf(request)
      if (stale !== undefined && canRevalidate(stale)) state.revalidating = stale
      done()
      return
    }
    let result: MaybePromise<CacheEntry | undefined>
    try {
      result = store.lookup(key, options.coalesceTimeoutMs)
    } catch {
      storeFailed(route, state, done)
      return
    }
    // The memory store answers in place: no closures, no promise on the hot path.
    if (!isPromise(result)) {
      answer(route, state, request, reply, done, result)
      return
    }
    result.then(
      (entry) => { answer(route, state, request, reply, done, entry) },
      () => { storeFailed(route, state, done) }
    )
  }

  function answer (route: RouteState, state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, entry: CacheEntry | undefined): void {
    const now = Date.now()
    // A varying resource's key holds a marker (origin mode): the request reads its own variant instead,
    // unless this process has a newer answer for the key on its way to the store (miss() takes it).
    if (entry !== undefined && entry.headers[VARIANTS_HEADER] !== undefined) {
      if (inFlight.unwritten(state.key as string) === undefined && throughVariants(state, request, reply, done, entry) === 'followed') return
      entry = undefined
    }
    if (entry !== undefined) {
      const age = now - entry.storedAt
      const fresh = freshMs(entry)
      if (age < fresh) {
        route.counters.hits++
        state.status = 'HIT'
        state.served = sendEntry(request, reply, entry, now, 'HIT')
        if (state.rawKey !== undefined) rawKeys.remember(state.rawKey, state.variantOf ?? state.key as string)
        return
      }
      const windows = staleWindowsOf(route.options, entry)
      if (age < fresh + windows.whileRevalidate * 1000) {
        route.counters.stale++
        state.status = 'STALE'
        state.served = sendEntry(request, reply, entry, now, 'STALE')
        if (state.rawKey !== undefined) rawKeys.remember(state.rawKey, state.variantOf ?? state.key as string)
        refresher.start(state.key as string, request, state.rawBody === undefined ? request.body : Buffer.concat(state.rawBody), entry)
        return
      }
      if (age < fresh + windows.ifError * 1000) state.stale = entry
      if (canRevalidate(entry)) state.revalidating = entry
    }
    miss(route, state, request, reply, done)
  }

  function miss (route: RouteState, state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const key = state.key as string
    const landing = inFlight.unwritten(key)
    if (landing !== undefined) {
      const token = store.takeToken(key)
      if (token !== undefined) store.unlock(key, token)
      handOver(route, state, request, reply, done, landing)
      return
    }
    if (inFlight.lead(key)) {
      state.leader = true
      // The lookup may have taken the cross-process lock already, in the same round trip as its read.
      state.lockToken = store.canLock ? store.takeToken(key) : undefined
      if (store.canLock && state.lockToken === undefined) lockOrWait(route, state, request, reply, done)
      else {
        route.counters.misses++
        done()
      }
      return
    }
    // Another request of this process is running the handler for this key: answer from what it stores.
    const shared = inFlight.wait(key) as Promise<CacheEntry | undefined>
    shared.then((entry) => {
      if (entry === undefined) {
        route.counters.misses++
        done()
        return
      }
      handOver(route, state, request, reply, done, entry)
    }, /* c8 ignore next */ () => { done() })
  }

  /**
   * An entry found or handed over for the request's key may be a varying resource's marker, or
   * another request's variant of it (variants.ts): the request then looks up its own variant, once
   * (`followed`), or runs the handler (`miss`). `serve` when the entry answers the request.
   */
  function throughVariants (state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, entry: CacheEntry): 'serve' | 'followed' | 'miss' {
    const own = ownVariant(entry, state.variantOf ?? state.key as string, request)
    if (own === undefined) return 'serve'
    if (own === null || state.variantOf !== undefined) return 'miss'
    state.variantOf = state.key
    state.key = own
    lookupKey(state, request, reply, done)
    return 'followed'
  }

  /** Answers a request with what another request of this process found or stored for its key. */
  function handOver (route: RouteState, state: RequestState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, entry: CacheEntry): void {
    const through = throughVariants(state, request, reply, done, entry)
    if (through === 'followed') return
    if (through === 'miss') {
      route.counters.misses++
      done()
      return
    }
    route.counters.hits++
    state.status = 'HIT'
    state.served = sendEntry(request, reply, entry, Date.now(), 'HIT')
  }

  function storeFailed (route: RouteState, state: RequestState, done: HookHandlerDoneFunction): void {
    route.counters.errors++
    route.counters.bypasses++
    state.status = 'BYPASS'
    state.key = undefined
    done()
  }

  /**
   * Stores the response if it may be stored; answers the entry, for the requests waiting on it.
   * `streamed`: the bytes of a streamed payload that has ended (stream-store.ts), already a copy of its own.
   */
  function save (state: RequestState, request: FastifyRequest, reply: FastifyReply, payload: unknown, streamed?: Buffer): CacheEntry | undefined {
    const { route } = state
    const body = streamed ?? payloadBytes(payload)
    const now = Date.now()
    const verdict = body === undefined ? 'stream' : storableTtl(route.options, reply, body.length, options.maxEntryBytes, now)
    // Origin mode: a response that varies on headers the key does not hold is a variant (variants.ts).
    const variant = typeof verdict === 'string' ? undefined : variantOf(state, request, (name) => reply.getHeader(name))
    if (typeof verdict === 'string' || typeof variant === 'string') {
      const reason = typeof verdict === 'string' ? verdict : variant as string
      request.log.debug({ responseCache: { route: route.id, reason } }, 'response cache: not stored')
      refresher.report(request, reason)
      return undefined
    }
    const bytes = body as Buffer
    const origin = typeof verdict === 'object'
    let etag = reply.getHeader('etag')
    if (typeof etag !== 'string') {
      // In origin mode of a recognisable form, so that it is never sent to the origin as its own.
      etag = (origin ? '"rc-' : '"') + sha256(bytes).slice(0, 27) + '"'
      reply.header('etag', etag)
    }
    // Origin mode passes `date` through as received; a response without one gets the time it was made,
    // on this answer and every hit alike (RFC 9110 section 6.6.1).
    if (origin && !reply.hasHeader('date')) reply.header('date', new Date(now).toUTCString())
    const entry: CacheEntry = {
      status: reply.statusCode,
      headers: storedHeaders(reply.getHeaders(), origin),
      body: bytes,
      storedAt: now,
      ttl: origin ? verdict.ttl : verdict,
      etag,
      request: request.method + ' ' + request.url
    }
    const storeTtl = origin
      ? applyOriginVerdict(entry, route.options, verdict)
      : verdict + Math.max(route.options.staleWhileRevalidate, route.options.staleIfError)
    return write(state, request, reply, entry, storeTtl, variant)
  }

  /** The variant of its resource a response is (origin mode, variants.ts), or why it may not be stored. */
  function variantOf (state: RequestState, request: FastifyRequest, header: (name: string) => HeaderValue | number | undefined): Variant | string | undefined {
    return responseVariant(state.route.options, request, header, state.variantOf ?? state.key as string)
  }

  /**
   * Writes an entry under the request's key, or as the variant it is (its own key, and the marker
   * under the resource's); answers it, for the requests waiting on it.
   */
  function write (state: RequestState, request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, storeTtl: number, variant: Variant | undefined): CacheEntry {
    const { route } = state
    const key = state.key as string
    const primary = state.variantOf ?? key
    if (variant !== undefined) rememberVariant(entry, variant)
    const tags = entryTags({
      tenant: tenantOfKey(key, options.namespace),
      tags: [...tagsOf(route.options.tags, request), ...(reply[kReplyTags] ?? [])],
      route: route.entryRoute,
      path: route.withBody ? undefined : pathGroup(request.host, rawPath(request.url))
    })
    // Where the entry goes: a variant's own key, else the resource's (a request that followed a
    // marker may get an answer that no longer varies: it replaces the marker).
    const target = variant?.key ?? primary
    // Requests of this process that read these keys before the write lands are answered from here.
    const landing = target === key && primary === key ? [key] : [...new Set([key, target, primary])]
    // The lock is released once the entry can be read by the other processes, or will not be.
    // A store that can releases the lock in the write itself: one round trip fewer per miss.
    const lockToken = store.unlocksOnSet && target === key ? state.lockToken : undefined
    const stored = (kept: unknown): void => {
      for (const landed of landing) inFlight.written(landed, entry)
      if (kept === false) {
        // The resource has as many variants as it may keep (variants.ts): this one is not stored.
        request.log.debug({ responseCache: { route: route.id, reason: 'vary-variants' } }, 'response cache: not stored')
        release(state)
        refresher.report(request, 'vary-variants')
        return
      }
      if (lockToken !== undefined) state.lockToken = undefined
      route.counters.stores++
      if (state.rawKey !== undefined) rawKeys.remember(state.rawKey, primary)
      release(state)
      refresher.report(request, 'stored')
    }
    const failed = (): void => {
      route.counters.errors++
      for (const landed of landing) inFlight.written(landed, entry)
      release(state)
      refresher.report(request, 'store-error')
    }
    const set = (): void => {
      try {
        const setOptions = { ttl: storeTtl, tags, lockToken }
        const result = variant === undefined ? store.set(target, entry, setOptions) : storeVariant(store, variant, entry, setOptions)
        if (isPromise<unknown>(result)) result.then(stored, failed)
        else stored(result)
      } catch {
        failed()
      }
    }
    // A remote store is written after the response has gone out: the client does not wait for it.
    if (store.remote) {
      for (const landed of landing) inFlight.writing(landed, entry)
      process.nextTick(set)
    } else {
      set()
    }
    return entry
  }

  /**
   * A 304 to the cache's conditional request: the stored response, updated by it, is stored again and
   * answers the client (a 304 if the client's own `If-None-Match` matches it). Answers the payload.
   */
  function revalidated (state: RequestState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): Buffer {
    const now = Date.now()
    const { entry, verdict } = updatedEntry(stale, state.route.options, reply, now)
    state.status = 'REVALIDATED'
    // The updated headers say which variant it is: a refresh, which reads no marker, stores it there too.
    const variant = typeof verdict === 'string' ? undefined : variantOf(state, request, (name) => entry.headers[name])
    if (typeof verdict === 'string' || typeof variant === 'string') {
      const reason = typeof verdict === 'string' ? verdict : variant as string
      // Validated, so this answer may use it; the origin no longer lets it be kept.
      request.log.debug({ responseCache: { route: state.route.id, reason } }, 'response cache: revalidated, not stored again')
      refresher.report(request, reason)
      if (state.leader) inFlight.settle(state.key as string, undefined)
      release(state)
    } else {
      const stored = write(state, request, reply, entry, applyOriginVerdict(entry, state.route.options, verdict), variant)
      if (state.leader) inFlight.settle(state.key as string, stored)
    }
    return replaceWithEntry(request, reply, entry, 'REVALIDATED')
  }

  /**
   * RFC 9111 section 4.3.5: a HEAD answer updates the stored GET response when their validators
   * agree, and drops it when they do not.
   */
  function headAnswered (state: RequestState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): void {
    const key = state.key as string
    if (!headAgrees(stale, reply)) {
      const dropped = store.run('delete', () => store.store.delete(key), undefined, store.domainOf(key))
      // A store that fails has reported it; the entry stays stale, to be revalidated.
      if (isPromise(dropped)) dropped.catch(() => {})
      return
    }
    const { entry, verdict } = updatedEntry(stale, state.route.options, reply, Date.now())
    const variant = typeof verdict === 'object' ? variantOf(state, request, (name) => entry.headers[name]) : undefined
    if (typeof verdict === 'object' && typeof variant !== 'string') write(state, request, reply, entry, applyOriginVerdict(entry, state.route.options, verdict), variant)
  }

  return {
    lookup: (stateFor) => function responseCacheLookup (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      const route = stateFor(request)
      // A body looked up from its raw bytes (before parsing) has been looked up already.
      if (route === undefined || (route.withBody && request[kRequestState] !== null)) done()
      else lookup(route, request, reply, done)
    },
    lookupKey,
    conditions: function responseCacheConditions (request, reply, done) {
      const state = request[kRequestState]
      if (state !== null) state.client = conditionalHeaders(request.headers, state.revalidating)
      done()
    },
    storeOnSend: (stateFor) => function responseCacheStore (request, reply, payload, done) {
      const state = request[kRequestState]
      if (state === null) {
        // The request failed before its lookup (a body that did not parse, say): nothing to store.
        if (stateFor(request) !== undefined) reply.header('x-cache', 'BYPASS')
        done(null, payload)
        return
      }
      if (state.status === 'HIT' || state.status === 'STALE') {
        // The route's own onSend hooks ran again over the entry, which already holds what they made
        // of the payload: the client gets the stored bytes, as on the miss that stored them.
        done(null, state.served ?? payload)
        return
      }
      // The answers made from the entry below evaluate the client's conditions, not the cache's.
      if (state.client !== undefined) restoreConditions(request.headers, state.client)
      const revalidating = state.revalidating
      if (revalidating !== undefined && reply.statusCode === 304 && state.key !== undefined) {
        discard(payload)
        done(null, revalidated(state, request, reply, revalidating))
        return
      }
      if (state.stale !== undefined && reply.statusCode >= 500) {
        // stale-if-error: the error has been logged by Fastify; the client gets the last good answer.
        state.route.counters.stale++
        if (state.leader) inFlight.settle(state.key as string, undefined)
        release(state)
        discard(payload)
        done(null, replaceWithEntry(request, reply, state.stale, 'STALE'))
        return
      }
      if (revalidating !== undefined && state.route.readOnly && reply.statusCode === 200 && state.key !== undefined) {
        try {
          headAnswered(state, request, reply, revalidating)
        } catch (error) {
          request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not update an entry from a HEAD answer')
        }
      }
      reply.header('x-cache', state.status)
      let entry: CacheEntry | undefined
      if (state.key !== undefined && !state.route.readOnly) {
        // A stream is stored once it has ended: stream-store.ts settles the waiters and the lock then.
        if (isNodeStream(payload)) {
          done(null, storeStream(state, request, reply, payload))
          return
        }
        try {
          entry = save(state, request, reply, payload)
        } catch (error) {
          request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not store a response')
          refresher.report(request, 'error')
        }
      } else refresher.report(request, state.route.readOnly ? 'head' : 'bypass')
      if (state.leader) inFlight.settle(state.key as string, entry)
      if (entry === undefined) release(state)
      done(null, payload)
    }
  }
}

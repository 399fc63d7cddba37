import type {
  FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler, onSendHookHandler, preHandlerHookHandler, preValidationHookHandler
} from 'fastify'
import { freshMs, type CacheEntry } from '../entry.js'
import { firstReport, InvalidKeyPartError, requestKey } from '../key.js'
import { isPromise } from '../promise.js'
import type { MaybePromise } from '../stores/store.js'
import { lockOrWait } from './key-lock.js'
import { clientAsksNoCache, requestBypassReason } from '../rules/storability.js'
import { bypassed, type HookContext, kRawBodyKey, kRequestState, type KeyedState, type RouteState, type StateFor, toHandler } from './request-state.js'
import { sendEntry } from './respond.js'
import { canRevalidate, conditionalHeaders, eagerRefreshDue, staleWindowsOf } from '../rules/revalidation.js'
import { createStoreHook } from './store-hook.js'
import { isMarker } from '../rules/variants.js'
import { ownVariant } from './variant-store.js'
import { lookupPlan, ownHook, type LookupPlan, type Stage } from './lookup-stage.js'
import { traceEnd, traceReturned, traceStart } from '../observability/tracing.js'

// The lookup hooks of a cached route: a hit is answered here, before the handler, but after every
// hook that could refuse the request (lookup-stage.ts picks the stage); a miss goes on to the
// handler, coalesced with the others of its key; the store hook (store-hook.ts) then stores what the
// handler answered.

/**
 * Where a route is looked up, worked out from its first request and kept. A route with a hook after
 * the last stage the cache can look up in is never served from the cache: said once, at warn.
 */
export function planOf (route: RouteState, request: FastifyRequest): LookupPlan {
  if (route.plan !== undefined) return route.plan
  const plan = route.plan = lookupPlan(request, route.lookups, route.withBody)
  // A route keyed by its body is looked up from its raw bytes first, where it may.
  route.counters.lookupStage = plan.raw ? 'preParsing' : plan.stage
  if (plan.stage === 'none') {
    request.log.warn({ responseCache: { route: route.id } }, 'response cache: a hook of this route runs after the last preHandler hook the cache can add; the route is never served from the cache')
  } else {
    request.log.debug({ responseCache: { route: route.id, lookupStage: plan.stage, rawLookup: plan.raw } }, 'response cache: lookup stage')
  }
  return plan
}

/** The hooks of cached routes, over one plugin instance's store, coalescing and refreshes. */
export function createHooks (ctx: HookContext): {
  /** The lookup hook of one stage: it looks up the routes planned for that stage, and lets the others pass. */
  lookup: (stateFor: StateFor, stage: Stage) => onRequestHookHandler & preValidationHookHandler & preHandlerHookHandler
  storeOnSend: (stateFor: StateFor) => onSendHookHandler
  /** Origin mode, before the handler: the cache's validators instead of the client's, when it revalidates. */
  conditions: preHandlerHookHandler
  /** Looks a request up under a key already worked out (its state is on the request). */
  lookupKey: (state: KeyedState) => void
} {
  return {
    lookup: (stateFor, stage) => ownHook(function responseCacheLookup (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      const route = stateFor(request)
      // A body looked up from its raw bytes (before parsing) has been looked up already.
      if (route === undefined || request[kRequestState] !== null) {
        done()
        return
      }
      const planned = planOf(route, request).stage
      if (planned === stage) lookup(ctx, route, request, reply, done)
      else if (planned === 'none') {
        bypassed(request, route, 'hook-after-cache')
        done()
      } else done()
    }),
    lookupKey: (state) => { lookupKey(ctx, state) },
    conditions: ownHook(function responseCacheConditions (request, reply, done) {
      const state = request[kRequestState]
      if (state !== null) state.client = conditionalHeaders(request.headers, state.status === 'BYPASS' ? undefined : state.revalidating)
      done()
    }),
    storeOnSend: createStoreHook(ctx)
  }
}

function lookup (ctx: HookContext, route: RouteState, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const reason = requestBypassReason(route.options, request, route.withBody)
  if (reason !== undefined) {
    bypassed(request, route, reason)
    done()
    return
  }
  let key: string
  try {
    key = requestKey(route.keySource, request, route.withBody)
  } catch (error) {
    // A tenant or key function that throws must not fail a request that works without the cache, nor
    // one that answers no key part (null, an object) share an entry: warned once per route and function.
    const invalid = error instanceof InvalidKeyPartError
    if (!invalid || firstReport(route.keySource, error.option)) {
      request.log.warn({ err: error, responseCache: { route: route.id } }, invalid ? `response cache: invalid ${error.option} function answer; bypassing` : 'response cache key function threw; bypassing')
    }
    bypassed(request, route, invalid ? error.reason : 'key-error')
    done()
    return
  }
  const state: KeyedState = { route, status: 'MISS', key, request, reply, done, leader: false, stale: undefined }
  if (route.withBody && request[kRawBodyKey] !== null) state.rawKey = request[kRawBodyKey]
  request[kRequestState] = state
  lookupKey(ctx, state)
}

function lookupKey (ctx: HookContext, state: KeyedState): void {
  const { store, options, inFlight, refresher } = ctx
  const { route, key, request } = state
  const trace = traceStart('lookup', route.storeKind, route.id)
  // A background refresh, or a client allowed to ask for a fresh copy, goes straight to the handler.
  if (refresher.isRefresh(request) || (options.honorClientNoCache && clientAsksNoCache(request))) {
    route.counters.misses++
    state.fwd = 'request'
    traceEnd(trace, 'miss', { reason: 'request' })
    state.leader = inFlight.lead(key)
    // A refresh in origin mode asks the handler whether the entry it replaces still holds.
    const stale = refresher.staleOf(request)
    if (stale !== undefined && canRevalidate(stale)) state.revalidating = stale
    toHandler(state)
    return
  }
  let result: MaybePromise<CacheEntry | undefined>
  try {
    result = store.lookup(key, options.coalesceTimeoutMs)
  } catch (error) {
    traceEnd(trace, 'bypass', { reason: 'store-error', error })
    storeFailed(state)
    return
  }
  // The memory store answers in place: no closures, no promise on the hot path.
  if (!isPromise(result)) {
    if (trace !== undefined) state.trace = trace
    answer(ctx, state, result)
    return
  }
  traceReturned(trace)
  result.then((entry) => {
    if (trace !== undefined) state.trace = trace
    answer(ctx, state, entry)
  }, (error: unknown) => {
    traceEnd(trace, 'bypass', { reason: 'store-error', error })
    storeFailed(state)
  })
}

/** The traced lookup (if any) is over: ended in the call that started it when the store answered in place. */
function looked (state: KeyedState, result: string, details: { reason?: string, bytes?: number }): void {
  const trace = state.trace
  if (trace === undefined) return
  state.trace = undefined
  traceEnd(trace, result, details)
}

/** What the store answered for the request's key: served fresh or stale, else a miss. */
function answer (ctx: HookContext, state: KeyedState, entry: CacheEntry | undefined): void {
  const { inFlight, rawKeys, refresher } = ctx
  const { route } = state
  const now = Date.now()
  // A varying resource's key holds a marker: the request reads its own variant instead,
  // unless this process has a newer answer for the key on its way to the store (miss(ctx, ) takes it).
  if (entry !== undefined && isMarker(entry)) {
    // The variant's own lookup, if any, is traced on its own.
    looked(state, 'miss', { reason: 'vary-marker' })
    if (inFlight.unwritten(state.key) === undefined && throughVariants(ctx, state, entry) === 'followed') return
    entry = undefined
  } else if (entry === undefined && state.variantOf !== undefined) {
    // A marker was found, but not this request's variant.
    state.fwd = 'vary-miss'
  }
  if (entry !== undefined) {
    const age = now - entry.storedAt
    const fresh = freshMs(entry)
    if (age < fresh) {
      route.counters.hits++
      state.status = 'HIT'
      looked(state, 'hit', { bytes: entry.body.length })
      state.served = sendEntry(state, entry, now, 'HIT')
      if (state.rawKey !== undefined) rawKeys.remember(state.rawKey, state.variantOf ?? state.key)
      // Past the route's share of its freshness, the hit also starts the refresh a stale read would.
      const eager = route.options.eagerRefresh
      if (eager !== undefined && eagerRefreshDue(entry, eager, age, fresh)) startRefresh(refresher, state, entry)
      return
    }
    const windows = staleWindowsOf(route.options, entry)
    if (age < fresh + windows.whileRevalidate * 1000) {
      route.counters.stale++
      state.status = 'STALE'
      looked(state, 'stale', { bytes: entry.body.length })
      state.served = sendEntry(state, entry, now, 'STALE')
      if (state.rawKey !== undefined) rawKeys.remember(state.rawKey, state.variantOf ?? state.key)
      startRefresh(refresher, state, entry)
      return
    }
    state.fwd = 'stale'
    if (age < fresh + windows.ifError * 1000) state.stale = entry
    // Kept past what the store was told to keep it (a store's expiry lags the plugin's clock by the
    // write's round trip): gone, as it would be a moment later.
    const kept = fresh + Math.max(route.options.keepForRevalidation, windows.whileRevalidate, windows.ifError) * 1000
    if (canRevalidate(entry) && age < kept) state.revalidating = entry
  }
  looked(state, 'miss', { reason: state.fwd })
  miss(ctx, state)
}

/**
 * One background refresh of the entry the request was answered from (refresh.ts: one per key, across
 * instances when the store locks), replaying the request: the same key, tenant and body.
 */
function startRefresh (refresher: HookContext['refresher'], state: KeyedState, entry: CacheEntry): void {
  const { request, rawBody } = state
  refresher.start(state.key, request, rawBody === undefined ? request.body : Buffer.concat(rawBody), entry)
}

/**
 * Nothing to serve: the request runs the handler, unless an answer for its key is on its way (from
 * this process, or from another one that holds the key's lock), which it is then handed.
 */
function miss (ctx: HookContext, state: KeyedState): void {
  const { store, inFlight } = ctx
  const { key } = state
  const landing = inFlight.unwritten(key)
  // An answer on its way to the store is used as the store would answer it: a `no-cache` one (origin
  // mode) is never fresh, so the request revalidates it instead.
  if (landing !== undefined && !isMarker(landing) && Date.now() - landing.storedAt >= freshMs(landing)) {
    if (state.revalidating === undefined && canRevalidate(landing)) {
      state.revalidating = landing
      state.fwd = 'stale'
    }
  } else if (landing !== undefined) {
    const token = store.takeToken(key)
    if (token !== undefined) store.unlock(key, token)
    handOver(ctx, state, landing)
    return
  }
  if (inFlight.lead(key)) {
    state.leader = true
    // The lookup may have taken the cross-process lock already, in the same round trip as its read.
    state.lockToken = store.canLock ? store.takeToken(key) : undefined
    if (store.canLock && state.lockToken === undefined) {
      lockOrWait(ctx, state).then((fresh) => {
        if (fresh !== undefined) handOver(ctx, state, fresh)
        else runHandler(state)
      })
    } else runHandler(state)
    return
  }
  // Another request of this process is running the handler for this key: answer from what it stores.
  const shared = inFlight.wait(key) as Promise<CacheEntry | undefined>
  shared.then((entry) => {
    if (entry === undefined) runHandler(state)
    else handOver(ctx, state, entry)
  }, /* c8 ignore next */ () => { toHandler(state) })
}

function runHandler (state: KeyedState): void {
  state.route.counters.misses++
  toHandler(state)
}

/**
 * An entry found or handed over for the request's key may be a varying resource's marker, or
 * another request's variant of it (rules/variants.ts): the request then looks up its own variant, once
 * (`followed`), or runs the handler (`miss`). `serve` when the entry answers the request.
 */
function throughVariants (ctx: HookContext, state: KeyedState, entry: CacheEntry): 'serve' | 'followed' | 'miss' {
  const own = ownVariant(entry, state.variantOf ?? state.key, state.request)
  if (own === undefined) return 'serve'
  if (own === null || state.variantOf !== undefined) {
    state.fwd = 'vary-miss'
    return 'miss'
  }
  state.variantOf = state.key
  state.key = own
  lookupKey(ctx, state)
  return 'followed'
}

/** Answers a request with what another request (of this process, or another) found or stored for its key. */
function handOver (ctx: HookContext, state: KeyedState, entry: CacheEntry): void {
  const through = throughVariants(ctx, state, entry)
  if (through === 'followed') return
  if (through === 'miss') {
    runHandler(state)
    return
  }
  state.route.counters.hits++
  state.status = 'HIT'
  state.collapsed = true
  state.served = sendEntry(state, entry, Date.now(), 'HIT')
}

/** The store failed the lookup: the request goes past the cache. */
function storeFailed (state: KeyedState): void {
  const { route, request } = state
  route.counters.errors++
  bypassed(request, route, 'store-error')
  state.done()
}

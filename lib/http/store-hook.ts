import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify'
import { headersSize, type CacheEntry, type HeaderValue } from '../entry.js'
import { rawPath, sha256, tenantOfKey } from '../key.js'
import { isPromise } from '../promise.js'
import { entryTags, pathGroup, TAGS_EXPECTED, tagsProblem, type TagsProblem } from '../tags.js'
import type { NotStoredReason } from './not-stored.js'

const isTagsProblem = (reason: NotStoredReason): reason is TagsProblem => reason in TAGS_EXPECTED
import { payloadBytes, storableTtl, storedHeaders } from './policy.js'
import { release } from './cross-process.js'
import { kReplyTags, kRequestState, type HookContext, type KeyedState, type RouteState, type StateFor, tagsOf } from './request-state.js'
import { discard, replaceWithEntry } from './respond.js'
import { applyOriginVerdict, headAgrees, restoreConditions, updatedEntry } from './revalidation.js'
import { isNodeStream, streamStore } from './stream-store.js'
import { rememberVariant, responseVariant, storeVariant, type Variant } from './variants.js'

/**
 * The store hook (onSend) of a cached route: what the handler answered is stored when it may be (a
 * buffered payload at once, a stream once it has ended), a 304 to the cache's own conditional request
 * renews the entry it revalidated, a failed answer is replaced by a stale entry within its window.
 */
export function createStoreHook (ctx: HookContext): {
  storeOnSend: (stateFor: StateFor) => onSendHookHandler
} {
  const { store, options, inFlight, refresher, rawKeys } = ctx
  const storeStream = streamStore({ options, inFlight, refresher, release: (state) => { release(store, state) }, save: (state, request, reply, body) => save(state, request, reply, undefined, body) })

  /**
   * Stores the response if it may be stored; answers the entry, for the requests waiting on it.
   * `streamed`: the bytes of a streamed payload that has ended (stream-store.ts), already a copy of its own.
   */
  function save (state: KeyedState, request: FastifyRequest, reply: FastifyReply, payload: unknown, streamed?: Buffer): CacheEntry | undefined {
    const { route } = state
    const body = streamed ?? payloadBytes(payload)
    const now = Date.now()
    const headers = storedHeaders(reply.getHeaders(), route.options.ttl === 'origin')
    // maxEntryBytes bounds the entry, headers included: a huge header is no cheaper to store than a body.
    const verdict = body === undefined ? 'stream' as const : storableTtl(route.options, reply, body.length + headersSize(headers), options.maxEntryBytes, now)
    // Origin mode: a response that varies on headers the key does not hold is a variant (variants.ts).
    const variant = typeof verdict === 'string' ? undefined : variantOf(state, request, (name) => reply.getHeader(name))
    const tags = typeof verdict === 'string' || typeof variant === 'string' ? [] : userTags(state, request, reply)
    if (typeof verdict === 'string' || typeof variant === 'string' || typeof tags === 'string') {
      notStored(request, route, typeof verdict === 'string' ? verdict : typeof variant === 'string' ? variant : tags as TagsProblem)
      return undefined
    }
    const bytes = body as Buffer
    const origin = typeof verdict === 'object'
    let etag = reply.getHeader('etag')
    if (typeof etag !== 'string') {
      // In origin mode of a recognisable form, so that it is never sent to the origin as its own.
      etag = (origin ? '"rc-' : '"') + sha256(bytes).slice(0, 27) + '"'
      reply.header('etag', etag)
      headers.etag = etag
    }
    // Origin mode passes `date` through as received; a response without one gets the time it was made,
    // on this answer and every hit alike (RFC 9110 section 6.6.1).
    if (origin && !reply.hasHeader('date')) reply.header('date', headers.date = new Date(now).toUTCString())
    const entry: CacheEntry = {
      status: reply.statusCode,
      headers,
      body: bytes,
      storedAt: now,
      ttl: origin ? verdict.ttl : verdict,
      etag,
      request: request.method + ' ' + request.url
    }
    const storeTtl = origin
      ? applyOriginVerdict(entry, route.options, verdict)
      : verdict + Math.max(route.options.staleWhileRevalidate, route.options.staleIfError)
    return write(state, request, reply, entry, storeTtl, variant, tags)
  }

  /** Each route warns once per reason when its tags pass a bound: a bug of the app's, not a load. */
  const warned = new Set<string>()

  function notStored (request: FastifyRequest, route: RouteState, reason: NotStoredReason): void {
    request.log.debug({ responseCache: { route: route.id, reason } }, 'response cache: not stored')
    refresher.report(request, reason)
    if (!isTagsProblem(reason) || warned.has(route.id + ' ' + reason)) return
    warned.add(route.id + ' ' + reason)
    request.log.warn({ responseCache: { route: route.id, reason, expected: TAGS_EXPECTED[reason] } }, 'response cache: not stored, its tags are past their bound')
  }

  /** The route's tags and the handler's (reply.cacheTags), each once; or why one entry may not carry them. */
  function userTags (state: KeyedState, request: FastifyRequest, reply: FastifyReply): readonly string[] | TagsProblem {
    const own = tagsOf(state.route.options.tags, request)
    const added = reply[kReplyTags]
    const tags = added === null ? own : [...new Set([...own, ...added])]
    return tagsProblem(tags) ?? tags
  }

  /** The variant of its resource a response is (origin mode, variants.ts), or why it may not be stored. */
  function variantOf (state: KeyedState, request: FastifyRequest, header: (name: string) => HeaderValue | number | undefined): Variant | NotStoredReason | undefined {
    return responseVariant(state.route.options, request, header, state.variantOf ?? state.key)
  }

  /**
   * Writes an entry under the request's key, or as the variant it is (its own key, and the marker
   * under the resource's); answers it, for the requests waiting on it.
   */
  function write (state: KeyedState, request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, storeTtl: number, variant: Variant | undefined, userTags: readonly string[]): CacheEntry {
    const { route } = state
    const key = state.key
    const primary = state.variantOf ?? key
    if (variant !== undefined) rememberVariant(entry, variant)
    const tags = entryTags({
      tenant: tenantOfKey(key, options.namespace),
      tags: userTags,
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
        release(store, state)
        refresher.report(request, 'vary-variants')
        return
      }
      if (lockToken !== undefined) state.lockToken = undefined
      route.counters.stores++
      if (state.rawKey !== undefined) rawKeys.remember(state.rawKey, primary)
      release(store, state)
      refresher.report(request, 'stored')
    }
    const failed = (): void => {
      route.counters.errors++
      for (const landed of landing) inFlight.written(landed, entry)
      release(store, state)
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
  function revalidated (state: KeyedState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): Buffer {
    state.status = 'REVALIDATED'
    const { entry, stored, reason } = storeUpdated(state, request, reply, stale)
    if (reason !== undefined) {
      // Validated, so this answer may use it; the origin no longer lets it be kept.
      request.log.debug({ responseCache: { route: state.route.id, reason } }, 'response cache: revalidated, not stored again')
      refresher.report(request, reason)
      release(store, state)
    }
    if (state.leader) inFlight.settle(state.key, stored)
    return replaceWithEntry(request, reply, entry, 'REVALIDATED')
  }

  /**
   * RFC 9111 section 4.3.5: a HEAD answer updates the stored GET response when their validators
   * agree, and drops it when they do not.
   */
  function headAnswered (state: KeyedState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): void {
    const key = state.key
    if (!headAgrees(stale, reply)) {
      const dropped = store.delete(key)
      // A store that fails has reported it; the entry stays stale, to be revalidated.
      if (isPromise(dropped)) dropped.catch(() => {})
      return
    }
    storeUpdated(state, request, reply, stale)
  }

  /**
   * The stale entry updated by a 304 or a HEAD answer (revalidation.ts), written again as the variant
   * its updated headers say it is (a refresh, which reads no marker, stores it there too); or, with
   * the entry alone, why it may not be stored again.
   */
  function storeUpdated (state: KeyedState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): { entry: CacheEntry, stored?: CacheEntry, reason?: NotStoredReason } {
    const { entry, verdict } = updatedEntry(stale, state.route.options, reply, Date.now())
    if (typeof verdict === 'string') return { entry, reason: verdict }
    // The merged headers may have grown past the bound a new response is held to.
    if (entry.body.length + headersSize(entry.headers) > options.maxEntryBytes) return { entry, reason: 'too-large' }
    const variant = variantOf(state, request, (name) => entry.headers[name])
    if (typeof variant === 'string') return { entry, reason: variant }
    const tags = userTags(state, request, reply)
    if (typeof tags === 'string') return { entry, reason: tags }
    return { entry, stored: write(state, request, reply, entry, applyOriginVerdict(entry, state.route.options, verdict), variant, tags) }
  }

  const storeOnSend = (stateFor: StateFor): onSendHookHandler => function responseCacheStore (request, reply, payload, done) {
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
    if (state.status === 'BYPASS') {
      reply.header('x-cache', 'BYPASS')
      refresher.report(request, state.route.readOnly ? 'head' : 'bypass')
      done(null, payload)
      return
    }
    const revalidating = state.revalidating
    if (revalidating !== undefined && reply.statusCode === 304) {
      discard(payload)
      done(null, revalidated(state, request, reply, revalidating))
      return
    }
    if (state.stale !== undefined && reply.statusCode >= 500) {
      // stale-if-error: the error has been logged by Fastify; the client gets the last good answer.
      state.route.counters.stale++
      if (state.leader) inFlight.settle(state.key, undefined)
      release(store, state)
      discard(payload)
      done(null, replaceWithEntry(request, reply, state.stale, 'STALE'))
      return
    }
    if (revalidating !== undefined && state.route.readOnly && reply.statusCode === 200) {
      try {
        headAnswered(state, request, reply, revalidating)
      } catch (error) {
        request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not update an entry from a HEAD answer')
      }
    }
    reply.header('x-cache', state.status)
    let entry: CacheEntry | undefined
    if (!state.route.readOnly) {
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
    } else refresher.report(request, 'head')
    if (state.leader) inFlight.settle(state.key, entry)
    if (entry === undefined) release(store, state)
    done(null, payload)
  }

  return { storeOnSend }
}

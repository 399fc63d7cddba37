import type { FastifyReply, FastifyRequest } from 'fastify'
import { encodedSize, headersSize, type CacheEntry, type EncodedBodies, type HeaderValue } from '../entry.js'
import { rawPath, sha256, tenantOfKey } from '../key.js'
import { jittered } from '../jitter.js'
import { isPromise } from '../promise.js'
import type { NotStoredReason } from '../rules/not-stored.js'
import { applyOriginVerdict, updatedEntry } from '../rules/revalidation.js'
import { storableTtl, storedHeaders } from '../rules/storability.js'
import { setupFix } from '../rules/setup-fix.js'
import { surrogateKeys } from '../rules/surrogate-keys.js'
import { responseVariant, type Variant } from '../rules/variants.js'
import { entryTags, pathGroup, TAGS_EXPECTED, tagsProblem, type TagsProblem } from '../tags.js'
import { release } from './key-lock.js'
import { payloadBytes } from './payload.js'
import { kReplyTags, kReplyTtl, type HookContext, type KeyedState, responseHeaders, tagsOf } from './request-state.js'
import { rememberVariant, storeVariant } from './variant-store.js'
import { traceEnd, traceReturned, traceStart, type CacheTraceContext } from '../observability/tracing.js'

const isTagsProblem = (reason: NotStoredReason): reason is TagsProblem => reason in TAGS_EXPECTED

/**
 * Turns what a handler answered into an entry and writes it, when the rules let it be stored: under
 * the request's key, or as the variant of its resource it is. Answers the entry, for the requests of
 * this process waiting on it.
 */
export class EntryWriter {
  readonly #ctx: HookContext

  constructor (ctx: HookContext) {
    this.#ctx = ctx
  }

  /**
   * Stores the response if it may be stored; answers the entry, for the requests waiting on it.
   * `streamed`: the bytes of a streamed payload that has ended (stream-store.ts), already a copy of its
   * own; `encoded`: their encodings (http/compression.ts), stored and counted with them.
   */
  save (state: KeyedState, request: FastifyRequest, reply: FastifyReply, payload: unknown, streamed?: Buffer, encoded?: EncodedBodies): CacheEntry | undefined {
    const { route } = state
    const { options } = this.#ctx
    const body = streamed ?? payloadBytes(payload)
    const now = Date.now()
    const headers = storedHeaders(responseHeaders(state, reply), route.options.ttl === 'origin')
    // maxEntryBytes bounds the entry, headers included: a huge header is no cheaper to store than a body.
    const replyTtl = reply[kReplyTtl]
    const verdict = body === undefined ? 'stream' as const : replyTtl === 0 ? 'cache-ttl-0' as const : storableTtl(route.options, reply, body.length + headersSize(headers) + encodedSize(encoded), options.maxEntryBytes, now)
    // A response that varies on headers the key does not hold is a variant (rules/variants.ts).
    const variant = typeof verdict === 'string' ? undefined : this.#variantOf(state, request, (name) => reply.getHeader(name))
    const tags = typeof verdict === 'string' || typeof variant === 'string' ? [] : this.#userTags(state, request, reply)
    if (typeof verdict === 'string' || typeof variant === 'string' || typeof tags === 'string') {
      this.notStored(request, reply, state, typeof verdict === 'string' ? verdict : typeof variant === 'string' ? variant : tags as TagsProblem)
      return undefined
    }
    const bytes = body as Buffer
    const origin = typeof verdict === 'object'
    // ttlJitter: a number ttl only, shorter never longer; origin mode keeps what the response says.
    // reply.cacheTtl(n): the handler's n, in either mode, neither shortened nor jittered.
    const ttl = replyTtl ?? (origin ? verdict.ttl : jittered(verdict, route.options.ttlJitter))
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
      ttl,
      etag,
      request: request.method + ' ' + request.url
    }
    if (encoded !== undefined && encodedSize(encoded) > 0) entry.encoded = encoded
    const storeTtl = origin
      ? applyOriginVerdict(entry, route.options, replyTtl === null ? verdict : { ...verdict, ttl: replyTtl })
      : ttl + Math.max(route.options.staleWhileRevalidate, route.options.staleIfError)
    return this.write(state, request, reply, entry, storeTtl, variant, tags)
  }

  /**
   * A response not stored: at debug each time; at warn once per route and reason when the reason is
   * how the route is set up (its tags, its statuses, what its handler sends), naming the fix.
   */
  notStored (request: FastifyRequest, reply: FastifyReply, state: KeyedState, reason: NotStoredReason): void {
    const { route } = state
    state.notStored = reason
    traceEnd(traceStart('store', route.storeKind, route.id), 'not-stored', { reason })
    request.log.debug({ responseCache: { route: route.id, reason } }, 'response cache: not stored')
    this.#ctx.refresher.report(request, reason)
    if (route.warned.has(reason)) return
    if (isTagsProblem(reason)) {
      route.warned.add(reason)
      request.log.warn({ responseCache: { route: route.id, reason, expected: TAGS_EXPECTED[reason] } }, 'response cache: not stored, its tags are past their bound')
      return
    }
    const fix = setupFix(reason, reply.statusCode, route.options.ttl === 'origin', this.#ctx.options.maxEntryBytes)
    if (fix === undefined) return
    route.warned.add(reason)
    const what = reason === 'status' ? `status ${reply.statusCode}` : reason
    request.log.warn({ responseCache: { route: route.id, reason } }, `response cache: not stored (${what}), said once for this route: ${fix}`)
  }

  /** The route's tags and the handler's (reply.cacheTags), each once; or why one entry may not carry them. */
  #userTags (state: KeyedState, request: FastifyRequest, reply: FastifyReply): readonly string[] | TagsProblem {
    const own = tagsOf(state.route.options.tags, request)
    const added = reply[kReplyTags]
    const tags = added === null ? own : [...new Set([...own, ...added])]
    return tagsProblem(tags) ?? tags
  }

  /** The variant of its resource a response is (rules/variants.ts), or why it may not be stored. */
  #variantOf (state: KeyedState, request: FastifyRequest, header: (name: string) => HeaderValue | number | undefined): Variant | NotStoredReason | undefined {
    return responseVariant(state.route.options, request, header, state.variantOf ?? state.key)
  }

  /**
   * Writes an entry under the request's key, or as the variant it is (its own key, and the marker
   * under the resource's); answers it, for the requests waiting on it.
   */
  write (state: KeyedState, request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, storeTtl: number, variant: Variant | undefined, userTags: readonly string[]): CacheEntry {
    const { route } = state
    const { store, options, inFlight, refresher, rawKeys } = this.#ctx
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
    let trace: CacheTraceContext | undefined
    const stored = (kept: unknown): void => {
      for (const landed of landing) inFlight.written(landed, entry)
      if (kept === false) {
        // The resource has as many variants as it may keep (rules/variants.ts): this one is not stored.
        request.log.debug({ responseCache: { route: route.id, reason: 'vary-variants' } }, 'response cache: not stored')
        state.notStored = 'vary-variants'
        traceEnd(trace, 'not-stored', { reason: 'vary-variants' })
        release(store, state)
        refresher.report(request, 'vary-variants')
        return
      }
      if (lockToken !== undefined) state.lockToken = undefined
      route.counters.stores++
      traceEnd(trace, 'stored', { bytes: entry.body.length })
      if (state.rawKey !== undefined) rawKeys.remember(state.rawKey, primary)
      release(store, state)
      refresher.report(request, 'stored')
    }
    const failed = (error?: unknown): void => {
      traceEnd(trace, 'not-stored', { reason: 'store-error', error })
      route.counters.errors++
      for (const landed of landing) inFlight.written(landed, entry)
      release(store, state)
      refresher.report(request, 'store-error')
    }
    const set = (): void => {
      trace = traceStart('store', route.storeKind, route.id)
      try {
        const setOptions = { ttl: storeTtl, tags, lockToken }
        const result = variant === undefined ? store.set(target, entry, setOptions) : storeVariant(store, variant, entry, setOptions)
        if (isPromise<unknown>(result)) {
          traceReturned(trace)
          result.then(stored, failed)
        } else stored(result)
      } catch (error) {
        failed(error)
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
   * The stale entry updated by a 304 or a HEAD answer (rules/revalidation.ts), written again as the variant
   * its updated headers say it is (a refresh, which reads no marker, stores it there too); or, with
   * the entry alone, why it may not be stored again.
   */
  storeUpdated (state: KeyedState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): { entry: CacheEntry, stored?: CacheEntry, reason?: NotStoredReason } {
    const { entry, verdict } = updatedEntry(stale, state.route.options, reply, Date.now(), responseHeaders(state, reply))
    if (typeof verdict === 'string') return { entry, reason: verdict }
    // reply.cacheTtl(n) from the handler that answered the 304 or the HEAD: its n, as on a miss (save).
    const replyTtl = reply[kReplyTtl]
    if (replyTtl === 0) return { entry, reason: 'cache-ttl-0' }
    const storeTtl = applyOriginVerdict(entry, state.route.options, replyTtl === null ? verdict : { ...verdict, ttl: replyTtl })
    // The merged headers may have grown past the bound a new response is held to.
    if (entry.body.length + headersSize(entry.headers) + encodedSize(entry.encoded) > this.#ctx.options.maxEntryBytes) return { entry, reason: 'too-large' }
    const variant = this.#variantOf(state, request, (name) => entry.headers[name])
    if (typeof variant === 'string') return { entry, reason: variant }
    // Kept surrogate-key headers are in the stored headers the 304 updated: their keys stay tags.
    if (state.route.options.surrogateKeys?.keep === true) (reply[kReplyTags] ??= []).push(...surrogateKeys((name) => entry.headers[name]))
    const tags = this.#userTags(state, request, reply)
    if (typeof tags === 'string') return { entry, reason: tags }
    return { entry, stored: this.write(state, request, reply, entry, storeTtl, variant, tags) }
  }
}

import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify'
import type { CacheEntry } from '../entry.js'
import { isPromise } from '../promise.js'
import { headAgrees, restoreConditions } from '../rules/revalidation.js'
import type { GuardedStore } from '../stores/guard.js'
import { answerEncoded, compressMiss, type Compressed } from './compression.js'
import { EntryWriter } from './entry-writer.js'
import { release } from './key-lock.js'
import { kRequestState, type HookContext, type KeyedState, type StateFor } from './request-state.js'
import { addCacheStatus, discard, replaceWithEntry } from './respond.js'
import { isNodeStream, streamStore } from './stream-store.js'
import { takeSurrogateKeys } from './surrogate-keys.js'

/**
 * The store hook (onSend) of a cached route: what the handler answered is stored when it may be (a
 * buffered payload at once, a stream once it has ended), a 304 to the cache's own conditional request
 * renews the entry it revalidated, a failed answer is replaced by a stale entry within its window.
 */
export function createStoreHook (ctx: HookContext): (stateFor: StateFor) => onSendHookHandler {
  const { store, inFlight, refresher } = ctx
  const writer = new EntryWriter(ctx)
  const storeStream = streamStore({
    options: ctx.options,
    inFlight,
    refresher,
    release: (state) => { release(store, state) },
    save: (state, request, reply, body) => writer.save(state, request, reply, undefined, body),
    notStored: (request, reply, state, reason) => { writer.notStored(request, reply, state, reason) }
  })

  return (stateFor: StateFor): onSendHookHandler => function responseCacheStore (request, reply, payload, done) {
    const state = request[kRequestState]
    if (state === null) {
      // The request failed before its lookup (a body that did not parse, say): nothing to store.
      const route = stateFor(request)
      if (route?.options.surrogateKeys !== undefined) takeSurrogateKeys(reply, route.options.surrogateKeys)
      if (route !== undefined) {
        if (route.options.xCache || refresher.isRefresh(request)) reply.header('x-cache', 'BYPASS')
        addCacheStatus(reply, route.options, undefined, { fwd: 'bypass', fwdStatus: reply.statusCode, detail: 'not-looked-up' })
      }
      done(null, payload)
      return
    }
    if (state.status === 'HIT' || state.status === 'STALE') {
      // The route's own onSend hooks ran again over the entry, which already holds what they made
      // of the payload: the client gets the stored bytes, as on the miss that stored them.
      done(null, state.served ?? payload)
      return
    }
    // The handler answered: its surrogate keys become tags (and leave the headers) before anything is sent or stored.
    if (state.route.options.surrogateKeys !== undefined) takeSurrogateKeys(reply, state.route.options.surrogateKeys)
    // The answers made from the entry below evaluate the client's conditions, not the cache's.
    if (state.client !== undefined) restoreConditions(request.headers, state.client)
    if (state.status === 'BYPASS') {
      if (state.route.options.xCache || refresher.isRefresh(request)) reply.header('x-cache', 'BYPASS')
      addCacheStatus(reply, state.route.options, undefined, { fwd: state.reason === 'method-override' ? 'method' : 'bypass', fwdStatus: reply.statusCode, detail: state.reason })
      refresher.report(request, state.route.readOnly ? 'head' : 'bypass')
      done(null, payload)
      return
    }
    const revalidating = state.revalidating
    if (revalidating !== undefined && reply.statusCode === 304) {
      discard(payload)
      done(null, revalidated(ctx, writer, state, request, reply, revalidating))
      return
    }
    if (state.stale !== undefined && reply.statusCode >= 500) {
      // stale-if-error: the error has been logged by Fastify; the client gets the last good answer.
      state.route.counters.stale++
      if (state.leader) inFlight.settle(state.key, undefined)
      release(store, state)
      discard(payload)
      done(null, replaceWithEntry(state, state.stale, 'STALE', { fwd: 'stale', fwdStatus: reply.statusCode }))
      return
    }
    if (revalidating !== undefined && state.route.readOnly && reply.statusCode === 200) {
      try {
        headAnswered(store, writer, state, request, reply, revalidating)
      } catch (error) {
        request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not update an entry from a HEAD answer')
      }
    }
    if (state.route.options.xCache || refresher.isRefresh(request)) reply.header('x-cache', state.status)
    if (state.route.readOnly) {
      refresher.report(request, 'head')
      stored(state, undefined)
      done(null, payload)
      return
    }
    // A stream is stored once it has ended: stream-store.ts settles the waiters and the lock then.
    if (isNodeStream(payload)) {
      const stream = storeStream(state, request, reply, payload)
      // Whether it is stored is known at its end, after the headers: only why not, when known now.
      missStatus(state, reply, undefined)
      done(null, stream)
      return
    }
    let compressed: ReturnType<typeof compressMiss>
    try {
      compressed = compressMiss(state.route.options.compress, reply, payload)
    } catch (error) {
      request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not compress a response')
    }
    if (compressed === undefined) {
      stored(state, save(state, request, reply, payload, undefined))
      done(null, payload)
    } else if (compressed instanceof Promise) {
      compressed.then((made) => {
        done(null, saveCompressed(state, request, reply, made))
      }, (error: unknown) => {
        request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not compress a response')
        stored(state, save(state, request, reply, payload, undefined))
        done(null, payload)
      })
    } else done(null, saveCompressed(state, request, reply, compressed))
  }

  function save (state: KeyedState, request: FastifyRequest, reply: FastifyReply, payload: unknown, compressed: Compressed | undefined): CacheEntry | undefined {
    try {
      return compressed === undefined ? writer.save(state, request, reply, payload) : writer.save(state, request, reply, undefined, compressed.body, compressed.encoded)
    } catch (error) {
      request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not store a response')
      refresher.report(request, 'error')
      state.notStored = 'error'
      return undefined
    }
  }

  /** The waiters get the entry, or run the handler themselves; the lock goes when nothing was stored. */
  function stored (state: KeyedState, entry: CacheEntry | undefined): void {
    if (state.leader) inFlight.settle(state.key, entry)
    if (entry === undefined) release(store, state)
    missStatus(state, state.reply, entry)
  }

  function saveCompressed (state: KeyedState, request: FastifyRequest, reply: FastifyReply, compressed: Compressed): Buffer {
    stored(state, save(state, request, reply, undefined, compressed))
    return answerEncoded(request, reply, compressed)
  }
}

/**
 * A 304 to the cache's conditional request: the stored response, updated by it, is stored again and
 * answers the client (a 304 if the client's own `If-None-Match` matches it). Answers the payload.
 */
function revalidated ({ store, inFlight, refresher }: HookContext, writer: EntryWriter, state: KeyedState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): Buffer {
  state.status = 'REVALIDATED'
  const { entry, stored, reason } = writer.storeUpdated(state, request, reply, stale)
  if (reason !== undefined) {
    // Validated, so this answer may use it; the origin no longer lets it be kept.
    request.log.debug({ responseCache: { route: state.route.id, reason } }, 'response cache: revalidated, not stored again')
    refresher.report(request, reason)
    release(store, state)
  }
  if (state.leader) inFlight.settle(state.key, stored)
  return replaceWithEntry(state, entry, 'REVALIDATED', { fwd: state.fwd ?? 'stale', fwdStatus: 304, stored: stored !== undefined, detail: reason })
}

/**
 * RFC 9111 section 4.3.5: a HEAD answer updates the stored GET response when their validators
 * agree, and drops it when they do not.
 */
function headAnswered (store: GuardedStore, writer: EntryWriter, state: KeyedState, request: FastifyRequest, reply: FastifyReply, stale: CacheEntry): void {
  const key = state.key
  if (!headAgrees(stale, reply)) {
    const dropped = store.delete(key)
    // A store that fails has reported it; the entry stays stale, to be revalidated.
    if (isPromise(dropped)) dropped.catch(() => {})
    return
  }
  writer.storeUpdated(state, request, reply, stale)
}

/**
 * A forwarded request's Cache-Status: why it went forward, what the handler answered, and whether its
 * answer was stored (`entry`) or why not. Set after the entry was made, so that it never holds it.
 */
function missStatus (state: KeyedState, reply: FastifyReply, entry: CacheEntry | undefined): void {
  addCacheStatus(reply, state.route.options, state, {
    fwd: state.fwd ?? 'uri-miss',
    fwdStatus: reply.statusCode,
    // A memory store refuses a variant past the resource's bound in the write itself.
    stored: entry !== undefined && state.notStored === undefined,
    detail: state.notStored
  })
}

import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { headersSize, type CacheEntry } from '../entry.js'
import type { ResolvedOptions } from '../options.js'
import type { InFlight } from '../coalescing/coalesce.js'
import type { NotStoredReason } from '../rules/not-stored.js'
import { responseHeaders, type KeyedState } from './request-state.js'
import { storableTtl, storedHeaders } from '../rules/storability.js'
import type { Refresher } from '../coalescing/refresh.js'

/** A payload this module can store: a Node stream (a file, reply-from's upstream body, a PassThrough). */
export const isNodeStream = (payload: unknown): payload is Readable => payload instanceof Readable

export interface StreamStoreContext {
  options: ResolvedOptions
  inFlight: InFlight
  refresher: Refresher
  /** Stores a finished response from its bytes, as a buffered one is stored; answers the entry, or undefined. */
  save: (state: KeyedState, request: FastifyRequest, reply: FastifyReply, body: Buffer) => CacheEntry | undefined
  /** Lets go of the cross-process lock the request holds, if any. */
  release: (state: KeyedState) => void
  /** Says why a response is not stored (the debug line, a warm-up's outcome, a setup's one warn). */
  notStored: (request: FastifyRequest, reply: FastifyReply, state: KeyedState, reason: NotStoredReason) => void
}

/** The `content-length` the response declares, or 0 when it declares none (or nothing valid). */
function declaredLength (reply: FastifyReply): number {
  const value = reply.getHeader('content-length')
  const length = Number(value)
  return value !== undefined && Number.isSafeInteger(length) && length > 0 ? length : 0
}

/** The chunks as one Buffer of its own memory (not Node's shared pool), as the buffered path stores. */
function joined (chunks: Buffer[], size: number): Buffer {
  const body = Buffer.allocUnsafeSlow(size)
  let offset = 0
  for (const chunk of chunks) offset += chunk.copy(body, offset)
  return body
}

/**
 * Stores a streamed response without delaying it: the client gets each chunk as it comes, and a copy
 * is kept until the source ends. An entry is stored, as a buffered response would be, only if the
 * source ends without error within `maxEntryBytes`; otherwise the requests waiting for the key are
 * let go at once (they run the handler themselves) and its lock is released. Either way this module,
 * not the store hook, settles the key's waiters and lock.
 */
export function streamStore (ctx: StreamStoreContext): (state: KeyedState, request: FastifyRequest, reply: FastifyReply, source: Readable) => Readable {
  const { options, inFlight, refresher, save, release } = ctx
  const maxBytes = options.maxEntryBytes

  /** Nothing is stored for this request: its waiters run the handler themselves. */
  function notStored (state: KeyedState, request: FastifyRequest, reply: FastifyReply, reason: NotStoredReason): void {
    ctx.notStored(request, reply, state, reason)
    if (state.leader) inFlight.settle(state.key, undefined)
    release(state)
  }

  function finish (state: KeyedState, request: FastifyRequest, reply: FastifyReply, body: Buffer): void {
    let entry: CacheEntry | undefined
    try {
      entry = save(state, request, reply, body)
    } catch (error) {
      request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not store a response')
      refresher.report(request, 'error')
    }
    if (state.leader) inFlight.settle(state.key, entry)
    if (entry === undefined) release(state)
  }

  return function storeStream (state, request, reply, source) {
    const now = Date.now()
    // maxEntryBytes counts the headers with the body: they leave that much less room for the copy.
    const headerBytes = headersSize(storedHeaders(responseHeaders(state, reply), state.route.options.ttl === 'origin'))
    let verdict: ReturnType<typeof storableTtl>
    try {
      // Everything the buffered path checks, with the declared length for the size: a body announced
      // larger than the bound is not copied at all.
      verdict = storableTtl(state.route.options, reply, declaredLength(reply) + headerBytes, maxBytes, now)
    } /* c8 ignore start */ catch (error) {
      // As on the buffered path: a header no rule expects must not fail an answer that works without the cache.
      request.log.warn({ err: error, responseCache: { route: state.route.id } }, 'response cache could not store a response')
      verdict = 'error'
    } /* c8 ignore stop */
    if (typeof verdict === 'string') {
      notStored(state, request, reply, verdict)
      return source
    }
    // Origin mode stores `date` as sent: a response without one gets it now, before the headers go out,
    // so the MISS and the hits carry the same (RFC 9110 section 6.6.1).
    if (typeof verdict === 'object' && !reply.hasHeader('date')) reply.header('date', new Date(now).toUTCString())

    let chunks: Buffer[] | undefined = []
    let size = 0
    let decided = false
    const giveUp = (reason: NotStoredReason): void => {
      if (decided) return
      decided = true
      chunks = undefined
      notStored(state, request, reply, reason)
    }
    const copy = new Transform({
      transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
        if (chunks !== undefined) {
          size += chunk.length
          // Past the bound the copy is dropped at once, and the waiters let go: no need to wait for the end.
          if (size + headerBytes > maxBytes) giveUp('too-large')
          else chunks.push(chunk)
        }
        callback(null, chunk)
      },
      // The source has ended and every chunk has been passed on; the client gets the end of the body
      // after this, so any request it sends next finds the entry.
      flush (callback: TransformCallback) {
        if (chunks !== undefined) {
          decided = true
          finish(state, request, reply, joined(chunks, size))
        }
        callback()
      }
    })
    // pipeline destroys the source when Fastify destroys the copy (the client went away), and the copy
    // with the source's error, which Fastify then handles as it would the source's own.
    pipeline(source, copy, (error) => {
      if (error !== undefined && error !== null) giveUp((error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' ? 'stream-closed' : 'stream-error')
    })
    return copy
  }
}

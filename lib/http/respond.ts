import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ageSeconds, type CacheEntry } from '../entry.js'
import { encodedEtag } from '../rules/encoding.js'
import { etagMatches, NOT_MODIFIED_HEADERS } from '../rules/storability.js'
import type { FieldValue } from '../rules/lists.js'
import { isRequestHeader } from '../rules/per-request.js'
import { encodingHeaders, hitEncoding } from './compression.js'

/**
 * Answers a request from an entry: 304 when its validator matches, else the stored status, headers and
 * body. Answers the body it sent (undefined for a 304), which the store hook sends again after the
 * route's own onSend hooks: the entry already holds what they made. The headers the request's hooks
 * set stay, unless the entry holds the same (the handler's, as on a miss); the route's `perRequest`
 * names are never taken from an entry (one stored before the route named them).
 */
export function sendEntry (request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, now: number, status: 'HIT' | 'STALE', perRequest: readonly string[]): Buffer | undefined {
  reply.header('age', ageSeconds(entry, now))
  reply.header('x-cache', status)
  // An entry without encodings (rules/encoding.ts) costs its identity hits one property check.
  const encoding = hitEncoding(request, entry)
  if (etagMatches(request.headers['if-none-match'], encoding === undefined ? entry.etag : encodedEtag(entry.etag, encoding))) {
    for (const name of NOT_MODIFIED_HEADERS) {
      const value = entry.headers[name]
      if (value !== undefined) reply.header(name, value)
    }
    if (entry.encoded !== undefined) encodingHeaders(reply, entry, encoding, true)
    reply.code(304).send()
    return undefined
  }
  entryHeaders(reply, entry, perRequest)
  const body = encoding === undefined ? entry.body : entry.encoded?.[encoding] as Buffer
  if (entry.encoded !== undefined) encodingHeaders(reply, entry, encoding)
  reply.code(entry.status).send(body)
  return body
}

function entryHeaders (reply: FastifyReply, entry: CacheEntry, perRequest: readonly string[]): void {
  if (perRequest.length === 0) {
    reply.headers(entry.headers)
    return
  }
  for (const name in entry.headers) if (!perRequest.includes(name)) reply.header(name, entry.headers[name])
}

/**
 * Replaces the handler's answer by an entry, from within onSend: a stale one for a failed response (a
 * 5xx or a thrown error), or one just revalidated for a 304 to the cache's own conditional request.
 * Of the reply's headers only the request's own stay (rules/per-request.ts), as on a hit.
 */
export function replaceWithEntry (request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, status: 'STALE' | 'REVALIDATED', before: Readonly<Record<string, FieldValue>> | undefined, perRequest: readonly string[]): Buffer {
  const headers = reply.getHeaders()
  for (const name in headers) if (!isRequestHeader(name, headers[name], before, perRequest)) reply.removeHeader(name)
  entryHeaders(reply, entry, perRequest)
  reply.header('age', ageSeconds(entry, Date.now()))
  reply.header('x-cache', status)
  const encoding = hitEncoding(request, entry)
  const notModified = etagMatches(request.headers['if-none-match'], encoding === undefined ? entry.etag : encodedEtag(entry.etag, encoding))
  if (entry.encoded !== undefined) encodingHeaders(reply, entry, encoding, notModified)
  if (notModified) {
    reply.code(304)
    return Buffer.alloc(0)
  }
  reply.code(entry.status)
  return encoding === undefined ? entry.body : entry.encoded?.[encoding] as Buffer
}

/** A stream the cache answers in place of (a 304's empty body from an upstream) is drained, freeing its connection. */
export function discard (payload: unknown): void {
  const stream = payload as Partial<Readable> | null | undefined
  if (typeof stream?.resume !== 'function') return
  stream.on?.('error', () => {})
  stream.resume()
}

import type { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'
import { ageSeconds, freshMs, type CacheEntry } from '../entry.js'
import type { ResolvedRouteOptions } from '../options.js'
import { appendCacheStatus, cacheStatusMember, hitMember, type CacheStatusFields } from '../rules/cache-status.js'
import { encodedEtag } from '../rules/encoding.js'
import { etagMatches, NOT_MODIFIED_HEADERS } from '../rules/storability.js'
import { isRequestHeader } from '../rules/per-request.js'
import { encodingHeaders, hitEncoding } from './compression.js'
import type { KeyedState } from './request-state.js'

/** An entry's freshness left, in whole seconds, negative once stale (the Cache-Status `ttl`). */
export function ttlSeconds (entry: CacheEntry, now: number): number {
  return Math.floor((freshMs(entry) - (now - entry.storedAt)) / 1000)
}

/**
 * The cache's own Cache-Status member (RFC 9211), after those the reply carries already (an origin's,
 * or an entry's from it). Remembered on the request's state, so that no entry stores the cache's member.
 */
export function addCacheStatus (reply: FastifyReply, options: ResolvedRouteOptions, state: KeyedState | undefined, fields: CacheStatusFields): void {
  const name = options.cacheStatus
  if (name === undefined) return
  const upstream = reply.getHeader('cache-status')
  if (state !== undefined) state.upstream = upstream ?? null
  reply.header('cache-status', appendCacheStatus(upstream, cacheStatusMember(name, fields)))
}

/**
 * Answers a request from an entry: 304 when its validator matches, else the stored status, headers and
 * body. Answers the body it sent (undefined for a 304), which the store hook sends again after the
 * route's own onSend hooks: the entry already holds what they made. The headers the request's hooks
 * set stay, unless the entry holds the same (the handler's, as on a miss); the route's `perRequest`
 * names are never taken from an entry (one stored before the route named them).
 */
export function sendEntry (state: KeyedState, entry: CacheEntry, now: number, status: 'HIT' | 'STALE'): Buffer | undefined {
  const { request, reply } = state
  const options = state.route.options
  reply.header('age', ageSeconds(entry, now))
  if (options.xCache) reply.header('x-cache', status)
  // An entry without encodings (rules/encoding.ts) costs its identity hits one property check.
  const encoding = hitEncoding(request, entry)
  if (etagMatches(request.headers['if-none-match'], encoding === undefined ? entry.etag : encodedEtag(entry.etag, encoding))) {
    for (const name of NOT_MODIFIED_HEADERS) {
      const value = entry.headers[name]
      if (value !== undefined) reply.header(name, value)
    }
    if (entry.encoded !== undefined) encodingHeaders(reply, entry, encoding, true)
    cacheStatusOfEntry(state, entry, now)
    reply.code(304).send()
    return undefined
  }
  entryHeaders(reply, entry, options.perRequestHeaders)
  cacheStatusOfEntry(state, entry, now)
  const body = encoding === undefined ? entry.body : entry.encoded?.[encoding] as Buffer
  if (entry.encoded !== undefined) encodingHeaders(reply, entry, encoding)
  reply.code(entry.status).send(body)
  return body
}

/**
 * A hit's Cache-Status: `hit` and the freshness left, one string after the entry's own members (an
 * origin's); for a request answered by another's run, why it went forward and `collapsed`.
 */
function cacheStatusOfEntry (state: KeyedState, entry: CacheEntry, now: number): void {
  const name = state.route.options.cacheStatus
  if (name === undefined) return
  const member = state.collapsed === true
    ? cacheStatusMember(name, { fwd: state.fwd ?? 'uri-miss', fwdStatus: entry.status, collapsed: true })
    : hitMember(name, ttlSeconds(entry, now))
  state.reply.header('cache-status', appendCacheStatus(entry.headers['cache-status'], member))
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
export function replaceWithEntry (state: KeyedState, entry: CacheEntry, status: 'STALE' | 'REVALIDATED', fields: CacheStatusFields): Buffer {
  const { request, reply, before } = state
  const options = state.route.options
  const perRequest = options.perRequestHeaders
  const headers = reply.getHeaders()
  for (const name in headers) if (!isRequestHeader(name, headers[name], before, perRequest)) reply.removeHeader(name)
  entryHeaders(reply, entry, perRequest)
  const now = Date.now()
  reply.header('age', ageSeconds(entry, now))
  if (options.xCache) reply.header('x-cache', status)
  addCacheStatus(reply, options, state, { ...fields, ttl: ttlSeconds(entry, now) })
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

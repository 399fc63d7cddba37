import type { NotStoredReason } from './not-stored.js'
import type { HeaderValue } from '../entry.js'
import { originFreshness, type OriginFreshness } from './freshness.js'
import { deltaSeconds, parseCacheControl, sharedMaxAge } from './directives.js'
import { listMembers } from './lists.js'
import type { RequestView, ResponseView, RouteRules } from './views.js'

// What may be served from the cache and what may be stored in it (RFC 9111 sections 3 and 5.2).

/**
 * Statuses that answer an error in the request itself: a header section or URI too long for the
 * origin, a character it refuses, a missing length, a body too large, a precondition or range that
 * fails. Another server's reasons for them may lie in what the key does not hold (an origin with a
 * smaller header limit than Fastify's answers 400 to a request Fastify took), so origin mode never
 * stores them, as neither Varnish's built-in rules nor nginx do: stored, one attacker's request
 * would answer every client of the key (cache-poisoned denial of service).
 */
export const REQUEST_ERROR_STATUSES: ReadonlySet<number> = new Set([400, 411, 412, 413, 414, 416, 431])

/** Methods whose response may be stored; PUT, PATCH and DELETE routes only invalidate. */
export const CACHEABLE_METHODS = new Set(['GET', 'HEAD', 'POST', 'QUERY'])
/** Methods keyed without a body: their lookup runs in onRequest, before the body is read. */
export const BODYLESS_METHODS = new Set(['GET', 'HEAD'])

/** Why a request skips the cache, or undefined when it may use it. */
export function requestBypassReason (route: RouteRules, request: RequestView, withBody: boolean): string | undefined {
  const headers = request.headers
  if (headers.authorization !== undefined && !route.vary.includes('authorization')) return 'authorization'
  if (headers.cookie !== undefined && !route.ignoreCookies && !route.vary.includes('cookie')) return 'cookie'
  // Preconditions a cache does not evaluate (RFC 9111 section 4.3.2: If-Match and If-Unmodified-Since
  // "are not applicable to a cache"; If-Range goes with a Range): the handler does, and its answer
  // (a 412 for a tag only this client sent, a 416, a 206) is this request's alone.
  if (headers['if-match'] !== undefined || headers['if-unmodified-since'] !== undefined || headers['if-range'] !== undefined) return 'request-conditional'
  // A handler or origin that honours one of these answers for another method (a DELETE's 404, a
  // POST's 201): never a GET's answer to share, nor one a stored GET answer may stand in for.
  if (headers['x-http-method-override'] !== undefined || headers['x-http-method'] !== undefined || headers['x-method-override'] !== undefined) return 'method-override'
  if (withBody) return undefined
  // A body on GET or HEAD is not keyed, so such a request must not read or fill the shared entry.
  if (headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')) return 'request-body'
  // The route may answer 206 with part of the body: a stored 200 must not answer in its place, and a
  // 206 must not be stored as the whole. Range is defined for GET only (RFC 9110 section 14.2).
  if (headers.range !== undefined && request.method === 'GET') return 'range'
  return undefined
}

/** `cache-control: no-cache` or `max-age=0`, or `pragma: no-cache`: honoured only with `honorClientNoCache`. */
export function clientAsksNoCache (request: RequestView): boolean {
  const cacheControl = request.headers['cache-control']
  if (cacheControl !== undefined) {
    const directives = parseCacheControl(cacheControl)
    if (directives.has('no-cache') || deltaSeconds(directives, 'max-age') === 0) return true
  }
  return request.headers.pragma?.includes('no-cache') === true
}

/** Why a response may not be stored whatever its freshness says, in either mode; undefined if it may. */
function unstorable (route: RouteRules, reply: ResponseView, bodyBytes: number, maxEntryBytes: number): NotStoredReason | undefined {
  if (!route.statusCodes.has(reply.statusCode)) return route.ttl === 'origin' && REQUEST_ERROR_STATUSES.has(reply.statusCode) ? 'status-request-error' : 'status'
  if (reply.hasHeader('set-cookie')) return 'set-cookie'
  if (bodyBytes > maxEntryBytes) return 'too-large'
  // A Vary naming request headers the key does not hold makes the response one variant of its
  // resource (variants.ts, http/variant-store.ts); `*` can select none.
  for (const member of listMembers(reply.getHeader('vary'), false)) {
    if (member === '*') return 'vary-star'
  }
  return undefined
}

/**
 * How long the response may be stored, or the reason it may not be stored at all. A route with a
 * number of seconds: that many, which the response's own `s-maxage` (or `max-age`) may shorten, never
 * lengthen. A route with `ttl: 'origin'`: what the response's own headers say (RFC 9111).
 */
export function storableTtl (route: RouteRules, reply: ResponseView, bodyBytes: number, maxEntryBytes: number, now: number): number | OriginFreshness | NotStoredReason {
  const reason = unstorable(route, reply, bodyBytes, maxEntryBytes)
  if (reason !== undefined) return reason
  if (route.ttl === 'origin') {
    // RFC 9111 section 5.2.1.5: a cache MUST NOT store the response to a request that says no-store.
    if (parseCacheControl(reply.request.headers['cache-control']).has('no-store')) return 'request-no-store'
    return originFreshness({
      status: reply.statusCode,
      header: (name) => reply.getHeader(name),
      responseTime: now,
      // From the moment the request reached Fastify: the time the answer took to come back.
      responseDelayMs: reply.elapsedTime
    }, { enabled: route.heuristicMaxTtl !== undefined, maxTtl: route.heuristicMaxTtl ?? 0 })
  }
  let ttl = route.ttl
  const cacheControl = reply.getHeader('cache-control')
  if (cacheControl !== undefined) {
    // The grammar origin mode reads (directives.ts); only what the directives mean differs by mode.
    const directives = parseCacheControl(cacheControl)
    if (directives.has('no-store')) return 'no-store'
    // private="field" included: storing the rest safely would take a field-by-field strip.
    if (directives.has('private')) return 'private'
    if (directives.has('no-cache')) return 'no-cache'
    const limit = sharedMaxAge(directives)
    // RFC 9111 section 4.2.1: invalid freshness is stale, never the route's whole TTL.
    if (limit === null) return 'invalid-freshness'
    if (limit !== undefined && limit < ttl) ttl = limit
    if (ttl <= 0) return 'max-age'
  }
  return ttl
}

/** Headers that describe one connection, or that the cache itself sets, are not stored. */
const NOT_STORED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te',
  'trailer', 'transfer-encoding', 'upgrade', 'set-cookie', 'content-length', 'x-cache', 'age', 'date'
])
/** In origin mode `date` is stored and passed through as received (RFC 9111 section 4). */
const NOT_STORED_ORIGIN = new Set([...NOT_STORED].filter((name) => name !== 'date'))

export function storedHeaders (headers: Record<string, HeaderValue | number | undefined>, origin = false): Record<string, HeaderValue> {
  const named = new Set(listMembers(headers.connection, false).map((name) => name.toLowerCase()))
  const notStored = origin ? NOT_STORED_ORIGIN : NOT_STORED
  const out: Record<string, HeaderValue> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || notStored.has(name) || named.has(name)) continue
    out[name] = typeof value === 'number' ? String(value) : value
  }
  return out
}

/** Headers a 304 carries (RFC 9110, section 15.4.5). */
export const NOT_MODIFIED_HEADERS = ['cache-control', 'content-location', 'etag', 'expires', 'vary', 'last-modified']

/** `If-None-Match` against an entry's etag, with the weak comparison RFC 9110 asks for. */
export function etagMatches (ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  if (ifNoneMatch.trim() === '*') return true
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag
  for (const candidate of ifNoneMatch.split(',')) {
    const tag = candidate.trim()
    if ((tag.startsWith('W/') ? tag.slice(2) : tag) === opaque) return true
  }
  return false
}

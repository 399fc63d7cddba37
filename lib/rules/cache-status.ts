import { serializeItem, serializeList, Token, type Parameters } from 'structured-headers'
import type { FieldValue } from './lists.js'

// The Cache-Status response header (RFC 9211): a Structured Field List, one member per cache the
// response went through, the origin's first and the one nearest the client last. Each member is the
// cache's name with parameters saying what it did with this request.

/** The default name of the plugin's member: a token, so that it is sent bare. */
export const DEFAULT_CACHE_STATUS_NAME = 'fastify-response-cache'

/**
 * Why the request went forward (RFC 9211 section 2.2): `bypass`, the cache was told (or chose) not to
 * use what it holds; `method`, the method (an override of it) asks for it; `uri-miss`, nothing stored
 * under the key; `vary-miss`, something stored, but not this request's variant; `request`, the client
 * asked for a fresh answer (or a refresh of the cache's own); `stale`, what was stored had to be
 * revalidated (or, past its window, answered again).
 */
export type Forward = 'bypass' | 'method' | 'uri-miss' | 'vary-miss' | 'request' | 'stale'

/** What the cache did with one request, each parameter of RFC 9211 section 2 that applies. */
export interface CacheStatusFields {
  /** Answered from the cache without going forward. */
  hit?: boolean
  fwd?: Forward
  /** The status the handler (or the origin behind it) answered the forwarded request with. */
  fwdStatus?: number
  /** Seconds of freshness left, negative once stale. */
  ttl?: number
  /** The forwarded response was stored. */
  stored?: boolean
  /** The request was answered by another request's forward (coalescing). */
  collapsed?: boolean
  /** Why the response was not stored, or the request bypassed the cache. */
  detail?: string
}

const TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/
const PRINTABLE = /^[\x20-\x7e]*$/

/** A name or detail as a bare Token when it is one, else as a String. */
const tokenOrString = (value: string): Token | string => TOKEN.test(value) ? new Token(value) : value

/** Why a name cannot be a Cache-Status member's, or undefined when it can. */
export function cacheStatusNameProblem (name: string): string | undefined {
  if (name.length === 0 || name.length > 256 || !PRINTABLE.test(name)) return 'a string of 1 to 256 printable ASCII characters'
  return undefined
}

/** The member's name as it is sent (a Token, or a quoted String): worked out once, at ready(). */
export function serializeCacheStatusName (name: string): string {
  return serializeItem(tokenOrString(name))
}

/**
 * One member of the header, by structured-headers' List serializer, parameters in the order of RFC
 * 9211. `name` is what serializeCacheStatusName made of it. A detail that is not printable ASCII is
 * left out (structured-headers would refuse it).
 */
export function cacheStatusMember (name: string, fields: CacheStatusFields): string {
  const params: Parameters = new Map()
  if (fields.hit === true) params.set('hit', true)
  if (fields.fwd !== undefined) params.set('fwd', new Token(fields.fwd))
  if (fields.fwdStatus !== undefined) params.set('fwd-status', fields.fwdStatus)
  if (fields.ttl !== undefined) params.set('ttl', fields.ttl)
  if (fields.stored === true) params.set('stored', true)
  if (fields.collapsed === true) params.set('collapsed', true)
  if (fields.detail !== undefined && PRINTABLE.test(fields.detail)) params.set('detail', tokenOrString(fields.detail))
  // The serialized name is a Token or a String item already: the list is built around a placeholder.
  return name + serializeList([[new Token('x'), params]]).slice(1)
}

/**
 * A hit's member: what cacheStatusMember makes of `{ hit: true, ttl }`, built as one string (the hot
 * path of a memory hit allocates nothing else for it). `ttl` is a whole number.
 */
export function hitMember (name: string, ttl: number): string {
  return name + ';hit;ttl=' + ttl
}

/** The header with the cache's own member last, after those of the caches before it (the origin's). */
export function appendCacheStatus (upstream: FieldValue | undefined, member: string): string {
  if (upstream === undefined || upstream === '') return member
  return (Array.isArray(upstream) ? upstream.join(', ') : String(upstream)) + ', ' + member
}

import type { NotStoredReason } from './not-stored.js'
import { deltaSeconds, type Directives, MAX_DELTA_SECONDS, parseCacheControl, sharedMaxAge } from './directives.js'
import { fieldText, type FieldValue, listMembers } from './lists.js'
import { parseDictionary, type SfItem } from './structured-field.js'
import { parseHttpDate } from './dates.js'

/** Statuses whose responses may be given a heuristic freshness (RFC 9110 section 15.1). */
export const HEURISTICALLY_CACHEABLE = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])
/** The share of its `Last-Modified` age a response stays fresh by heuristic (RFC 9111 section 4.2.2). */
export const HEURISTIC_FRACTION = 0.1

/** What origin mode needs to know of a response, read from its headers by `getHeader`. */
export interface OriginResponse {
  status: number
  header: (name: string) => FieldValue
  /** When the response reached the cache (RFC 9111 `response_time`), ms since the epoch. */
  responseTime: number
  /** How long the request took from the moment it reached Fastify (`response_time - request_time`), ms. */
  responseDelayMs: number
}

export interface HeuristicOptions {
  enabled: boolean
  /** The longest heuristic freshness, in seconds. */
  maxTtl: number
}

/** How long an origin-mode response stays fresh once stored, and how it may be served. */
export interface OriginFreshness {
  /** Seconds it is fresh from now: its freshness lifetime less the age it arrived with. */
  ttl: number
  /** Milliseconds it was already old when it arrived (RFC 9111 section 4.2.3, corrected_initial_age). */
  initialAgeMs: number
  /** must-revalidate, proxy-revalidate, s-maxage or no-cache: never served stale. */
  noStale: boolean
  /** no-cache: stored only to be revalidated before every use (`ttl` is then 0). */
  revalidate: boolean
  /** The response's own `ETag` or `Last-Modified`: a stale copy can be revalidated. */
  validated: boolean
  /** The response's own `stale-while-revalidate` and `stale-if-error` (RFC 5861), in seconds, when given. */
  staleWhileRevalidate?: number
  staleIfError?: number
}

/** Directives whose argument, in CDN-Cache-Control, must be a non-negative Integer. */
const SECONDS_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error'])
/** Directives that take no argument, so a Boolean true (or false, meaning absent). */
const FLAG_DIRECTIVES = new Set(['no-store', 'must-revalidate', 'proxy-revalidate', 'public', 'immutable', 'must-understand', 'no-transform'])

/**
 * `CDN-Cache-Control` as directives (RFC 9213), or undefined when it is absent or invalid, in which case
 * `Cache-Control` applies. Invalid: not a Structured Field Dictionary (section 2.1), or a known directive
 * of the wrong type (`max-age="60"`, `max-age=-1`, `no-store=1`).
 */
export function parseCdnCacheControl (value: FieldValue): Directives | undefined {
  const members = parseDictionary(fieldText(value))
  if (members === undefined) return undefined
  const directives: Directives = new Map()
  for (const [name, item] of members) {
    const argument = cdnArgument(name, item)
    if (argument === null) return undefined
    if (argument !== false) directives.set(name, argument)
  }
  return directives
}

/** A member as a directive argument; false for a flag set to false; null for the wrong type. */
function cdnArgument (name: string, item: SfItem): string | true | false | null {
  if (SECONDS_DIRECTIVES.has(name)) return item.type === 'integer' && item.value >= 0 ? String(item.value) : null
  if (FLAG_DIRECTIVES.has(name)) return item.type === 'boolean' ? item.value : null
  // private and no-cache: alone, or with a list of field names as a String.
  if (name === 'private' || name === 'no-cache') return item.type === 'boolean' ? item.value : item.type === 'string' ? item.value : null
  return true
}

/** The first value of a field that may only appear once (RFC 9111 section 4.2.1: "the first occurrence"). */
function firstValue (value: FieldValue): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value[0] : String(value)
}

/**
 * The `Age` received, in seconds: the largest of its values that are delta-seconds (a list or several
 * lines could only come from caches in between; the largest is the safe reading); 0 when none is.
 */
export function receivedAge (value: FieldValue): number {
  let age = 0
  for (const member of listMembers(value, false)) {
    if (/^[0-9]+$/.test(member)) age = Math.max(age, Math.min(Number(member), MAX_DELTA_SECONDS))
  }
  return age
}

/**
 * RFC 9111 sections 3, 4.2.1 to 4.2.3 and RFC 9213, for a shared cache: the response's freshness less
 * the age it arrived with, or why it is not stored: `no-store`, `private`, `no-cache`, `stale`
 * (its freshness is already spent), `invalid-freshness` (a malformed `s-maxage` or `max-age`, an
 * invalid `Expires`: stale by RFC 9111 sections 4.2.1 and 5.3), `no-freshness` (no explicit freshness,
 * and no heuristic freshness allowed).
 */
export function originFreshness (response: OriginResponse, heuristic: HeuristicOptions): OriginFreshness | NotStoredReason {
  const directives = responseDirectives(response.header)
  if (directives.has('no-store')) return 'no-store'
  // private="field" too: storing the rest safely would take a field-by-field strip.
  if (directives.has('private')) return 'private'
  const validated = hasValidator(response)
  // no-cache="field" too, as if unqualified. Without a validator, a copy could never be revalidated.
  if (directives.has('no-cache')) {
    if (!validated) return 'no-cache'
    return { ttl: 0, initialAgeMs: initialAgeMs(response), noStale: true, revalidate: true, validated, ...staleWindows(directives) }
  }

  const { responseTime } = response
  const date = dateOf(response)
  const ageMs = initialAgeMs(response)

  let lifetimeMs: number
  const maxAge = sharedMaxAge(directives)
  const expires = response.header('expires')
  if (maxAge === null) return 'invalid-freshness'
  if (maxAge !== undefined) lifetimeMs = maxAge * 1000
  else if (expires !== undefined) {
    const expiresAt = parseHttpDate(firstValue(expires), responseTime)
    if (expiresAt === undefined) return 'invalid-freshness'
    lifetimeMs = expiresAt - date
  } else {
    const heuristicMs = heuristicLifetimeMs(response, directives, date, heuristic)
    if (heuristicMs === undefined) return 'no-freshness'
    lifetimeMs = heuristicMs
  }
  const freshMs = lifetimeMs - ageMs
  if (freshMs <= 0) return 'stale'
  return {
    ttl: freshMs / 1000,
    initialAgeMs: ageMs,
    noStale: directives.has('s-maxage') || directives.has('must-revalidate') || directives.has('proxy-revalidate'),
    revalidate: false,
    validated,
    ...staleWindows(directives)
  }
}

/** The directives that rule a response: its valid `CDN-Cache-Control`, else its `Cache-Control`. */
export function responseDirectives (header: OriginResponse['header']): Directives {
  return parseCdnCacheControl(header('cdn-cache-control')) ?? parseCacheControl(header('cache-control'))
}

/** RFC 5861's windows as the response gives them; a malformed one counts as absent. */
export function staleWindows (directives: Directives): { staleWhileRevalidate?: number, staleIfError?: number } {
  const windows: { staleWhileRevalidate?: number, staleIfError?: number } = {}
  const whileRevalidate = deltaSeconds(directives, 'stale-while-revalidate')
  const ifError = deltaSeconds(directives, 'stale-if-error')
  if (typeof whileRevalidate === 'number') windows.staleWhileRevalidate = whileRevalidate
  if (typeof ifError === 'number') windows.staleIfError = ifError
  return windows
}

/**
 * A validator the origin gave (RFC 9110 section 8.8), which a conditional request can send back: its
 * `ETag` (not one the plugin made, see isSyntheticEtag) or a valid `Last-Modified`.
 */
function hasValidator (response: OriginResponse): boolean {
  const etag = response.header('etag')
  if (typeof etag === 'string' && !isSyntheticEtag(etag)) return true
  return parseHttpDate(firstValue(response.header('last-modified')), response.responseTime) !== undefined
}

/** The form of the `etag` the plugin gives, in origin mode, a response that came without one. */
const SYNTHETIC_ETAG = /^"rc-[A-Za-z0-9_-]{27}"$/

/** True for an etag the plugin made: it means nothing to the origin and is never sent to it. */
export function isSyntheticEtag (etag: string): boolean {
  return SYNTHETIC_ETAG.test(etag)
}

function dateOf (response: OriginResponse): number {
  return parseHttpDate(firstValue(response.header('date')), response.responseTime) ?? response.responseTime
}

/** RFC 9111 section 4.2.3's corrected_initial_age, in milliseconds. */
function initialAgeMs (response: OriginResponse): number {
  const apparentAgeMs = Math.max(0, response.responseTime - dateOf(response))
  const correctedAgeMs = receivedAge(response.header('age')) * 1000 + response.responseDelayMs
  return Math.max(apparentAgeMs, correctedAgeMs)
}

/**
 * A tenth of the time since `Last-Modified`, capped, for a status that is heuristically cacheable
 * or a response marked `public` (RFC 9111 sections 3 and 4.2.2); undefined when none may be given.
 */
function heuristicLifetimeMs (response: OriginResponse, directives: Directives, date: number, heuristic: HeuristicOptions): number | undefined {
  if (!heuristic.enabled) return undefined
  if (!HEURISTICALLY_CACHEABLE.has(response.status) && !directives.has('public')) return undefined
  const lastModified = parseHttpDate(firstValue(response.header('last-modified')), response.responseTime)
  if (lastModified === undefined || lastModified >= date) return undefined
  return Math.min((date - lastModified) * HEURISTIC_FRACTION, heuristic.maxTtl * 1000)
}

import { deltaSeconds, type Directives, fieldText, type FieldValue, MAX_DELTA_SECONDS, parseCacheControl } from './directives.js'
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
  /** must-revalidate, proxy-revalidate or s-maxage: never served stale. */
  noStale: boolean
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
  const text = fieldText(value)
  if (text === undefined) return 0
  let age = 0
  for (const part of text.split(',')) {
    const trimmed = part.trim()
    if (/^[0-9]+$/.test(trimmed)) age = Math.max(age, Math.min(Number(trimmed), MAX_DELTA_SECONDS))
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
export function originFreshness (response: OriginResponse, heuristic: HeuristicOptions): OriginFreshness | string {
  const directives = parseCdnCacheControl(response.header('cdn-cache-control')) ?? parseCacheControl(response.header('cache-control'))
  if (directives.has('no-store')) return 'no-store'
  // private="field" too: storing the rest safely would take a field-by-field strip.
  if (directives.has('private')) return 'private'
  // Stored only once revalidation exists: until then such an entry could never be used.
  if (directives.has('no-cache')) return 'no-cache'

  const { responseTime } = response
  const date = parseHttpDate(firstValue(response.header('date')), responseTime) ?? responseTime
  const apparentAgeMs = Math.max(0, responseTime - date)
  const correctedAgeMs = receivedAge(response.header('age')) * 1000 + response.responseDelayMs
  const initialAgeMs = Math.max(apparentAgeMs, correctedAgeMs)

  let lifetimeMs: number
  const sharedMaxAge = deltaSeconds(directives, 's-maxage')
  const maxAge = sharedMaxAge === undefined ? deltaSeconds(directives, 'max-age') : sharedMaxAge
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
  const freshMs = lifetimeMs - initialAgeMs
  if (freshMs <= 0) return 'stale'
  return {
    ttl: freshMs / 1000,
    initialAgeMs,
    noStale: sharedMaxAge !== undefined || directives.has('must-revalidate') || directives.has('proxy-revalidate')
  }
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

import type { NotStoredReason } from './not-stored.js'
import type { IncomingHttpHeaders } from 'node:http'
import type { CacheEntry, HeaderValue } from '../entry.js'
import { isSyntheticEtag, originFreshness, responseDirectives, staleWindows, type OriginFreshness } from './freshness.js'
import { listMembers } from './lists.js'
import { storedHeaders } from './storability.js'
import type { ResponseView, RouteRules } from './views.js'

/** The client's own conditional headers, put back once the handler has run with the cache's. */
export interface ClientConditions {
  'if-none-match': string | undefined
  'if-modified-since': string | undefined
}

/**
 * Header fields a 304 or a HEAD answer does not update in the stored response: those never stored,
 * and those that describe the stored body's bytes (RFC 9111 section 3.2 excepts `content-length`; a
 * `content-type` or `content-encoding` on a 304 describes no body, and a handler's framework may add
 * one to any empty answer).
 */
const NOT_UPDATED = new Set(['content-length', 'content-type', 'content-encoding', 'content-range', 'x-cache'])

/** An origin-mode entry's validators: the origin's `etag` (never one the plugin made) and `last-modified`. */
export function validatorsOf (entry: CacheEntry): { etag?: string, lastModified?: string } {
  if (entry.initialAgeMs === undefined) return {}
  const validators: { etag?: string, lastModified?: string } = {}
  if (!isSyntheticEtag(entry.etag)) validators.etag = entry.etag
  const lastModified = entry.headers['last-modified']
  if (typeof lastModified === 'string') validators.lastModified = lastModified
  return validators
}

/** True for an origin-mode entry that a conditional request can revalidate. */
export function canRevalidate (entry: CacheEntry): boolean {
  const { etag, lastModified } = validatorsOf(entry)
  return etag !== undefined || lastModified !== undefined
}

/**
 * The seconds an entry may be served stale while it is refreshed, and when the handler fails: the
 * route's windows, or in origin mode the response's own `stale-while-revalidate` / `stale-if-error`
 * where it gives them (RFC 5861); none for an entry that forbids stale serving.
 */
export function staleWindowsOf (route: RouteRules, entry: CacheEntry): { whileRevalidate: number, ifError: number } {
  if (entry.noStale === true) return { whileRevalidate: 0, ifError: 0 }
  if (entry.initialAgeMs === undefined) return { whileRevalidate: route.staleWhileRevalidate, ifError: route.staleIfError }
  const own = staleWindows(responseDirectives((name) => entry.headers[name]))
  return {
    whileRevalidate: own.staleWhileRevalidate ?? route.staleWhileRevalidate,
    ifError: own.staleIfError ?? route.staleIfError
  }
}

/**
 * True when a fresh entry `ageMs` after it was stored is due an eager refresh: its age is `fraction` or
 * more of its freshness lifetime. Both count the age it arrived with (origin mode), so that a response
 * of `max-age=100` that came with `age: 70` is refreshed from an age of 80 at `fraction` 0.8 (10 s after
 * it was stored), as its own headers mean.
 */
export function eagerRefreshDue (entry: CacheEntry, fraction: number, ageMs: number, freshMs: number): boolean {
  const arrivedAged = entry.initialAgeMs ?? 0
  return ageMs + arrivedAged >= fraction * (freshMs + arrivedAged)
}

/** The seconds the store keeps an origin-mode response: its freshness, then its stale and revalidation windows. */
export function originStoreTtl (route: RouteRules, verdict: OriginFreshness): number {
  const keep = verdict.validated ? route.keepForRevalidation : 0
  if (verdict.noStale) return verdict.ttl + keep
  const whileRevalidate = verdict.staleWhileRevalidate ?? route.staleWhileRevalidate
  const ifError = verdict.staleIfError ?? route.staleIfError
  return verdict.ttl + Math.max(whileRevalidate, ifError, keep)
}

/**
 * Before the handler of an origin-mode route: the plugin's own etags are taken out of `If-None-Match`
 * (the origin never made them), and a request revalidating `entry` carries its validators instead of
 * the client's (RFC 9111 section 4.3.1). Answers the client's headers when they were changed.
 */
export function conditionalHeaders (headers: IncomingHttpHeaders, entry: CacheEntry | undefined): ClientConditions | undefined {
  const ifNoneMatch = headers['if-none-match']
  const client: ClientConditions = { 'if-none-match': ifNoneMatch, 'if-modified-since': headers['if-modified-since'] }
  if (entry !== undefined) {
    const { etag, lastModified } = validatorsOf(entry)
    setOrDelete(headers, 'if-none-match', etag)
    setOrDelete(headers, 'if-modified-since', lastModified)
    return client
  }
  if (ifNoneMatch === undefined) return undefined
  const tags = listMembers(ifNoneMatch, false)
  const kept = tags.filter((tag) => !isSyntheticEtag(tag))
  if (kept.length === tags.length) return undefined
  setOrDelete(headers, 'if-none-match', kept.length === 0 ? undefined : kept.join(', '))
  return client
}

/** Puts the client's own conditional headers back, for the answer the cache makes from its entry. */
export function restoreConditions (headers: IncomingHttpHeaders, client: ClientConditions): void {
  setOrDelete(headers, 'if-none-match', client['if-none-match'])
  setOrDelete(headers, 'if-modified-since', client['if-modified-since'])
}

function setOrDelete (headers: IncomingHttpHeaders, name: 'if-none-match' | 'if-modified-since', value: string | undefined): void {
  if (value === undefined) delete headers[name]
  else headers[name] = value
}

/**
 * The stored response updated by a 304 or a HEAD answer (RFC 9111 sections 3.2 and 4.3.4): each of
 * its header fields replaces the stored one, except those in NOT_UPDATED, and the freshness is worked
 * out again from the result, with the answer's own `Age` and `Date`. Each key holds one response (one
 * per variant), which is the one the conditional request named: it is the one selected. Answers the
 * updated entry with its verdict, or the updated entry alone and why it may not be stored again.
 * `answered`: the answer's headers, less those of the request alone (rules/per-request.ts).
 */
export function updatedEntry (entry: CacheEntry, route: RouteRules, reply: ResponseView, now: number, answered = reply.getHeaders()): { entry: CacheEntry, verdict: OriginFreshness | NotStoredReason } {
  const headers: Record<string, HeaderValue> = { ...entry.headers }
  const received = storedHeaders(answered, true)
  for (const name in received) {
    if (!NOT_UPDATED.has(name)) headers[name] = received[name]
  }
  // The stored `date` is the old response's: an answer without one was made now (RFC 9110 section 6.6.1).
  if (received.date === undefined) headers.date = new Date(now).toUTCString()
  const verdict = originFreshness({
    status: entry.status,
    header: (name) => name === 'age' ? reply.getHeader('age') : headers[name],
    responseTime: now,
    responseDelayMs: reply.elapsedTime
  }, { enabled: route.heuristicMaxTtl !== undefined, maxTtl: route.heuristicMaxTtl ?? 0 })
  const etag = headers.etag
  const updated: CacheEntry = {
    status: entry.status,
    headers,
    body: entry.body,
    storedAt: now,
    ttl: entry.ttl,
    etag: typeof etag === 'string' ? etag : entry.etag
  }
  if (entry.request !== undefined) updated.request = entry.request
  // The same body: its encodings still hold.
  if (entry.encoded !== undefined) updated.encoded = entry.encoded
  if (typeof verdict === 'object') applyOriginVerdict(updated, route, verdict)
  return { entry: updated, verdict }
}

/** Sets an origin-mode entry's freshness fields from its verdict; answers the seconds the store keeps it. */
export function applyOriginVerdict (entry: CacheEntry, route: RouteRules, verdict: OriginFreshness): number {
  const storeTtl = originStoreTtl(route, verdict)
  // An entry revalidated before every use is never fresh: its ttl is how long it is kept.
  entry.ttl = verdict.revalidate ? storeTtl : verdict.ttl
  entry.initialAgeMs = verdict.initialAgeMs
  if (verdict.noStale) entry.noStale = true
  else delete entry.noStale
  if (verdict.revalidate) entry.revalidate = true
  else delete entry.revalidate
  return storeTtl
}

/**
 * RFC 9111 section 4.3.5: a 200 answer to HEAD may update the stored GET response when their
 * validators agree (each validator the answer gives matches, at least one is given, and a
 * `content-length` it gives is the stored body's); otherwise the stored response is out of date.
 */
export function headAgrees (entry: CacheEntry, reply: ResponseView): boolean {
  const { etag, lastModified } = validatorsOf(entry)
  const headEtag = reply.getHeader('etag')
  const headLastModified = reply.getHeader('last-modified')
  const length = reply.getHeader('content-length')
  if (headEtag === undefined && headLastModified === undefined) return false
  if (headEtag !== undefined && headEtag !== etag) return false
  if (headLastModified !== undefined && headLastModified !== lastModified) return false
  return length === undefined || Number(length) === entry.body.length
}

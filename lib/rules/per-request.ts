import type { FieldValue } from './lists.js'

// Per-request headers: a reply carries headers of the one request it answers (a rate-limit counter,
// a request id, a CORS or security header computed for it), which an entry must not keep for others.
// Those set before the handler ran and left as they were, and those a route names, are the request's.

/**
 * Headers that describe the stored response itself (its body, validators, freshness, variants) or
 * that the cache sets: always the response's, whoever set them, and never a route's per-request header.
 */
export const RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'etag', 'last-modified', 'vary', 'date', 'age', 'x-cache', 'cache-status', 'cache-control', 'cdn-cache-control', 'expires',
  'content-type', 'content-encoding', 'content-length', 'content-range'
])

/**
 * A Content-Security-Policy with a nonce belongs to the body that carries the nonce (@fastify/helmet's
 * `enableCSPNonces`): stored with it, so that a hit's header allows the scripts of the stored page.
 */
function boundToBody (name: string, value: FieldValue): boolean {
  return (name === 'content-security-policy' || name === 'content-security-policy-report-only') &&
    String(value).includes("'nonce-")
}

/**
 * Whether a header on the reply is the request's own: a name the route marks per-request, or one the
 * request's hooks had set before the handler ran (`before`) that still holds the value they set.
 */
export function isRequestHeader (name: string, value: FieldValue, before: Readonly<Record<string, FieldValue>> | undefined, perRequest: readonly string[]): boolean {
  if (perRequest.includes(name)) return true
  // Compared by value: a header the handler changed is its answer, stored as the miss sent it. (A
  // reply's values are strings, numbers and arrays: never what `before` inherits.)
  return before !== undefined && value !== undefined && before[name] === value && !RESPONSE_HEADERS.has(name) && !boundToBody(name, value)
}

/** The reply's headers (`headers`, a copy) less the request's own: what an entry may keep. Changes and answers `headers`. */
export function withoutRequestHeaders (headers: Record<string, FieldValue>, before: Readonly<Record<string, FieldValue>> | undefined, perRequest: readonly string[]): Record<string, FieldValue> {
  for (const name in headers) {
    if (isRequestHeader(name, headers[name], before, perRequest)) delete headers[name]
  }
  return headers
}

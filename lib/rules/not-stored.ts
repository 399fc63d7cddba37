import type { TagsProblem } from '../tags.js'

/**
 * Why a response is not stored: the `reason` of the `response cache: not stored` debug line (listed
 * in docs/API.md, "Never stored"), and what a refresh or warm-up request reports.
 */
export type NotStoredReason =
  // What the response is (storability.ts).
  | 'status' | 'status-request-error' | 'set-cookie' | 'too-large' | 'vary-star'
  | 'no-store' | 'private' | 'no-cache' | 'max-age' | 'request-no-store'
  // Its freshness in origin mode (freshness.ts).
  | 'invalid-freshness' | 'no-freshness' | 'stale'
  // The variant it would be (variants.ts).
  | 'vary-too-many' | 'vary-invalid' | 'vary-credentials' | 'reserved-header' | 'vary-variants'
  // The handler said so: reply.cacheTtl(0).
  | 'cache-ttl-0'
  // Its tags (tags.ts).
  | TagsProblem
  // A web stream; a Node stream that failed or whose client went away (http/stream-store.ts); a rule
  // that threw on the response's headers.
  | 'stream' | 'stream-error' | 'stream-closed' | 'error'

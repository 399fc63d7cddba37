import type { NotStoredReason } from './not-stored.js'
import { REQUEST_ERROR_STATUSES } from './storability.js'
import { VARY_MAX_NAMES } from './variants.js'

// Reasons a route's answers are not stored that come from how the route is set up, not from one
// request: said once per route at warn, with the fix (docs/API.md, "Never stored").

/** Set by the app's own handler in the default mode; in origin mode they are the origin's to say. */
const DEFAULT_MODE_FIXES: Partial<Record<NotStoredReason, string>> = {
  'set-cookie': 'remove set-cookie from the answer, or drop cache from the route',
  'no-store': 'remove no-store from its Cache-Control, or drop cache from the route',
  private: 'remove private from its Cache-Control, or drop cache from the route',
  'no-cache': 'remove no-cache from its Cache-Control (the default mode never stores it), or drop cache from the route',
  'vary-star': 'remove Vary: * (name the request headers the answer depends on instead)',
  'vary-invalid': 'name only header names in Vary'
}

/**
 * What to change so that answers like this one are stored; undefined for a reason that is the
 * request's (credentials, directives, preconditions) or the normal course of things (a response's
 * own max-age or freshness, a resource with all its variants, a stream that failed).
 */
export function setupFix (reason: NotStoredReason, status: number, origin: boolean, maxEntryBytes: number): string | undefined {
  switch (reason) {
    case 'status':
      // 5xx and 304 may not be listed; the request errors are this request's own doing.
      return status >= 200 && status < 500 && status !== 304 && !REQUEST_ERROR_STATUSES.has(status)
        ? `add ${status} to the route's statusCodes to store these answers`
        : undefined
    case 'too-large':
      return `raise maxEntryBytes (${maxEntryBytes} bytes, body and headers) or lower the response size`
    case 'stream':
      return 'send a Node stream (Readable.fromWeb) or a Buffer instead of a web stream'
    case 'vary-too-many':
      return `name at most ${VARY_MAX_NAMES} request headers in Vary beyond the route's vary, or add some of them to the route's vary`
    default:
      return origin ? undefined : DEFAULT_MODE_FIXES[reason]
  }
}

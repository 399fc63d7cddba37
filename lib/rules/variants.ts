import type { NotStoredReason } from './not-stored.js'
import { type CacheEntry, type HeaderValue, VARIANTS_HEADER } from '../entry.js'
import { sha256, VARIANT_MARK } from '../key.js'
import { listMembers } from './lists.js'
import type { RequestView, RouteRules } from './views.js'

// Vary from the response, in either mode (RFC 9111 section 4.1, secondary keys).
//
// A resource whose response varies on request headers the route's key does not hold keeps, under its
// own key (the primary key), a marker: an entry whose headers hold only VARIANTS_HEADER, naming those
// headers (lower case, once each, sorted), and whose body lists the variants stored. Each variant is
// an ordinary entry under `primary key | digest`, the digest being the SHA-256 of the names and this
// request's values of them. A lookup that finds a marker works out the request's own variant key and
// reads that; a resource that does not vary stays one plain entry under its key, with no extra read.
// What a variant is and how it is named is here; storing one is http/variant-store.ts.

export { VARIANTS_HEADER }
/** Request headers one response may vary on beyond the route's `vary`; more is not stored. */
export const VARY_MAX_NAMES = 8
/** Live variants one resource may have; a new one past them is not stored until one expires. */
export const VARY_MAX_VARIANTS = 32
/** Characters of a variant's digest the marker lists it by: enough to count, not to look up. */
const LISTED_DIGEST_LENGTH = 16

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/**
 * Fields whose value is a comma-separated list of elements with parameters: whitespace around `,` and
 * `;` and empty elements carry no meaning there (RFC 9110 sections 5.6.1, 5.6.6, 12.5).
 */
const LIST_FIELDS = new Set(['accept', 'accept-charset', 'accept-encoding', 'accept-language'])

/** One variant of a resource: the key it is stored under, and what selected it. */
export interface Variant {
  /** The resource's own key, where its marker is. */
  primary: string
  /** The request headers it was selected by, beyond the route's `vary`: sorted, lower case. */
  names: readonly string[]
  key: string
}

export const isMarker = (entry: CacheEntry): boolean => entry.headers[VARIANTS_HEADER] !== undefined

/**
 * The request headers a `Vary` field names that the key does not hold: sorted, lower case, once each;
 * or why the response may not be stored. `*` is refused before (storability.ts, `vary-star`).
 */
export function varyNames (vary: HeaderValue | number | undefined, keyed: readonly string[]): string[] | NotStoredReason {
  const names = new Set<string>()
  for (const member of listMembers(vary, false)) {
    const name = member.toLowerCase()
    if (keyed.includes(name)) continue
    if (!TOKEN.test(name)) return 'vary-invalid'
    names.add(name)
  }
  if (names.size > VARY_MAX_NAMES) return 'vary-too-many'
  return [...names].sort()
}

/**
 * Whitespace around delimiters and empty elements dropped, outside quoted strings: two values that
 * differ only there are the same field (RFC 9111 section 4.1), and anything else is compared as sent.
 */
export function listValue (value: string): string {
  return listMembers(value, true).map(parameters).join(',')
}

/** One list element with the whitespace around its `;` dropped, outside quoted strings. */
function parameters (element: string): string {
  let out = ''
  let quoted = false
  for (let i = 0; i < element.length; i++) {
    const ch = element[i]
    if (quoted) {
      out += ch
      if (ch === '\\' && i + 1 < element.length) out += element[++i]
      else if (ch === '"') quoted = false
    } else if (ch === ';') {
      out = out.replace(/[ \t]+$/, '') + ';'
      while (element[i + 1] === ' ' || element[i + 1] === '\t') i++
    } else {
      if (ch === '"') quoted = true
      out += ch
    }
  }
  return out
}

/**
 * A request header's value as it selects a variant: its field lines combined (Node joins them), list
 * whitespace normalised; null when absent, which matches only absent (RFC 9111 section 4.1), so an
 * empty value is a value of its own.
 */
function selecting (name: string, value: string | string[] | undefined): string | null {
  if (value === undefined) return null
  const joined = typeof value === 'string' ? value : value.join(', ')
  return LIST_FIELDS.has(name) ? listValue(joined) : joined
}

/** The key of the variant of `primary` that `request` selects, for these header names. */
export function variantKey (primary: string, names: readonly string[], request: RequestView): string {
  const values = names.map((name) => selecting(name, request.headers[name]))
  return primary + VARIANT_MARK + sha256(JSON.stringify([names, values]))
}

/** The names a marker lists: the plugin's own format (tokens and single commas, as it writes them), not an HTTP list. */
export function markerNames (marker: CacheEntry): string[] | undefined {
  const value = marker.headers[VARIANTS_HEADER]
  if (typeof value !== 'string') return undefined
  const names = value.split(',')
  return names.length <= VARY_MAX_NAMES && names.every((name) => TOKEN.test(name)) ? names : undefined
}

/**
 * The variant a response is (its headers read through `header`), when it varies on
 * request headers the key does not hold; undefined when it does not (a plain entry); or why it may
 * not be stored.
 */
export function responseVariant (route: RouteRules, request: RequestView, header: (name: string) => HeaderValue | number | undefined, primary: string): Variant | NotStoredReason | undefined {
  // The marker's header name cannot come from an HTTP response; it must not come from a handler either.
  if (header(VARIANTS_HEADER) !== undefined) return 'reserved-header'
  const names = varyNames(header('vary'), route.vary)
  if (typeof names === 'string') return names
  if (names.length === 0) return undefined
  for (const name of names) {
    // A request with credentials reaches the handler only where the route says how to share its
    // answer (`vary`, `ignoreCookies`): one that varies on them is kept for requests without them.
    if ((name === 'authorization' || name === 'cookie') && request.headers[name] !== undefined) return 'vary-credentials'
  }
  return { primary, names, key: variantKey(primary, names, request) }
}

type Listed = [digest: string, expiresAt: number]

/** The variants a marker lists that have not expired; none for anything unreadable. */
function liveVariants (marker: CacheEntry, names: readonly string[], now: number): Listed[] {
  if (markerNames(marker)?.join(',') !== names.join(',')) return []
  let listed: unknown
  try {
    listed = JSON.parse(marker.body.toString())
  } catch {
    return []
  }
  if (!Array.isArray(listed)) return []
  return listed.filter((item): item is Listed => Array.isArray(item) && typeof item[0] === 'string' && typeof item[1] === 'number' && item[1] > now)
}

function markerEntry (names: readonly string[], listed: Listed[], now: number, until: number): CacheEntry {
  return {
    status: 200,
    headers: { [VARIANTS_HEADER]: names.join(',') },
    body: Buffer.from(JSON.stringify(listed)),
    storedAt: now,
    ttl: (until - now) / 1000,
    etag: ''
  }
}

/**
 * The marker that lists `variant`, kept `ttlSeconds` from `now`, given the marker `found` under its
 * resource's key: the live variants it lists, this one added or renewed; the marker lives as long as
 * the longest-lived variant it lists. Undefined when the resource has VARY_MAX_VARIANTS live variants
 * already and this is not one of them.
 */
export function markerListing (found: CacheEntry | undefined, variant: Variant, ttlSeconds: number, now: number): { marker: CacheEntry, ttl: number } | undefined {
  const listed = found !== undefined && isMarker(found) ? liveVariants(found, variant.names, now) : []
  const digest = variant.key.slice(-LISTED_DIGEST_LENGTH)
  const expiresAt = now + ttlSeconds * 1000
  const at = listed.findIndex(([listedDigest]) => listedDigest === digest)
  if (at !== -1) listed[at] = [digest, expiresAt]
  else if (listed.length >= VARY_MAX_VARIANTS) return undefined
  else listed.push([digest, expiresAt])
  const until = Math.max(...listed.map(([, listedUntil]) => listedUntil))
  return { marker: markerEntry(variant.names, listed, now, until), ttl: (until - now) / 1000 }
}

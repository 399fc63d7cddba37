import { freshMs } from '../entry.js'
import { FST_RESPONSE_CACHE_INVALID_ARGUMENT } from '../errors.js'
import { decodeSegment, isKeyPart, tenantSegment, VARIANT_MARK } from '../key.js'
import type { StoreListedEntry, StoreListQuery } from '../stores/store.js'
import { parseCursor, type ParsedCursor } from './cursor.js'
import { MAX_TAG_BYTES, selectorTags, tagTooLong } from '../tags.js'
import { VALUE_STATUS } from './values.js'

/** Which entries `app.cache.list` answers: those matching every selector given (at least one). */
export interface ListSelector {
  /** `"GET /items/:id"` for one method, `"/items/:id"` for all of them. */
  route?: string
  /** A tag given to responses (`config.cache.tags`, `reply.cacheTags`) or values (`set`, `wrap`). */
  tag?: string
  /** A tenant id, as the `tenant` option answers it. Alone, it lists everything of that tenant. */
  tenant?: string | number
  /** Entries per page, at most. @defaultValue 100 (at most 1000) */
  limit?: number
  /** The `cursor` of the previous page. */
  cursor?: string
}

/** One entry, as an operator sees it. */
export interface ListedEntry {
  /** A cached response, or a value of `app.cache.set` or `wrap`. */
  kind: 'response' | 'value'
  /** The route id of a response (`"GET /items/:id"`). */
  route?: string
  /** Method and URL of the request a response answers (`GET /items/1?page=2`), or a value's key. */
  path?: string
  /** The status of a response. */
  status?: number
  /** Seconds since it was stored. */
  age: number
  /** Seconds it stays fresh; 0 once stale (it is kept for a stale window). */
  ttl: number
  /** Bytes the store holds for it (Redis: the value's length; memory: what counts towards `maxBytes`). */
  size: number
  /** Its tags, as given (not the plugin's own route, path and tenant records). */
  tags: string[]
  /**
   * For one of several variants of a response (a response `Vary` the route does not key): the response's
   * `Vary`, naming the request headers that select it. Their values are not stored.
   */
  vary?: string
  /** The tenant, only when the listing was asked for by tenant: stores hold tenants as hashes. */
  tenant?: string | number
}

export interface EntryPage {
  entries: ListedEntry[]
  /** Pass it back for the next page; undefined once every entry has been listed. */
  cursor?: string
  /** The store that listed: `memory`, `redis`, a custom store's name; `memory` for a tiered store while Redis is away. */
  source: string
}

export const LIST_LIMIT_DEFAULT = 100
export const LIST_LIMIT_MAX = 1000

function invalid (name: string, problem: string): never {
  throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT(name, problem)
}

/**
 * The store query for a selector (without its cursor), and the cursor given, of the right form;
 * throws FST_RESPONSE_CACHE_INVALID_ARGUMENT for a wrong one.
 */
export function listQuery (selector: unknown): { query: StoreListQuery, cursor: ParsedCursor | undefined } {
  if (typeof selector !== 'object' || selector === null) invalid('list', 'expected an object { route, tag, tenant, limit, cursor }')
  const { route, tag, tenant, limit = LIST_LIMIT_DEFAULT, cursor } = selector as Record<string, unknown>
  if (route !== undefined && (typeof route !== 'string' || route.length === 0)) invalid('route', 'expected a string such as "GET /items/:id" or "/items/:id"')
  if (tag !== undefined && (typeof tag !== 'string' || tag.length === 0)) invalid('tag', 'expected a non-empty string')
  if (tag !== undefined && tagTooLong(tag as string)) invalid('tag', `expected a tag of at most ${MAX_TAG_BYTES} bytes (UTF-8)`)
  if (tenant !== undefined && !isKeyPart(tenant)) invalid('tenant', 'expected a string or a finite number')
  if (!(Number.isInteger(limit) && (limit as number) >= 1 && (limit as number) <= LIST_LIMIT_MAX)) invalid('limit', `expected a whole number from 1 to ${LIST_LIMIT_MAX}`)
  if (route === undefined && tag === undefined && tenant === undefined) invalid('list', 'expected at least one of route, tag and tenant')
  const scope = tenant === undefined ? undefined : tenantSegment(tenant as string | number)
  const tags = tag === undefined ? undefined : [tag as string]
  // One set per method of the route (an entry has one route), else the tag's, else the tenant's;
  // the other selectors are checked on each entry.
  const sets = selectorTags(route !== undefined ? { route: route as string, tenant: scope } : { tags, tenant: scope })
  const having = route !== undefined && tags !== undefined ? selectorTags({ tags, tenant: scope }) : []
  return { query: { sets, having, limit: limit as number }, cursor: parseCursor(cursor) }
}

/** What an operator sees of a listed entry; the tenant only as the caller named it. */
export function listedEntry ({ key, entry, tags, size }: StoreListedEntry, namespace: string, tenant: string | number | undefined, now: number): ListedEntry {
  const value = entry.status === VALUE_STATUS
  const listed: ListedEntry = {
    kind: value ? 'value' : 'response',
    age: Math.max(0, Math.floor((now - entry.storedAt) / 1000)),
    ttl: Math.max(0, Math.ceil((entry.storedAt + freshMs(entry) - now) / 1000)),
    size,
    tags: []
  }
  for (const tag of tags) {
    if (tag.startsWith('g:t:')) listed.tags.push(tag.slice(4))
    else if (tag.startsWith('g:r:')) listed.route = tag.slice(4)
  }
  if (value) {
    const at = key.indexOf(':v:', namespace.length + 1)
    if (at !== -1) listed.path = decodeSegment(key.slice(at + 3))
  } else {
    listed.status = entry.status
    if (entry.request !== undefined) listed.path = entry.request
    const vary = entry.headers.vary
    if (key.includes(VARIANT_MARK) && vary !== undefined) listed.vary = typeof vary === 'string' ? vary : vary.join(', ')
  }
  if (tenant !== undefined) listed.tenant = tenant
  return listed
}

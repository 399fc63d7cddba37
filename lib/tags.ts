import { sha256 } from './key.js'

// The store only knows tags. What users call tags, and the implicit groups that invalidation by
// route, by tenant and by path needs, become store tags with a kind prefix, so no user tag can name
// an implicit group, and each group is also kept per tenant:
//
//   g:t:<tag>              the user tag, every tenant        s:<tenant>:t:<tag>   within one tenant
//   g:r:<METHOD> <pattern> the route, every tenant           s:<tenant>:r:...     within one tenant
//   g:p:<hash>             host and path of a GET entry      s:<tenant>:p:<hash>  within one tenant
//   s:<tenant>:all         everything of one tenant
//
// <tenant> is the tenant's key segment (a hash), never the id itself.

/**
 * Tags one entry may carry, at most. A route tags its answer with the few things it depends on; an
 * entry with thousands of tags (made from request input, say) would cost that many sets and versions
 * in one Redis script call.
 */
export const MAX_TAGS_PER_ENTRY = 64
/** UTF-8 bytes one tag may hold, at most: room for any id, too little to carry a document. */
export const MAX_TAG_BYTES = 256

export type TagsProblem = 'too-many-tags' | 'tag-too-long'

/** A tag of more than MAX_TAG_BYTES bytes; its length in characters decides first (at most 3 bytes each). */
export const tagTooLong = (tag: string): boolean => tag.length > MAX_TAG_BYTES / 3 && Buffer.byteLength(tag) > MAX_TAG_BYTES

/** Why one entry may not carry these (distinct) tags, or undefined when it may. */
export function tagsProblem (tags: readonly string[]): TagsProblem | undefined {
  if (tags.length > MAX_TAGS_PER_ENTRY) return 'too-many-tags'
  return tags.some(tagTooLong) ? 'tag-too-long' : undefined
}

/** What an argument or a route's config was expected to be, for each problem: the message names the bound. */
export const TAGS_EXPECTED: Record<TagsProblem, string> = {
  'too-many-tags': `expected at most ${MAX_TAGS_PER_ENTRY} tags`,
  'tag-too-long': `expected tags of at most ${MAX_TAG_BYTES} bytes (UTF-8) each`
}

/** The request methods whose entries a route can hold; HEAD is answered from the GET entry. */
export const ENTRY_METHODS = ['GET', 'POST', 'QUERY'] as const

/** Host and path (no query) of a request, hashed: the group RFC 9111 section 4.4 invalidates. */
export function pathGroup (host: string, path: string): string {
  return 'p:' + sha256(host + '\n' + path).slice(0, 22)
}

export interface EntryGroups {
  /** The key's tenant segment: `-` for no tenant. */
  tenant: string
  tags?: readonly string[]
  /** `"GET /items/:id"` for a response entry; undefined for a value. */
  route?: string
  /** From {@link pathGroup}, for GET entries. */
  path?: string
  /** A value of app.cache rather than a response. */
  value?: boolean
}

/** The sets that together hold every response entry of these routes and every value: what a store counts. */
export function countedGroups (routeIds: Iterable<string>): string[] {
  const groups = ['g:v']
  for (const id of routeIds) groups.push('g:r:' + id)
  return groups
}

/** The store tags of one entry. */
export function entryTags ({ tenant, tags, route, path, value }: EntryGroups): string[] {
  const groups: string[] = value === true ? ['v'] : []
  if (tags !== undefined) for (const tag of tags) groups.push('t:' + tag)
  if (route !== undefined) groups.push('r:' + route)
  if (path !== undefined) groups.push(path)
  const out = groups.map((group) => 'g:' + group)
  if (tenant !== '-') {
    for (const group of groups) out.push('s:' + tenant + ':' + group)
    out.push('s:' + tenant + ':all')
  }
  return out
}

export interface Selector {
  tags?: readonly string[]
  /** `"GET /items/:id"` (one method) or `"/items/:id"` (every method). */
  route?: string
  /** A tenant's key segment (see tenantSegment); narrows the tags and the route to that tenant. */
  tenant?: string
  /** Implicit groups (paths), used by the plugin itself. */
  groups?: readonly string[]
}

/**
 * What the purge route selects (http/purge-route.ts): tags, any number of routes, and host-and-path
 * groups ({@link pathGroup}), narrowed to a tenant id (not its segment); `soft` as invalidate's.
 */
export interface PurgeSelector {
  tags?: readonly string[]
  routes?: readonly string[]
  groups?: readonly string[]
  tenant?: string | number
  soft?: boolean
}

/** The store tags that select what `invalidate(selector)` drops; none when it selects nothing. */
export function selectorTags ({ tags, route, tenant, groups }: Selector): string[] {
  const wanted: string[] = []
  if (tags !== undefined) for (const tag of tags) wanted.push('t:' + tag)
  if (route !== undefined) {
    const space = route.indexOf(' ')
    if (space === -1) for (const method of ENTRY_METHODS) wanted.push('r:' + method + ' ' + route)
    else wanted.push('r:' + (route.slice(0, space).toUpperCase() === 'HEAD' ? 'GET' : route.slice(0, space).toUpperCase()) + route.slice(space))
  }
  if (groups !== undefined) wanted.push(...groups)
  if (tenant === undefined || tenant === '-') return wanted.map((group) => 'g:' + group)
  if (tags === undefined && route === undefined && groups === undefined) return ['s:' + tenant + ':all']
  return wanted.map((group) => 's:' + tenant + ':' + group)
}

import type { FastifyRequest } from 'fastify'
import type { CacheEntry } from '../entry.js'
import { isPromise } from '../promise.js'
import { isMarker, markerListing, markerNames, variantKey, type Variant } from '../rules/variants.js'
import type { GuardedStore } from '../stores/guard.js'
import type { MaybePromise, StoreSetOptions } from '../stores/store.js'

// Storing the variants of a resource (RFC 9111 section 4.1): what they are and how they
// are named is rules/variants.ts.

/** Variants this process produced, so that a request handed one by another request can tell whether it is its own. */
const produced = new WeakMap<CacheEntry, Variant>()

/**
 * For an entry found or handed over for a request whose resource key is `primary`: undefined when it
 * answers the request; the key of the request's own variant when it is a marker, or another
 * request's variant; null for a marker that cannot be read (a miss).
 */
export function ownVariant (entry: CacheEntry, primary: string, request: FastifyRequest): string | null | undefined {
  if (isMarker(entry)) {
    const names = markerNames(entry)
    return names === undefined ? null : variantKey(primary, names, request)
  }
  const variant = produced.get(entry)
  if (variant === undefined) return undefined
  const own = variantKey(primary, variant.names, request)
  return own === variant.key ? undefined : own
}

/** Remembers which variant an entry is, for the requests it is handed to (see ownVariant). */
export function rememberVariant (entry: CacheEntry, variant: Variant): void {
  produced.set(entry, variant)
}

/** Per resource, this process's marker update still on its way: the next one waits for it. */
const updating = new Map<string, Promise<boolean>>()

/**
 * Writes a variant and its resource's marker, which lists it: false, writing nothing, when the
 * resource has VARY_MAX_VARIANTS live variants already and this is not one of them. The marker is
 * read again first (a handler may take a while). One process updates a resource's marker one write
 * at a time, so it never loses its own variants from the list; two processes adding variants to one
 * resource at the same moment may each write a list without the other's, and the variant left out
 * stays readable until it expires, uncounted.
 */
export function storeVariant (store: GuardedStore, variant: Variant, entry: CacheEntry, options: StoreSetOptions): MaybePromise<boolean> {
  const write = (found: CacheEntry | undefined): MaybePromise<boolean> => {
    const listing = markerListing(found, variant, options.ttl, Date.now())
    if (listing === undefined) return false
    // The variant first: a reader that finds the marker finds the variant too (on Redis both go in
    // one script call, as they share a shard and are written in the same turn).
    const written = store.set(variant.key, entry, options)
    let marked: MaybePromise<void>
    try {
      marked = store.set(variant.primary, listing.marker, { ttl: listing.ttl, tags: options.tags })
    } catch (error) {
      if (isPromise(written)) written.catch(() => {})
      throw error
    }
    if (!isPromise(written) && !isPromise(marked)) return true
    return Promise.all([written, marked]).then(() => true)
  }
  const update = (): MaybePromise<boolean> => {
    const found = store.get(variant.primary)
    return isPromise(found) ? found.then(write) : write(found)
  }
  const { primary } = variant
  const pending = updating.get(primary)
  // The memory store answers in place: its updates cannot overlap.
  const result = pending === undefined ? update() : pending.then(update, update)
  if (!isPromise(result)) return result
  const tracked = result.finally(() => { if (updating.get(primary) === tracked) updating.delete(primary) })
  updating.set(primary, tracked)
  return tracked
}

import type { CacheEntry } from '../entry.js'
import { decodeValue } from './values.js'

/**
 * Each value entry's value decoded once and deep-frozen, kept beside the entry object for as long as
 * a store holds that object (the memory store, the tiered store's memory tier). A write, a refresh or
 * a drop replaces or removes the entry object, so a caller is never answered an older one's value.
 * Entries are per key, and keys carry the tenant: a value is never shared across keys or tenants.
 * `cloneable`: made only of what `copyOf` copies exactly and freezing makes read-only, so a copy needs no decode.
 */
const kept = new WeakMap<CacheEntry, { value: unknown, cloneable: boolean }>()

function keptOf (entry: CacheEntry): { value: unknown, cloneable: boolean } {
  let found = kept.get(entry)
  if (found === undefined) {
    const value = deepFreeze(decodeValue(entry.body))
    kept.set(entry, found = { value, cloneable: cloneable(value) })
  }
  return found
}

/** `shared`: the one frozen value of the entry, decoded on its first read and the same object after. */
export function sharedValue (entry: CacheEntry): unknown {
  return keptOf(entry).value
}

/**
 * A copy: a fresh value on every call, equal to what decoding the entry gives. Copied from the kept
 * frozen value where it is made of plain objects, arrays and primitives only (several times faster
 * than decoding MessagePack), else decoded.
 */
export function copiedValue (entry: CacheEntry): unknown {
  const found = keptOf(entry)
  return found.cloneable ? copyOf(found.value) : decodeValue(entry.body)
}

/**
 * Freezes `value` and everything it holds: object fields, array items, Map keys and values, Set
 * items. What freezing cannot stop is documented (docs/API.md, "Values"): a Map's `set`, a Set's
 * `add`, a Date's setters, and the bytes of Buffers and typed arrays (which cannot be frozen at all).
 */
export function deepFreeze<T> (value: T): T {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value
  Object.freeze(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) deepFreeze(value[i])
  } else if (value instanceof Map) {
    for (const [key, item] of value) {
      deepFreeze(key)
      deepFreeze(item)
    }
  } else if (value instanceof Set) {
    for (const item of value) deepFreeze(item)
  } else {
    for (const name of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[name])
  }
  return value
}

/**
 * Whether `copyOf` copies `value` exactly and nothing in it can be changed through the shared frozen
 * value: primitives, arrays and plain objects. A value holding a Date, Map, Set, Buffer or typed array
 * (which freezing cannot make read-only) is decoded for each copy instead.
 */
function cloneable (value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true
  if (Array.isArray(value)) return value.every(cloneable)
  return Object.getPrototypeOf(value) === Object.prototype && !Object.hasOwn(value, '__proto__') && Object.values(value).every(cloneable)
}

/** A deep copy of a value `cloneable` accepted. */
function copyOf (value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) {
    const copy = new Array(value.length)
    for (let i = 0; i < value.length; i++) copy[i] = copyOf(value[i])
    return copy
  }
  const copy: Record<string, unknown> = {}
  for (const name in value) copy[name] = copyOf((value as Record<string, unknown>)[name])
  return copy
}

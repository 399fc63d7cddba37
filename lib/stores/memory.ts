import { LRUCache } from 'lru-cache'
import { entrySize, type CacheEntry } from '../entry.js'
import type { CacheStore, StoreSetOptions, StoreStats } from './store.js'

interface Slot {
  entry: CacheEntry
  tags: readonly string[] | undefined
}

/**
 * The embedded default: an LRU bounded by bytes (lru-cache's maxSize and sizeCalculation) with a
 * TTL per entry, and a tag index kept in step with every removal through `dispose`.
 */
export class MemoryStore implements CacheStore {
  readonly name = 'memory'
  readonly #lru: LRUCache<string, Slot>
  readonly #keysByTag = new Map<string, Set<string>>()
  #evictions = 0

  constructor (options: { maxBytes: number }) {
    this.#lru = new LRUCache<string, Slot>({
      maxSize: options.maxBytes,
      // lru-cache calls dispose for evictions, expiries, deletes and overwrites alike.
      dispose: (slot, key, reason) => {
        if (reason === 'evict') this.#evictions++
        if (slot.tags !== undefined) this.#unindex(key, slot.tags)
      }
    })
  }

  get (key: string): CacheEntry | undefined {
    return this.#lru.get(key)?.entry
  }

  set (key: string, entry: CacheEntry, options: StoreSetOptions): void {
    const tags = options.tags !== undefined && options.tags.length > 0 ? options.tags : undefined
    this.#lru.set(key, { entry, tags }, { ttl: Math.ceil(options.ttl * 1000), size: entrySize(key, entry, tags) })
    // An entry larger than maxBytes is refused by lru-cache: index nothing for it.
    if (tags === undefined || !this.#lru.has(key)) return
    for (const tag of tags) {
      let keys = this.#keysByTag.get(tag)
      if (keys === undefined) this.#keysByTag.set(tag, keys = new Set())
      keys.add(key)
    }
  }

  delete (key: string): boolean {
    return this.#lru.delete(key)
  }

  invalidateTags (tags: readonly string[]): number {
    let dropped = 0
    for (const tag of tags) {
      const keys = this.#keysByTag.get(tag)
      if (keys === undefined) continue
      for (const key of [...keys]) if (this.#lru.delete(key)) dropped++
    }
    return dropped
  }

  clear (): void {
    this.#lru.clear()
    this.#keysByTag.clear()
  }

  close (): void {
    this.clear()
  }

  stats (): StoreStats {
    return { entries: this.#lru.size, bytes: this.#lru.calculatedSize, evictions: this.#evictions }
  }

  #unindex (key: string, tags: readonly string[]): void {
    for (const tag of tags) {
      const keys = this.#keysByTag.get(tag)
      if (keys === undefined) continue
      keys.delete(key)
      if (keys.size === 0) this.#keysByTag.delete(tag)
    }
  }
}

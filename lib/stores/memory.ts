import { LRUCache } from 'lru-cache'
import { entrySize, expiredAt, type CacheEntry } from '../entry.js'
import type { CacheStore, StoreCursor, StoreListPage, StoreListQuery, StoreSetOptions, StoreStats } from './store.js'

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
  /**
   * Per tag, its keys with the number of their write: a Map iterates in insertion order, so a
   * listing goes on after the last number it answered, whatever was removed meanwhile.
   */
  readonly #keysByTag = new Map<string, Map<string, number>>()
  #writes = 0
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
    const write = ++this.#writes
    for (const tag of tags) {
      let keys = this.#keysByTag.get(tag)
      if (keys === undefined) this.#keysByTag.set(tag, keys = new Map())
      keys.set(key, write)
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
      for (const key of [...keys.keys()]) if (this.#lru.delete(key)) dropped++
    }
    return dropped
  }

  /**
   * Soft purge: each entry of the tags is replaced in its slot by a copy expired at `at` (expiredAt),
   * its place in the LRU and its TTL untouched. Synchronous: no write can land in between.
   */
  softInvalidateTags (tags: readonly string[], at: number): number {
    const marked = new Set<string>()
    for (const tag of tags) {
      for (const key of this.#keysByTag.get(tag)?.keys() ?? []) {
        // peek: a purge is not a use, and an entry past its TTL is not counted.
        const slot = marked.has(key) ? undefined : this.#lru.peek(key)
        if (slot === undefined) continue
        slot.entry = expiredAt(slot.entry, at)
        marked.add(key)
      }
    }
    return marked.size
  }

  clear (): void {
    this.#lru.clear()
    this.#keysByTag.clear()
  }

  close (): void {
    this.clear()
  }

  /** Walks the sets in write order; the cursor is the set and the last write number answered. */
  list ({ sets, having, cursor, limit }: StoreListQuery): StoreListPage {
    const entries: StoreListPage['entries'] = []
    const start = listPosition(cursor)
    if (start === undefined) return { entries }
    let [set, after] = start
    for (; set < sets.length; set++, after = 0) {
      for (const [key, write] of this.#keysByTag.get(sets[set]) ?? []) {
        // peek: no change to the LRU order, and nothing past its TTL.
        const slot = write > after ? this.#lru.peek(key) : undefined
        // Found through a tag set: it has tags.
        const tags = slot?.tags as readonly string[]
        if (slot === undefined || !having.every((tag) => tags.includes(tag))) continue
        if (entries.length === limit) return { entries, cursor: [set, after] }
        entries.push({ key, entry: slot.entry, tags, size: entrySize(key, slot.entry, tags) })
        after = write
      }
    }
    return { entries }
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

/** A cursor this store made: two whole numbers; anything else ends the listing. */
function listPosition (cursor: StoreCursor | undefined): [number, number] | undefined {
  if (cursor === undefined) return [0, 0]
  const [set, after] = cursor
  return cursor.length === 2 && Number.isSafeInteger(set) && (set as number) >= 0 && Number.isSafeInteger(after) ? [set as number, after as number] : undefined
}

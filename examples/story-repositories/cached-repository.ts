import type { ResponseCacheClient } from '../../lib/index.js'
import type { Table } from './database.js'

/** How one kind of entity is cached. */
export interface CachePolicy<T> {
  /** `hero`: names its keys and tags. */
  kind: string
  /** Seconds an entity or a list of them stays cached. */
  ttl: number
  /** Fields its lists are filtered by: `language` caches `GET /heroes?language=en` whole, as `hero:list:language:en`. */
  listedBy: Array<keyof T & string>
}

/**
 * Cache-aside over a table: reads go through `app.cache.wrap` (one query for any number of
 * concurrent readers), every write drops the entity and each list it was or now is in, by tag.
 * The cache is never the source of truth: when it cannot answer, the table does.
 */
export class CachedRepository<T extends { id: string }> {
  constructor (
    private readonly cache: ResponseCacheClient,
    private readonly table: Table<T>,
    private readonly policy: CachePolicy<T>
  ) {}

  async findById (id: string): Promise<T | undefined> {
    // "Not found" is cached too, and dropped by the save that creates the entity.
    const name = this.#entityName(id)
    return await this.cache.wrap(name, async () => await this.table.findById(id), { ttl: this.policy.ttl, tags: [name] })
  }

  /** Every entity, or those whose `field` is `value`: each list cached whole. */
  async list (filter?: { field: keyof T & string, value: string }): Promise<T[]> {
    const name = this.#listName(filter?.field, filter?.value)
    return await this.cache.wrap(name, async () => await this.table.list(filter), { ttl: this.policy.ttl, tags: [name] })
  }

  async save (fields: Omit<T, 'id'>): Promise<T> {
    const saved = await this.table.insert(fields)
    await this.#drop(saved)
    return saved
  }

  async update (id: string, changes: Partial<Omit<T, 'id'>>): Promise<T | undefined> {
    const changed = await this.table.update(id, changes)
    if (changed === undefined) return undefined
    // A hero whose language changed leaves one list and joins another: both are dropped.
    await this.#drop(changed.before, changed.after)
    return changed.after
  }

  async delete (id: string): Promise<boolean> {
    const deleted = await this.table.delete(id)
    if (deleted !== undefined) await this.#drop(deleted)
    return deleted !== undefined
  }

  // Entities and lists in two spaces of names, so no id can name a list: `hero:id:h1`, `hero:list:all`.
  #entityName (id: string): string {
    return `${this.policy.kind}:id:${id}`
  }

  #listName (field?: string, value?: unknown): string {
    return `${this.policy.kind}:list:` + (field === undefined ? 'all' : `${field}:${String(value)}`)
  }

  async #drop (...entities: T[]): Promise<void> {
    const tags = new Set([this.#listName()])
    for (const entity of entities) {
      tags.add(this.#entityName(entity.id))
      for (const field of this.policy.listedBy) tags.add(this.#listName(field, entity[field]))
    }
    await this.cache.invalidate({ tags: [...tags] })
  }
}

import { createHash } from 'node:crypto'
import type { ResponseCacheClient } from '../../lib/index.js'
import type { Table } from './database.js'
import { lookup, type Lookup } from '../value-lookup.js'

/** A lookup by fields other than the id: `hero:name:{name}`, `child:exact:{name}:{age}:{gender}`. */
export interface FieldLookup<T> {
  /** Names its keys: `name` caches `GET /heroes/by-name/Emma` as `hero:name:Emma`. */
  name: string
  /** The fields it matches, in the order of the key. */
  fields: Array<keyof T & string>
}

/** How one kind of entity is cached. */
export interface CachePolicy<T> {
  /** `hero`: names its keys and tags. */
  kind: string
  /** Seconds an entity or a list of them stays cached. */
  ttl: number
  /** Fields its lists are filtered by: `language` caches `GET /heroes?language=en` whole, as `hero:list:language:en`. */
  listedBy: Array<keyof T & string>
  /** The seed's other keys: by name, by name, age and gender. */
  lookups: Array<FieldLookup<T>>
}

/**
 * Cache-aside over a table: reads go through `app.cache.wrap` (one query for any number of
 * concurrent readers), every write drops each list and lookup the entity was or now is in, by tag,
 * and caches the entity it saved. Every entry also has the kind's tag (`hero`), which the manual
 * invalidation drops. With `enabled: false` every read goes to the table and nothing is cached.
 * The cache is never the source of truth: when it cannot answer, the table does.
 */
export class CachedRepository<T extends { id: string }> {
  constructor (
    private readonly cache: ResponseCacheClient,
    private readonly table: Table<T>,
    private readonly policy: CachePolicy<T>,
    private readonly enabled = true
  ) {}

  get kind (): string {
    return this.policy.kind
  }

  async findById (id: string): Promise<Lookup<T | undefined>> {
    // "Not found" is cached too, and dropped by the save that creates the entity.
    return await this.#read(this.#entityName(id), async () => await this.table.findById(id))
  }

  /** Every entity, or those whose `field` is `value`: each list cached whole. */
  async list (filter?: { field: keyof T & string, value: string }): Promise<Lookup<T[]>> {
    return await this.#read(this.#listName(filter?.field, filter?.value), async () => await this.table.list(filter))
  }

  /** By one of `policy.lookups`: the entities whose fields equal those of `values`. */
  async findBy (name: string, values: Partial<T>): Promise<Lookup<T[]>> {
    const found = this.#lookup(name)
    const match = Object.fromEntries(found.fields.map((field) => [field, values[field]])) as Partial<T>
    return await this.#read(this.#lookupName(found, match), async () => await this.table.findWhere(match))
  }

  /** Saves, drops what the new entity joins, and caches it: the next read of its id is a hit. */
  async save (fields: Omit<T, 'id'>): Promise<T> {
    const saved = await this.table.insert(fields)
    await this.#drop(saved)
    await this.#cache(saved)
    return saved
  }

  async update (id: string, changes: Partial<Omit<T, 'id'>>): Promise<T | undefined> {
    const changed = await this.table.update(id, changes)
    if (changed === undefined) return undefined
    // A hero whose language changed leaves one list and joins another: both are dropped.
    await this.#drop(changed.before, changed.after)
    await this.#cache(changed.after)
    return changed.after
  }

  async delete (id: string): Promise<boolean> {
    const deleted = await this.table.delete(id)
    if (deleted !== undefined) await this.#drop(deleted)
    return deleted !== undefined
  }

  /**
   * The seed's `invalidate_cache()`: one entity (and every list and lookup it is in) when given its
   * id, else everything cached of this kind. How many entries were dropped; undefined when the
   * store could not be asked.
   */
  async invalidate (id?: string): Promise<number | undefined> {
    if (id === undefined) return await this.cache.invalidate({ tags: [this.policy.kind] })
    const entity = await this.table.findById(id)
    if (entity === undefined) return await this.cache.invalidate({ tags: [this.#entityName(id)] })
    return await this.#drop(entity)
  }

  async #read<V> (name: string, fn: () => Promise<V>): Promise<Lookup<V>> {
    return await lookup(this.cache, name, fn, { ttl: this.policy.ttl, tags: [tagOf(name), this.policy.kind], enabled: this.enabled })
  }

  async #cache (entity: T): Promise<void> {
    if (!this.enabled) return
    const name = this.#entityName(entity.id)
    await this.cache.set(name, entity, { ttl: this.policy.ttl, tags: [tagOf(name), this.policy.kind] })
  }

  #lookup (name: string): FieldLookup<T> {
    const found = this.policy.lookups.find((candidate) => candidate.name === name)
    if (found === undefined) throw new Error(`${this.policy.kind} has no lookup "${name}"`)
    return found
  }

  // Names in separate spaces (`id`, `list`, then each lookup's), so no id can name a list:
  // `hero:id:h1`, `hero:list:all`, `hero:name:Captain Kindness`, `child:exact:Emma:7:female`.
  #entityName (id: string): string {
    return `${this.policy.kind}:id:${id}`
  }

  #listName (field?: string, value?: unknown): string {
    return `${this.policy.kind}:list:` + (field === undefined ? 'all' : `${field}:${String(value)}`)
  }

  #lookupName (found: FieldLookup<T>, entity: Partial<T>): string {
    // Only the first field is free text (the others are numbers and enums): the name stays unambiguous.
    return `${this.policy.kind}:${found.name}:` + found.fields.map((field) => String(entity[field])).join(':')
  }

  async #drop (...entities: T[]): Promise<number | undefined> {
    const tags = new Set([tagOf(this.#listName())])
    for (const entity of entities) {
      tags.add(tagOf(this.#entityName(entity.id)))
      for (const field of this.policy.listedBy) tags.add(tagOf(this.#listName(field, entity[field])))
      for (const found of this.policy.lookups) tags.add(tagOf(this.#lookupName(found, entity)))
    }
    return await this.cache.invalidate({ tags: [...tags] })
  }
}

/** A name as a tag: itself, or its digest when past the 256 bytes a tag may have (a long name in emoji). */
function tagOf (name: string): string {
  return Buffer.byteLength(name) <= 200 ? name : `#${createHash('sha256').update(name).digest('base64url')}`
}

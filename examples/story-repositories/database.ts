import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Hero { id: string, name: string, language: string, description: string }
export type Gender = 'female' | 'male' | 'other'
export interface Child { id: string, name: string, age: number, gender: Gender, interests: string[] }
export interface Story { id: string, childId: string, heroId: string, language: string, title: string }

/**
 * One table of the "database": rows in memory behind a delay, standing in for the 50-100 ms
 * queries of the real one. `queries` counts what reached it, so a test can tell a cache hit.
 */
export class Table<T extends { id: string }> {
  queries = 0
  readonly #rows = new Map<string, T>()

  constructor (private readonly delayMs: number, rows: T[] = []) {
    for (const row of rows) this.#rows.set(row.id, row)
  }

  async #query (): Promise<void> {
    this.queries++
    await sleep(this.delayMs)
  }

  async findById (id: string): Promise<T | undefined> {
    await this.#query()
    return this.#rows.get(id)
  }

  async list (filter?: { field: keyof T, value: unknown }): Promise<T[]> {
    await this.#query()
    const rows = [...this.#rows.values()]
    return filter === undefined ? rows : rows.filter((row) => row[filter.field] === filter.value)
  }

  /** The rows whose fields equal every field of `match`. */
  async findWhere (match: Partial<T>): Promise<T[]> {
    await this.#query()
    const fields = Object.entries(match) as Array<[keyof T, unknown]>
    return [...this.#rows.values()].filter((row) => fields.every(([field, value]) => row[field] === value))
  }

  async insert (fields: Omit<T, 'id'>): Promise<T> {
    await this.#query()
    const row = { ...fields, id: randomUUID() } as T
    this.#rows.set(row.id, row)
    return row
  }

  /** The row before and after the change, or undefined when there is no such row. */
  async update (id: string, changes: Partial<Omit<T, 'id'>>): Promise<{ before: T, after: T } | undefined> {
    await this.#query()
    const before = this.#rows.get(id)
    if (before === undefined) return undefined
    const after = { ...before, ...changes, id }
    this.#rows.set(id, after)
    return { before, after }
  }

  /** The row deleted, or undefined. */
  async delete (id: string): Promise<T | undefined> {
    await this.#query()
    const row = this.#rows.get(id)
    this.#rows.delete(id)
    return row
  }
}

export interface Database { heroes: Table<Hero>, children: Table<Child>, stories: Table<Story> }

export function createDatabase (delayMs = 80): Database {
  return {
    heroes: new Table<Hero>(delayMs, [
      { id: 'h1', name: 'Captain Kindness', language: 'en', description: 'Helps everyone' },
      { id: 'h2', name: 'Капитан Доброта', language: 'ru', description: 'Помогает всем' }
    ]),
    children: new Table<Child>(delayMs, [{ id: 'c1', name: 'Emma', age: 7, gender: 'female', interests: ['space', 'cats'] }]),
    stories: new Table<Story>(delayMs, [{ id: 's1', childId: 'c1', heroId: 'h1', language: 'en', title: 'Emma and the Moon Cat' }])
  }
}

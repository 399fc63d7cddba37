import type { TSchema } from '@sinclair/typebox'
import { FST_RESPONSE_CACHE_INVALID_ARGUMENT } from '../errors.js'
import { isKeyPart } from '../key.js'
import { TAGS_EXPECTED, tagsProblem } from '../tags.js'
import { timingProblem } from './wrap-timing.js'

// What a caller of app.cache's get, set, del and wrap passes (and wrap's function is handed), and how
// each is checked before the store is asked.

export interface ValueOptions {
  /** Keeps the value apart from every other tenant's, like the `tenant` option does for responses. */
  tenant?: string | number
}

export interface SetValueOptions extends ValueOptions {
  /** Seconds the value is fresh. @defaultValue the plugin's `ttl` */
  ttl?: number
  /** Tags to drop it by, shared with response entries: at most 64, of at most 256 bytes (UTF-8) each. */
  tags?: readonly string[]
  /**
   * A fraction from 0 to 1: the `ttl` written is multiplied by a random factor from `1 - ttlJitter` to 1
   * (shorter, never longer than asked), so that values written together do not all expire together.
   * @defaultValue the plugin's `ttlJitter`
   * @example `{ ttl: 600, ttlJitter: 0.1 }` (fresh for 540 to 600 seconds)
   */
  ttlJitter?: number
}

export interface GetValueOptions<S extends TSchema = TSchema> extends ValueOptions {
  /** A cached value that no longer matches the schema is a miss. */
  schema?: S
  /**
   * `true`: the value is one deep-frozen object, decoded once per stored value and handed to every
   * caller (no decode on a hit; changing it throws in strict mode). `false`: a fresh copy per call.
   * @defaultValue the plugin's `sharedValues` (`false`)
   * @example `await app.cache.get('config', { shared: true })`
   */
  shared?: boolean
}

export interface WrapOptions<S extends TSchema = TSchema> extends SetValueOptions, GetValueOptions<S> {
  /** Seconds past `ttl` during which the old value is returned at once while one call of `fn` refreshes it. @defaultValue `0` */
  staleWhileRevalidate?: number
  /**
   * Seconds past `ttl` during which, when `fn` throws, the old value is returned instead of the error.
   * @defaultValue the plugin's `staleIfError`
   */
  staleIfError?: number
  /**
   * A fraction strictly between 0 and 1: a fresh value read past that fraction of its `ttl` is answered
   * at once and one background call of `fn` replaces it (one per key across the instances on a store
   * that locks), so a value read often never expires.
   * @defaultValue off
   * @example `{ ttl: 600, eagerRefresh: 0.8 }` (a read after 480 seconds starts the refresh)
   */
  eagerRefresh?: number
  /**
   * Milliseconds `fn` is waited for while a stale value is at hand (within the call's `staleIfError`):
   * then the stale value is answered, and `fn` goes on in the background and writes its value when it
   * answers. Without a stale value at hand it does nothing.
   * @defaultValue off
   * @example `{ staleIfError: 3600, softTimeout: 100 }`
   */
  softTimeout?: number
  /**
   * Milliseconds after which `fn` is no longer waited for, stale value or not: the stale value is
   * answered if one is at hand, else the call rejects with `FST_RESPONSE_CACHE_WRAP_TIMEOUT`. `fn` goes
   * on in the background and writes its value when it answers. Not below `softTimeout`.
   * @defaultValue off (`fn` is waited for as long as it takes)
   * @example `{ hardTimeout: 2000 }`
   */
  hardTimeout?: number
}

/**
 * What `wrap`'s `fn` is handed: the entry it is about to write, to decide from the value it made.
 * Each field starts as the call's (or the plugin's) setting; what `fn` leaves there is what is written.
 * @example
 * ```ts
 * await app.cache.wrap('user:1', async (ctx) => {
 *   const user = await db.user(1)
 *   if (user === undefined) ctx.skip()       // answered, not cached: the next call asks again
 *   else if (user.guest) ctx.ttl = 10          // seconds
 *   ctx.tags.push(`org:${user.org}`)
 *   return user
 * }, { ttl: 300 })
 * ```
 */
export interface WrapContext {
  /** Seconds the value is fresh, greater than 0. @defaultValue the call's `ttl`, else the plugin's */
  ttl: number
  /** Tags to drop it by (the bounds of the call's `tags`). @defaultValue a copy of the call's `tags`, else `[]` */
  tags: string[]
  /** Seconds past `ttl` it is kept for a later call's stale-if-error, 0 or more. @defaultValue the call's `staleIfError`, else the plugin's */
  staleIfError: number
  /** The value is returned to the callers but not cached: the next call runs `fn` again. */
  skip: () => void
}

/** `wrap`'s function: the zero-argument form still fits. */
export type WrapFunction<T> = (ctx: WrapContext) => T | Promise<T>

export class Context implements WrapContext {
  ttl: number
  tags: string[]
  staleIfError: number
  skipped = false
  constructor (options: WrapOptions | undefined, ttl: number, staleIfError: number) {
    this.ttl = options?.ttl ?? ttl
    this.tags = [...(options?.tags ?? [])]
    this.staleIfError = staleIfError
  }

  readonly skip = (): void => { this.skipped = true }
}

export const MAX_KEY_LENGTH = 8192

export function invalid (name: string, problem: string): never {
  throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT(name, problem)
}

/** `prefix`: `ctx.` for what `wrap`'s function left on its context. */
export function checkOptions (options: WrapOptions | undefined, prefix = ''): void {
  if (options === undefined) return
  if (typeof options !== 'object' || options === null) invalid('options', 'expected an object')
  const { tenant, ttl, tags, schema } = options
  if (tenant !== undefined && !isKeyPart(tenant)) invalid('tenant', 'expected a string or a finite number')
  if (ttl !== undefined && !(typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl))) invalid(prefix + 'ttl', 'expected a number of seconds greater than 0')
  const { ttlJitter } = options
  if (ttlJitter !== undefined && !(typeof ttlJitter === 'number' && ttlJitter >= 0 && ttlJitter <= 1)) invalid('ttlJitter', 'expected a fraction from 0 to 1')
  for (const name of ['staleWhileRevalidate', 'staleIfError'] as const) {
    const window = options[name]
    if (window !== undefined && !(typeof window === 'number' && window >= 0 && Number.isFinite(window))) invalid(prefix + name, 'expected a number of seconds, 0 or more')
  }
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((tag) => typeof tag === 'string' && tag.length > 0))) {
    invalid(prefix + 'tags', 'expected an array of non-empty strings')
  }
  const problem = tags === undefined ? undefined : tagsProblem([...new Set(tags)])
  if (problem !== undefined) invalid(prefix + 'tags', TAGS_EXPECTED[problem])
  if (schema !== undefined && (typeof schema !== 'object' || schema === null)) invalid('schema', 'expected a TypeBox schema')
  const timing = timingProblem(options)
  if (timing !== undefined) invalid(...timing)
  const { shared } = options as GetValueOptions
  if (shared !== undefined && typeof shared !== 'boolean') invalid('shared', 'expected a boolean')
}

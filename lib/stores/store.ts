import type { CacheEntry } from '../entry.js'

export type MaybePromise<T> = T | Promise<T>

export interface StoreSetOptions {
  /** Seconds the store keeps the entry: its freshness plus any stale windows. */
  ttl: number
  /** Tags the entry can be invalidated by. */
  tags?: readonly string[]
  /** A lock token from `lock` or `getOrLock` for this key, to release once the entry is written. */
  lockToken?: string
}

/** Whether a store can answer: `connecting` until it first could, `down` when it could and no longer can. */
export type StoreState = 'up' | 'connecting' | 'down'

export interface StoreStats {
  entries: number
  bytes: number
  evictions: number
}

/**
 * Where entries live. The memory and Redis stores implement it; so can a custom store passed as
 * `store`. Methods may answer synchronously (the memory store does, to keep hits off the microtask
 * queue) or with a promise; the plugin bounds promised calls by `timeout`.
 */
export interface CacheStore {
  readonly name: string
  get: (key: string) => MaybePromise<CacheEntry | undefined>
  set: (key: string, entry: CacheEntry, options: StoreSetOptions) => MaybePromise<void>
  delete: (key: string) => MaybePromise<boolean>
  /** Drops every entry stored with any of the tags; answers how many were dropped. */
  invalidateTags: (tags: readonly string[]) => MaybePromise<number>
  /** Drops every entry of this store's namespace. */
  clear: () => MaybePromise<void>
  /**
   * Takes a short lock for computing `key`, shared by every process using the store; answers a token,
   * or undefined when another holder has it. Stores shared across processes implement it.
   */
  lock?: (key: string, ttlMs: number) => MaybePromise<string | undefined>
  /**
   * `get` and, on a miss, `lock` in one round trip: `{ entry }`, or `{ token }` when the lock was
   * taken, or `{}` when another holder has it. Optional: without it the plugin calls `get` then `lock`.
   */
  getOrLock?: (key: string, ttlMs: number) => MaybePromise<{ entry?: CacheEntry, token?: string }>
  /** Releases the lock if `token` still holds it. */
  unlock?: (key: string, token: string) => MaybePromise<void>
  /** Answers when the store is reachable; throws or rejects when it is not. */
  ping?: () => MaybePromise<unknown>
  /**
   * Entries, bytes and evictions. `groups` are the tags whose sets together hold every entry (the
   * plugin passes its routes' and its values'): a store that cannot count its entries otherwise
   * (Redis) counts those sets; one that can (memory) ignores them.
   */
  stats?: (groups?: readonly string[]) => MaybePromise<StoreStats>
  close?: () => MaybePromise<void>
  /**
   * Waits until the store can answer, at most `timeoutMs` (a Redis client still connecting, or made
   * with `lazyConnect`, is connected); answers whether it can. The plugin calls it as the app gets ready.
   */
  connect?: (timeoutMs: number) => Promise<boolean>
  /** Whether the store can answer now, as far as it knows without asking (for `health()`). */
  state?: () => StoreState
  /**
   * Calls `listener` each time the store can answer again, so that the plugin uses it from the next
   * request: with no argument for every key (a Redis client's `ready`), or with the failure domains
   * whose keys can (a Cluster's slots moved to a new master). Answers a function that stops the calls.
   */
  onReady?: (listener: (domains?: readonly number[]) => void) => () => void
  /**
   * Keys whose calls fail together share a failure domain (a small whole number), and each domain
   * has a circuit breaker of its own: on a Redis Cluster, a dead master pauses only its own keys.
   * Without it, the store fails as one.
   */
  failureDomain?: (key: string) => number
  /**
   * The store bounds and pauses its own remote calls and does not fail for them (the tiered store,
   * whose memory tier must go on answering while Redis is away): the plugin adds no timeout or
   * circuit breaker of its own around it.
   */
  readonly guardsItself?: boolean
}

export const STORE_METHODS = ['get', 'set', 'delete', 'invalidateTags', 'clear'] as const

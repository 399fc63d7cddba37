import type { CacheEntry } from '../entry.js'

export type MaybePromise<T> = T | Promise<T>

/**
 * Set by the built-in stores that read entries from bytes (decodeEntry checks each): the guard does
 * not check what they answer again. A custom store's answers are checked (entryProblem).
 */
export const kChecksEntries = Symbol('fastify-response-cache.checksEntries')

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

/** What `app.cache.health()` answers: whether the store answers, and how fast. */
export interface CacheHealth {
  ok: boolean
  store: string
  /** `up`; `connecting` before the store first answered; `down` once it answered and no longer does. */
  state: StoreState
  latencyMs?: number
  error?: string
}

export interface StoreStats {
  entries: number
  bytes: number
  evictions: number
}

/** A page of a listing walks sets with many calls: it may take longer than a request-path call. */
export const LIST_TIMEOUT_MS = 5000

/** A position in a listing, as the store made it: the client sends it out as an opaque string. */
export type StoreCursor = ReadonlyArray<string | number>

/** What `list` is asked for. */
export interface StoreListQuery {
  /** Store tags whose entries are listed, one set after the other (the plugin passes sets that share no entry). */
  sets: readonly string[]
  /** Store tags every listed entry must also have. */
  having: readonly string[]
  /**
   * Where the previous page ended, as this store answered it. It comes back from outside: a store
   * checks it, and answers an empty last page for one it did not make.
   */
  cursor?: StoreCursor
  /** Entries in the page, at most. */
  limit: number
}

export interface StoreListedEntry {
  /** The plugin's key of the entry. */
  key: string
  entry: CacheEntry
  /** Its store tags. */
  tags: readonly string[]
  /** Bytes the store holds for it. */
  size: number
}

export interface StoreListPage {
  /** Live entries only: none expired or invalidated. */
  entries: StoreListedEntry[]
  /** Where to go on from; undefined once every set has been walked. */
  cursor?: StoreCursor
  /** The store that listed, when not this one (the tiered store lists its memory tier while Redis is away). */
  source?: string
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
  /**
   * Soft purge: marks every entry stored with any of the tags as expired from `at` (ms since the
   * epoch) instead of dropping it, so that it is answered stale within its stale windows while it is
   * refreshed; an entry written after the call is not marked. Answers how many were marked. Optional:
   * without it a soft purge drops the entries (`invalidateTags`).
   */
  softInvalidateTags?: (tags: readonly string[], at: number) => MaybePromise<number>
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
  /**
   * `get` past any copy kept in this process: the entry every instance shares (the tiered store's
   * Redis). Optional: without it the plugin calls `get`.
   */
  getShared?: (key: string) => MaybePromise<CacheEntry | undefined>
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
  /**
   * A page of the live entries in `sets` that also have every tag of `having`: bounded work per
   * page, never a walk of the whole keyspace. Optional: without it `app.cache.list` rejects.
   */
  list?: (query: StoreListQuery) => MaybePromise<StoreListPage>
  /**
   * A token per part of the store that changes or disappears when the part loses its entries
   * (Redis: each shard's generation; null for a part with none yet). The plugin compares them from
   * time to time to re-run the declared warm requests when the store comes back empty. Optional.
   */
  generations?: () => MaybePromise<ReadonlyArray<string | null>>
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
  readonly [kChecksEntries]?: boolean
}

export const STORE_METHODS = ['get', 'set', 'delete', 'invalidateTags', 'clear'] as const

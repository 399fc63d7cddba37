import type { ResponseCacheClient } from '../../lib/index.js'

// The seed's RedisCache had exists, expire, ttl and clear_all next to get, set and delete. The
// plugin has get, set, del, list and clear; these four are built on them. Each value the bot caches
// carries the tag `key:<its key>`, which is how `list` finds one value by its key.

/** The tag every cached value of the bot carries, naming its key. */
export const keyTag = (key: string): string => `key:${key}`

/** What the cache holds under `key`: undefined when nothing; `ttl` in whole seconds, 0 once stale. */
export interface EntryState { key: string, ttl: number, age: number, size: number, tags: string[] }

/** `exists` and `ttl` in one: the entry under `key`, or undefined (null when the store could not be asked). */
export async function inspect (cache: ResponseCacheClient, key: string): Promise<EntryState | undefined | null> {
  const page = await cache.list({ tag: keyTag(key), limit: 10 })
  if (page === undefined) return null
  const entry = page.entries.find((candidate) => candidate.kind === 'value' && candidate.path === key)
  return entry === undefined ? undefined : { key, ttl: entry.ttl, age: entry.age, size: entry.size, tags: entry.tags }
}

/**
 * The seed's `expire(key, ttl)`: the value under `key` lives `seconds` from now. The plugin has no
 * call that changes a TTL in place, so this reads the value and writes it again with the new TTL and
 * the tags it had. False when there is no such value, or the store could not take it.
 */
export async function expire (cache: ResponseCacheClient, key: string, seconds: number): Promise<boolean> {
  const state = await inspect(cache, key)
  if (state === undefined || state === null) return false
  const value = await cache.get(key)
  if (value === undefined) return false
  return await cache.set(key, value, { ttl: seconds, tags: state.tags })
}

import { FST_RESPONSE_CACHE_INVALID_STORE, FST_RESPONSE_CACHE_STORE_UNAVAILABLE } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import { MemoryStore } from './memory.js'
import { STORE_METHODS, type CacheStore } from './store.js'

export type { CacheStore, StoreSetOptions, StoreStats } from './store.js'
export { MemoryStore } from './memory.js'

/** Picks the store named by the options, or checks a custom one for the methods the plugin calls. */
export function createStore (options: ResolvedOptions): CacheStore {
  const { store } = options
  if (store === 'memory') return new MemoryStore({ maxBytes: options.memoryMaxBytes })
  if (store === 'redis') throw new FST_RESPONSE_CACHE_STORE_UNAVAILABLE('redis')
  for (const method of STORE_METHODS) {
    if (typeof store[method] !== 'function') throw new FST_RESPONSE_CACHE_INVALID_STORE(method)
  }
  return store
}

import type { StoreStats } from './stores/store.js'
import type { CacheStats, Stats } from './stats.js'
import { redactCredentials } from './errors.js'
import { isPromise, type GuardedStore } from './store-guard.js'

/** `app.cache`. This release has `stats`, `invalidate` by tags, `clear` and `health`; the value API follows. */
export interface ResponseCacheClient {
  /** Counters in total and per route, and the store's own figures. */
  stats: () => CacheStats
  /** Drops every entry stored with any of the tags; resolves to how many were dropped. */
  invalidate: (what: { tags?: readonly string[] }) => Promise<number>
  /** Drops every entry of this plugin's namespace. */
  clear: () => Promise<void>
  /** Whether the store answers, and how fast; the error never holds credentials. */
  health: () => Promise<CacheHealth>
}

export interface CacheHealth {
  ok: boolean
  store: string
  latencyMs?: number
  error?: string
}

/** clear() walks the namespace with SCAN: it gets longer than a request-path call. */
export const CLEAR_TIMEOUT_MS = 30_000

export function createClient (guarded: GuardedStore, stats: Stats): ResponseCacheClient {
  const store = guarded.store
  const storeStats = (): StoreStats & { name: string } => {
    const figures = store.stats?.()
    // stats() stays synchronous: a store that answers with a promise reports zeros here.
    if (figures === undefined || isPromise(figures)) {
      figures?.catch(() => {})
      return { name: store.name, entries: 0, bytes: 0, evictions: 0 }
    }
    return { name: store.name, ...figures }
  }
  return {
    stats: () => stats.snapshot(storeStats()),
    invalidate: async ({ tags }) => tags === undefined || tags.length === 0 ? 0 : await guarded.run('invalidateTags', () => store.invalidateTags(tags)),
    clear: async () => { await guarded.run('clear', () => store.clear(), CLEAR_TIMEOUT_MS) },
    health: async () => {
      const started = performance.now()
      try {
        await guarded.run('ping', () => store.ping?.())
        return { ok: true, store: store.name, latencyMs: Math.round((performance.now() - started) * 100) / 100 }
      } catch (error) {
        return { ok: false, store: store.name, error: redactCredentials(String((error as Error)?.message ?? error)) }
      }
    }
  }
}

import type { LookupPlan } from '../http/lookup-stage.js'
import type { StoreStats } from '../stores/store.js'

/** Counters of one route and method, bumped in place on the request path. */
export class RouteCounters {
  hits = 0
  misses = 0
  stale = 0
  bypasses = 0
  stores = 0
  errors = 0
  /** Where the route is looked up, once its first request has said (http/lookup-stage.ts). */
  lookupStage: LookupPlan['stage'] | undefined = undefined
}

export interface CounterSnapshot {
  hits: number
  misses: number
  stale: number
  bypasses: number
  stores: number
  errors: number
  /** (hits + stale) / (hits + stale + misses), 0 when nothing was looked up. */
  hitRatio: number
  /**
   * Routes only, from their first request on: the hook stage their lookup runs in, after every hook
   * that could refuse the request (`'none'`: a hook runs after the last the cache can add).
   */
  lookupStage?: 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'none'
}

export interface CacheStats {
  total: CounterSnapshot
  /** Keyed by method and route pattern, as `"GET /items/:id"`. */
  routes: Record<string, CounterSnapshot>
  /** `app.cache.get` and `wrap` (not in `total`, which counts responses). */
  values: CounterSnapshot
  store: StoreStats & { name: string }
  /** The declared warm requests (the `warm` option, `warm(requests, { keep: true })`). */
  warm: WarmCounters
}

/** What became of the declared warm requests, since the start. */
export interface WarmCounters {
  /** Runs of the declared requests by this instance: at start, after listen, and each re-warm. */
  runs: number
  /** Requests of those runs whose answer was stored, and those whose answer was not. */
  stored: number
  failed: number
  /** Times this instance found the shared store had lost its entries (restart, flush, clear()). */
  emptied: number
}

function snapshot (c: RouteCounters): CounterSnapshot {
  const served = c.hits + c.stale
  const looked = served + c.misses
  return {
    hits: c.hits,
    misses: c.misses,
    stale: c.stale,
    bypasses: c.bypasses,
    stores: c.stores,
    errors: c.errors,
    hitRatio: looked === 0 ? 0 : served / looked,
    ...(c.lookupStage === undefined ? {} : { lookupStage: c.lookupStage })
  }
}

export class Stats {
  readonly #routes = new Map<string, RouteCounters>()
  /** Errors outside any route: store trouble during invalidation or clear. */
  readonly other = new RouteCounters()
  /** Values of app.cache.get, set and wrap. */
  readonly values = new RouteCounters()
  readonly warm: WarmCounters = { runs: 0, stored: 0, failed: 0, emptied: 0 }

  /** One set of counters per route id; routes that share an id share counters. */
  forRoute (id: string): RouteCounters {
    let counters = this.#routes.get(id)
    if (counters === undefined) this.#routes.set(id, counters = new RouteCounters())
    return counters
  }

  snapshot (store: StoreStats & { name: string }): CacheStats {
    const total = new RouteCounters()
    total.errors = this.other.errors
    const routes: Record<string, CounterSnapshot> = {}
    for (const [id, c] of this.#routes) {
      routes[id] = snapshot(c)
      total.hits += c.hits
      total.misses += c.misses
      total.stale += c.stale
      total.bypasses += c.bypasses
      total.stores += c.stores
      total.errors += c.errors
    }
    return { total: snapshot(total), routes, values: snapshot(this.values), store, warm: { ...this.warm } }
  }
}

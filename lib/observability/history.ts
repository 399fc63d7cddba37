import type { CacheStats } from './stats.js'

/** The counters a recent hit ratio is worked out from. */
export interface RecentCounters {
  hits: number
  stale: number
  misses: number
  bypasses: number
  errors: number
  /** (hits + stale) / (hits + stale + misses) within the window, 0 when nothing was looked up. */
  hitRatio: number
}

/** What the stats JSON says of the last minutes (with the dashboard on). */
export interface RecentStats {
  /** Seconds between samples. */
  interval: number
  /** Seconds the window covers: up to RECENT_WINDOW_S, less while the server is younger. */
  seconds: number
  /** Per route id, what happened within the window. */
  routes: Record<string, RecentCounters>
}

interface Sample {
  at: number
  routes: CacheStats['routes']
}

/** The window the dashboard's recent hit ratio covers. */
export const RECENT_WINDOW_S = 300

/**
 * A ring buffer of the route counters, sampled every `interval` seconds (by an unref'd timer, from
 * `start()` to `stop()`), long enough to cover RECENT_WINDOW_S: the counters now minus those of the
 * oldest sample within the window are what happened in the last minutes.
 */
export class CounterHistory {
  readonly #ring: Sample[] = []
  readonly #size: number
  #next = 0
  #timer: NodeJS.Timeout | undefined

  constructor (readonly interval: number, readonly read: () => CacheStats['routes'], readonly now: () => number = Date.now) {
    this.#size = Math.ceil(RECENT_WINDOW_S / interval) + 1
  }

  /** Takes one sample now (the timer calls it; so can a test). */
  sample (): void {
    this.#ring[this.#next] = { at: this.now(), routes: this.read() }
    this.#next = (this.#next + 1) % this.#size
  }

  /** Samples, oldest first. */
  samples (): Sample[] {
    return [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)]
  }

  recent (): RecentStats {
    const now = this.now()
    const current = this.read()
    const oldest = this.samples().find((sample) => sample.at >= now - RECENT_WINDOW_S * 1000)
    const routes: Record<string, RecentCounters> = {}
    for (const [id, c] of Object.entries(current)) {
      const before = oldest?.routes[id]
      const delta = (name: 'hits' | 'stale' | 'misses' | 'bypasses' | 'errors'): number => c[name] - (before?.[name] ?? 0)
      const hits = delta('hits')
      const stale = delta('stale')
      const misses = delta('misses')
      const looked = hits + stale + misses
      routes[id] = { hits, stale, misses, bypasses: delta('bypasses'), errors: delta('errors'), hitRatio: looked === 0 ? 0 : (hits + stale) / looked }
    }
    return { interval: this.interval, seconds: oldest === undefined ? 0 : Math.round((now - oldest.at) / 1000), routes }
  }

  start (): void {
    this.sample()
    this.#timer = setInterval(() => { this.sample() }, this.interval * 1000).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  get running (): boolean {
    return this.#timer !== undefined
  }
}

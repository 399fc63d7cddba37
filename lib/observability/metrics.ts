import { Counter, Gauge, Registry } from 'prom-client'
import type { CacheHealth } from '../stores/store.js'
import type { CacheStats, CounterSnapshot } from './stats.js'

/** One plugin instance as the metrics see it. */
export interface MetricsSource {
  namespace: string
  stats: () => CacheStats
  health: () => Promise<CacheHealth>
  /** Fetches a remote store's figures before they are read. */
  refresh: () => Promise<void>
}

type Labels = Record<string, string>

/**
 * The plugin's counters as prom-client metrics, read from the live stats when the registry is
 * scraped (nothing is counted twice). One set of metrics per registry: several plugin instances
 * sharing an app's registry are told apart by the `namespace` label.
 */
class CacheMetrics {
  readonly sources = new Set<MetricsSource>()

  constructor (readonly registry: Registry) {
    const sources = this.sources
    const perRoute = (name: string, help: string, labelNames: string[], values: (route: CounterSnapshot) => Array<[Labels, number]>): void => {
      // eslint-disable-next-line no-new
      new Counter({
        name,
        help,
        labelNames: ['namespace', 'route', ...labelNames],
        registers: [registry],
        collect () {
          this.reset()
          for (const source of sources) {
            const { routes, values: valueCounters } = source.stats()
            const all: Array<[string, CounterSnapshot]> = [...Object.entries(routes), ['app.cache', valueCounters]]
            for (const [route, counters] of all) {
              for (const [labels, value] of values(counters)) this.inc({ namespace: source.namespace, route, ...labels }, value)
            }
          }
        }
      })
    }
    perRoute('response_cache_requests_total', 'Lookups by result: hit, stale, miss, bypass (route "app.cache" counts app.cache.get and wrap)', ['result'],
      (c) => [[{ result: 'hit' }, c.hits], [{ result: 'stale' }, c.stale], [{ result: 'miss' }, c.misses], [{ result: 'bypass' }, c.bypasses]])
    perRoute('response_cache_stores_total', 'Entries written', [], (c) => [[{}, c.stores]])
    perRoute('response_cache_errors_total', 'Store calls that failed or timed out', [], (c) => [[{}, c.errors]])

    const perStore = (name: string, help: string, read: (store: CacheStats['store']) => number, type: 'gauge' | 'counter'): void => {
      const Metric = type === 'gauge' ? Gauge : Counter
      // eslint-disable-next-line no-new
      new Metric({
        name,
        help,
        labelNames: ['namespace', 'store'],
        registers: [registry],
        async collect () {
          this.reset()
          for (const source of sources) {
            await source.refresh()
            const { store } = source.stats()
            this.inc({ namespace: source.namespace, store: store.name }, read(store))
          }
        }
      })
    }
    perStore('response_cache_entries', 'Entries in the store (0 where the store does not count them)', (s) => s.entries, 'gauge')
    perStore('response_cache_bytes', 'Bytes the store accounts for its entries', (s) => s.bytes, 'gauge')
    perStore('response_cache_evictions_total', 'Entries evicted to stay within the byte bound', (s) => s.evictions, 'counter')

    // One ping per source and scrape: both gauges below are collected at once, and share it.
    const pinging = new Map<MetricsSource, Promise<CacheHealth>>()
    const health = async (source: MetricsSource): Promise<CacheHealth> => {
      let pending = pinging.get(source)
      if (pending === undefined) {
        pinging.set(source, pending = source.health())
        pending.finally(() => { pinging.delete(source) }).catch(/* c8 ignore next */ () => {})
      }
      return await pending
    }
    /** A gauge per source read from the scrape's ping of it; `read` undefined: no sample for that source. */
    const healthGauge = (name: string, help: string, read: (answer: CacheHealth) => number | undefined): void => {
      // eslint-disable-next-line no-new
      new Gauge({
        name,
        help,
        labelNames: ['namespace', 'store'],
        registers: [registry],
        async collect () {
          this.reset()
          for (const source of sources) {
            const answer = await health(source)
            const value = read(answer)
            if (value !== undefined) this.set({ namespace: source.namespace, store: answer.store }, value)
          }
        }
      })
    }
    healthGauge('response_cache_store_up', 'Whether the store answered a ping when scraped (1) or not (0: down, or paused by the circuit breaker)',
      (answer) => answer.ok ? 1 : 0)
    healthGauge('response_cache_store_ping_seconds', 'How long the store took to answer that ping (absent while it does not answer)',
      (answer) => answer.latencyMs === undefined ? undefined : answer.latencyMs / 1000)
  }
}

const shared = new WeakMap<Registry, CacheMetrics>()

/**
 * Registers a plugin instance's metrics in its own registry (for the stats route) and, when the app
 * passed one, in the app's registry as well. Answers the instance's registry and a function that
 * takes the instance out of the app's registry again.
 */
export function registerMetrics (source: MetricsSource, appRegistry: Registry | undefined): { own: Registry, remove: () => void } {
  const own = new CacheMetrics(new Registry())
  own.sources.add(source)
  if (appRegistry === undefined) return { own: own.registry, remove: () => {} }
  let metrics = shared.get(appRegistry)
  if (metrics === undefined) shared.set(appRegistry, metrics = new CacheMetrics(appRegistry))
  metrics.sources.add(source)
  const inApp = metrics
  return { own: own.registry, remove: () => { inApp.sources.delete(source) } }
}

import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import type { ResolvedStatsRoute } from '../options.js'
import { addDashboard } from './dashboard.js'
import { CounterHistory } from './history.js'

/**
 * The stats route: Prometheus text for scrapers (text/plain or OpenMetrics), JSON stats and store
 * health for browsers and tools, behind the route's `onRequest` guard; with `dashboard`, the page
 * and its routes under the same path and guard, and the recent counters in the JSON.
 */
export function addStatsRoute (app: FastifyInstance, route: ResolvedStatsRoute, registry: Registry, refreshStoreStats: () => Promise<void>): void {
  const { path, onRequest } = route
  // Route names, hit ratios and store health are for operators: an open route shows them to anyone.
  if (onRequest.length === 0 && !route.public) app.addHook('onReady', async () => { app.log.warn({ responseCache: { statsRoute: path } }, 'response cache: the stats route has no onRequest guard; anyone who can reach it can read it') })
  let history: CounterHistory | undefined
  if (route.dashboard !== false) {
    const sampled = history = new CounterHistory(route.dashboard.interval, () => app.cache.stats().routes)
    app.addHook('onReady', async () => { sampled.start() })
    app.addHook('onClose', async () => { sampled.stop() })
    addDashboard(app, path, onRequest)
  }
  app.get(path, { onRequest }, async (request, reply) => {
    // Prometheus scrapers ask for text/plain (or OpenMetrics, which accepts it); browsers and tools get JSON.
    const accept = request.headers.accept ?? ''
    if (accept.includes('text/plain') || accept.includes('openmetrics')) {
      return await reply.type(registry.contentType).send(await registry.metrics())
    }
    await refreshStoreStats()
    return { ...app.cache.stats(), health: await app.cache.health(), ...(history === undefined ? {} : { recent: history.recent() }) }
  })
}

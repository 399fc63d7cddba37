import type { FastifyInstance, onRequestHookHandler } from 'fastify'
import type { Registry } from 'prom-client'

/**
 * The stats route: Prometheus text for scrapers (text/plain or OpenMetrics), JSON stats and store
 * health for browsers and tools, behind the route's `onRequest` guard.
 */
export function addStatsRoute (app: FastifyInstance, route: { path: string, onRequest: onRequestHookHandler[] }, registry: Registry, refreshStoreStats: () => Promise<void>): void {
  const { path, onRequest } = route
  // Route names, hit ratios and store health are for operators: an open route shows them to anyone.
  if (onRequest.length === 0) app.addHook('onReady', async () => { app.log.warn({ responseCache: { statsRoute: path } }, 'response cache: the stats route has no onRequest guard; anyone who can reach it can read it') })
  app.get(path, { onRequest }, async (request, reply) => {
    // Prometheus scrapers ask for text/plain (or OpenMetrics, which accepts it); browsers and tools get JSON.
    const accept = request.headers.accept ?? ''
    if (accept.includes('text/plain') || accept.includes('openmetrics')) {
      return await reply.type(registry.contentType).send(await registry.metrics())
    }
    await refreshStoreStats()
    return { ...app.cache.stats(), health: await app.cache.health() }
  })
}

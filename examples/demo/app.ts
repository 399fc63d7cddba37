import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import responseCache from '../../lib/index.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Stands in for a slow database query or third-party API. */
async function loadProduct (id: string): Promise<{ id: string, name: string, price: number, loadedAt: string }> {
  await sleep(300)
  return { id, name: `Product ${id}`, price: Number(id) * 10 + 0.99, loadedAt: new Date().toISOString() }
}

/** Stands in for an expensive computation whose result is not a whole response (an LLM call, say). */
async function summarise (id: string): Promise<{ id: string, summary: string, at: Date }> {
  await sleep(200)
  return { id, summary: `Product ${id} is a fine product.`, at: new Date() }
}

/**
 * The demo app: a cached route keyed by its parameter, a cached search keyed by its body, a write
 * that invalidates, a value cached with app.cache.wrap, and the stats route (JSON or Prometheus).
 */
export async function buildDemo (options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(options)
  await app.register(responseCache, { ttl: 30, statsRoute: true })

  app.get('/products/:id', {
    config: { cache: { tags: (request) => [`product:${(request.params as { id: string }).id}`] } }
  }, async (request) => await loadProduct((request.params as { id: string }).id))

  app.post('/search', { config: { cache: { ttl: 10 } } }, async (request) => {
    await sleep(300)
    return { query: request.body, results: ['1', '2', '3'] }
  })

  // A 2xx PUT drops the cached GET /products/:id of the same path by itself (RFC 9111 4.4).
  app.put('/products/:id', async (request) => ({ updated: (request.params as { id: string }).id }))

  app.get('/products/:id/summary', async (request) => {
    const { id } = request.params as { id: string }
    return await app.cache.wrap(`summary:${id}`, async () => await summarise(id), { ttl: 60, tags: [`product:${id}`] })
  })

  app.get('/uncached', async () => await loadProduct('0'))
  return app
}

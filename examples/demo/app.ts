import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import responseCache from '../../lib/index.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Stands in for a slow database query or third-party API. */
async function loadProduct (id: string): Promise<{ id: string, name: string, price: number, loadedAt: string }> {
  await sleep(300)
  return { id, name: `Product ${id}`, price: Number(id) * 10 + 0.99, loadedAt: new Date().toISOString() }
}

/** The demo app: one cached route keyed by its parameter, one cached search keyed by its body, stats on. */
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

  app.get('/uncached', async () => await loadProduct('0'))
  return app
}

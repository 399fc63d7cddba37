import Fastify, { type FastifyInstance } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import responseCache, { type ResponseCacheOptions } from '../../lib/index.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/**
 * One instance of the patients app the tiered tests run three of, as the README shows it: a client
 * passed as `redis` and `store: 'tiered'` (or the `store` given). Entries are tagged by patient; the
 * body says which run of the handler (counted across the instances by `runs`) computed it.
 */
export async function patientsApp (t: Teardown, redis: Redis | Cluster, namespace: string, runs: { next: () => number }, options: ResponseCacheOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'tiered', redis, namespace, ...options })
  app.get('/patients/:id', { config: { cache: { ttl: 600, tags: (request) => [`patient:${(request.params as { id: string }).id}`] } } },
    async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
  return app
}

import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import stableStringify from 'safe-stable-stringify'
import responseCache, { errors } from '../../lib/index.js'

/** The cached endpoints: the route, and how long an answer stays fresh (the seed's TTLs). */
export const ENDPOINTS = {
  'health-analysis': { url: '/api/v1/analyze-health', ttl: 3600 },
  'drug-analysis': { url: '/api/v1/drug/analyze', ttl: 86_400 },
  summaries: { url: '/api/v1/summaries', ttl: 7200 }
} as const
export type Endpoint = keyof typeof ENDPOINTS

export interface MedInsightOptions {
  /** An ioredis client or Cluster; the memory store without one. */
  redis?: Redis | Cluster
  /** How long each simulated AI call takes. @defaultValue 300 */
  delayMs?: number
  /** Called each time a slow part runs (the tests count them). */
  onCompute?: (endpoint: Endpoint | 'medication-interactions') => void
  logger?: FastifyServerOptions['logger']
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The seed's "request hash": the body in a stable key order. It names one entry to the operators. */
export const requestHash = (body: unknown): string => createHash('sha256').update(String(stableStringify(body ?? null))).digest('hex').slice(0, 16)

const routeOf = (endpoint: Endpoint): string => `POST ${ENDPOINTS[endpoint].url}`
const isEndpoint = (name: string): name is Endpoint => Object.hasOwn(ENDPOINTS, name)

export async function build (options: MedInsightOptions = {}): Promise<FastifyInstance> {
  const { delayMs = 300, onCompute = () => {} } = options
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(responseCache, options.redis === undefined
    ? { store: 'memory', namespace: 'medinsight' }
    : { store: 'redis', redis: options.redis, namespace: 'medinsight' })

  /** Stands in for an LLM or FDA call that takes seconds. */
  const slow = async <T>(endpoint: Endpoint | 'medication-interactions', result: T): Promise<T> => {
    onCompute(endpoint)
    await sleep(delayMs)
    return result
  }

  // Each analysis is cached whole, keyed by its JSON body (any key order), for its endpoint's TTL,
  // and tagged with its request hash so that an operator can drop that one entry.
  const cached = (endpoint: Endpoint): { config: { cache: { ttl: number, tags: (request: FastifyRequest) => string[] } } } => ({
    config: { cache: { ttl: ENDPOINTS[endpoint].ttl, tags: (request) => [`${endpoint}:${requestHash(request.body)}`] } }
  })

  app.post(ENDPOINTS['health-analysis'].url, cached('health-analysis'), async (request) => {
    const { symptoms = [], medications = [] } = request.body as { symptoms?: string[], medications?: string[] }
    // Interactions between the same medications are the same whatever the symptoms: a value of
    // their own, for 24 h, shared by every analysis that names them.
    const names = [...medications].sort()
    const interactions = names.length < 2
      ? []
      : await app.cache.wrap(`interactions:${names.join('+')}`, async () => await slow('medication-interactions', [`${names.join(' + ')}: no known interaction`]), { ttl: 86_400 })
    return await slow('health-analysis', { requestHash: requestHash(request.body), conditions: symptoms.map((s) => `possible cause of ${s}`), interactions, analysedAt: new Date().toISOString() })
  })

  app.post(ENDPOINTS['drug-analysis'].url, cached('drug-analysis'), async (request) => {
    const { drug } = request.body as { drug?: string }
    return await slow('drug-analysis', { requestHash: requestHash(request.body), drug: drug?.trim().toLowerCase(), analysis: `analysis of ${String(drug)}`, analysedAt: new Date().toISOString() })
  })

  app.post(ENDPOINTS.summaries.url, cached('summaries'), async (request) => {
    const { text = '' } = request.body as { text?: string }
    return await slow('summaries', { requestHash: requestHash(request.body), summary: text.slice(0, 80), summarisedAt: new Date().toISOString() })
  })

  await app.register(operations, { prefix: '/api/v1/cache' })
  return app
}

/** The ops token, from the environment only; without one every ops request is refused. */
function tokenCheck (): (header: string | undefined) => boolean {
  const token = process.env.MEDINSIGHT_OPS_TOKEN
  if (token === undefined || token === '') return () => false
  const expected = createHash('sha256').update(token).digest()
  // Digests of equal length: the comparison takes as long whatever the header holds.
  return (header) => timingSafeEqual(createHash('sha256').update(header ?? '').digest(), expected)
}

/** What the seed's /api/v1/redis/* routes did, on the plugin: health, usage, entries, invalidation. */
const operations: FastifyPluginAsync = async (app) => {
  const allowed = tokenCheck()
  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.authorization
    if (allowed(header?.startsWith('Bearer ') === true ? header.slice(7) : undefined)) return
    reply.code(401).send({ error: 'unauthorized' })
    return reply
  })

  app.get('/health', async (request, reply) => {
    const health = await app.cache.health()
    return await reply.code(health.ok ? 200 : 503).send(health)
  })

  // Requests and hits per endpoint: the plugin's own counters, not counters kept beside them.
  app.get('/stats', async () => {
    const { routes, values, store } = app.cache.stats()
    const usage = Object.fromEntries((Object.keys(ENDPOINTS) as Endpoint[]).map((endpoint) => {
      const c = routes[routeOf(endpoint)]
      const requests = c === undefined ? 0 : c.hits + c.stale + c.misses + c.bypasses
      return [endpoint, { requests, hits: c?.hits ?? 0, hitRatio: c?.hitRatio ?? 0, errors: c?.errors ?? 0 }]
    }))
    return { usage, values, store }
  })

  app.get<{ Params: { endpoint: string }, Querystring: { limit?: string, cursor?: string } }>('/entries/:endpoint', async (request, reply) => {
    const { endpoint } = request.params
    if (!isEndpoint(endpoint)) return await reply.code(404).send({ error: 'unknown endpoint' })
    const limit = request.query.limit === undefined ? undefined : Number(request.query.limit)
    try {
      const page = await app.cache.list({ route: routeOf(endpoint), limit, cursor: request.query.cursor })
      return page === undefined ? await reply.code(503).send({ error: 'the cache store cannot be asked now' }) : page
    } catch (error) {
      if (error instanceof errors.FST_RESPONSE_CACHE_INVALID_ARGUMENT) return await reply.code(400).send({ error: (error as Error).message })
      throw error
    }
  })

  app.delete<{ Params: { endpoint: string } }>('/entries/:endpoint', async (request, reply) => {
    const { endpoint } = request.params
    if (!isEndpoint(endpoint)) return await reply.code(404).send({ error: 'unknown endpoint' })
    const dropped = await app.cache.invalidate({ route: routeOf(endpoint) })
    return dropped === undefined ? await reply.code(503).send({ error: 'the cache store cannot be asked now' }) : { dropped }
  })

  app.delete<{ Params: { endpoint: string, hash: string } }>('/entries/:endpoint/:hash', async (request, reply) => {
    const { endpoint, hash } = request.params
    if (!isEndpoint(endpoint)) return await reply.code(404).send({ error: 'unknown endpoint' })
    const dropped = await app.cache.invalidate({ tags: [`${endpoint}:${hash}`] })
    return dropped === undefined ? await reply.code(503).send({ error: 'the cache store cannot be asked now' }) : { dropped }
  })
}

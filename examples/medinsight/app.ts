import { createHash, timingSafeEqual } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import { Registry } from 'prom-client'
import stableStringify from 'safe-stable-stringify'
import responseCache, { errors } from '../../lib/index.js'
import {
  CacheHealth, Dropped, DrugAnalysis, DrugAnalysisBody, DrugInfo, DrugInfoParams, EntriesQuery, EntryId, EntryPage,
  HealthAnalysis, HealthAnalysisBody, NoQuery, Performance, Problem, Session, SessionHeaders, SessionParams, SessionView,
  Stats, Summary, SymptomInputs,
  type DrugAnalysisRequest, type HealthAnalysisRequest, type SessionValue, type SymptomInputList
} from './schemas.js'

/** The cached endpoints: the route, and how long an answer stays fresh (the seed's TTLs). */
export const ENDPOINTS = {
  'health-analysis': { method: 'POST', url: '/api/v1/analyze-health', ttl: 3600 },
  'drug-analysis': { method: 'POST', url: '/api/v1/drug/analyze', ttl: 86_400 },
  // The seed kept basic drug info "indefinitely, with timestamp validation": 30 days here, with an
  // etag that answers If-None-Match with a 304, and an operator can drop it at any time.
  'drug-info': { method: 'GET', url: '/api/v1/drug/info/:name', ttl: 30 * 86_400 },
  // The AI summary of a session, keyed by the session (its URL), not by a body.
  summaries: { method: 'GET', url: '/api/v1/summaries/:sessionId', ttl: 7200 }
} as const
export type Endpoint = keyof typeof ENDPOINTS
const ENDPOINT_NAMES = Object.keys(ENDPOINTS) as Endpoint[]

/** The seed's TTLs of the values kept per session. */
const SESSION_TTL = 3600
const SYMPTOM_INPUT_TTL = 1800
const INTERACTIONS_TTL = 86_400
/** Symptom inputs kept per session, the newest. */
const SYMPTOM_INPUTS_KEPT = 20

export interface MedInsightOptions {
  /** An ioredis client or Cluster; the memory store without one. */
  redis?: Redis | Cluster
  /** How long each simulated AI call takes. @defaultValue 300 */
  delayMs?: number
  /** Called each time a slow part runs (the tests count them). */
  onCompute?: (endpoint: Endpoint | 'medication-interactions') => void
  /** Larger answers are served but not stored (the plugin's option). @defaultValue 1048576 */
  maxEntryBytes?: number
  logger?: FastifyServerOptions['logger']
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The seed's "request hash": the body in a stable key order. It names one entry to the operators. */
export const requestHash = (body: unknown): string => createHash('sha256').update(String(stableStringify(body ?? null))).digest('hex').slice(0, 16)

/** How a name is keyed: `' Aspirin '`, `'ASPIRIN'` and `'aspirin'` are one drug. */
export const normalise = (term: string): string => term.trim().toLowerCase().replace(/\s+/g, ' ')
/** A drug's name in its URL: normalised, spaces as hyphens. */
const urlName = (name: string): string => normalise(name).replaceAll(' ', '-')
const normaliseAll = (terms: readonly string[]): string[] => [...new Set(terms.map(normalise))].sort()

const routeOf = (endpoint: Endpoint): string => `${ENDPOINTS[endpoint].method} ${ENDPOINTS[endpoint].url}`
/** Each entry's tag, `<endpoint>:<id>`: the id is the request hash, the drug name or the session id. */
const entryTag = (endpoint: Endpoint, id: string): string => `${endpoint}:${id}`
const sessionTag = (sessionId: string): string => `session:${sessionId}`

/** Basic drug information, as an FDA lookup would answer it. */
const DRUGS: Record<string, string> = {
  aspirin: 'NSAID; pain, fever, antiplatelet. Raises bleeding risk with anticoagulants.',
  ibuprofen: 'NSAID; pain, fever, inflammation.',
  metformin: 'Biguanide; type 2 diabetes.',
  paracetamol: 'Analgesic and antipyretic; liver toxicity in overdose.',
  warfarin: 'Vitamin K antagonist anticoagulant; many interactions.'
}
const DRUG_INFO_UPDATED = '2026-01-15T00:00:00.000Z'

export async function build (options: MedInsightOptions = {}): Promise<FastifyInstance> {
  const { delayMs = 300, onCompute = () => {}, maxEntryBytes } = options
  // Bodies are taken as they are: a string is not an array of one string (Fastify coerces by
  // default) and an unknown field is an error, not dropped. Every query and path value is a string.
  const app = Fastify({ logger: options.logger ?? false, ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } })
  // The plugin's figures in a registry of our own: reading a metric from it fetches the store's
  // figures first (stats() alone answers the last ones, up to 5 s old).
  const registry = new Registry()
  await app.register(responseCache, {
    namespace: 'medinsight',
    registry,
    ...(maxEntryBytes === undefined ? {} : { maxEntryBytes }),
    ...(options.redis === undefined ? { store: 'memory' } : { store: 'redis', redis: options.redis })
  })

  /** Stands in for an LLM or FDA call that takes seconds. */
  const slow = async <T>(endpoint: Endpoint | 'medication-interactions', result: () => T): Promise<T> => {
    onCompute(endpoint)
    await sleep(delayMs)
    return result()
  }

  /** A value of app.cache read, with what happened said in the debug log. */
  const lookup = async <T>(request: FastifyRequest, key: string): Promise<T | undefined> => {
    const value = await app.cache.get<T>(key)
    request.log.debug({ value: key.slice(0, key.indexOf(':')), cache: value === undefined ? 'miss' : 'hit' }, 'medinsight value lookup')
    return value
  }

  /** The seed's cache_user_session and cache_symptom_input, for a request that names its session. */
  const recordSession = async (request: FastifyRequest, endpoint: Endpoint, input: { drug?: string, symptoms?: string[], medications?: string[] }): Promise<void> => {
    const sessionId = request.headers['x-session-id']
    if (typeof sessionId !== 'string') return
    const now = new Date().toISOString()
    const tags = [sessionTag(sessionId)]
    const session = await lookup<SessionValue>(request, `session:${sessionId}`) ?? { id: sessionId, startedAt: now, lastSeenAt: now, requests: 0, endpoints: {}, drugs: [] }
    session.lastSeenAt = now
    session.requests++
    session.endpoints[endpoint] = (session.endpoints[endpoint] ?? 0) + 1
    if (input.drug !== undefined && !session.drugs.includes(input.drug)) session.drugs.push(input.drug)
    await app.cache.set(`session:${sessionId}`, session, { ttl: SESSION_TTL, tags })
    if (input.symptoms === undefined) return
    const inputs = await lookup<SymptomInputList>(request, `symptoms:${sessionId}`) ?? []
    inputs.push({ at: now, symptoms: input.symptoms, medications: input.medications ?? [] })
    await app.cache.set(`symptoms:${sessionId}`, inputs.slice(-SYMPTOM_INPUTS_KEPT), { ttl: SYMPTOM_INPUT_TTL, tags })
    // The session's summary no longer covers every input: the next GET makes a new one.
    await app.cache.invalidate({ tags: [entryTag('summaries', sessionId)] })
  }

  // The analyses are cached whole for their endpoint's TTL, keyed by the body. A preHandler hook
  // puts the body in its normal form first (after validation: a bad body never gets here), and the
  // plugin looks the route up at the end of preHandler, so the key is the normal form's.
  const analysis = (endpoint: 'health-analysis' | 'drug-analysis'): { config: { cache: { ttl: number, tags: (request: FastifyRequest) => string[] } } } => ({
    config: { cache: { ttl: ENDPOINTS[endpoint].ttl, tags: (request) => [entryTag(endpoint, requestHash(request.body))] } }
  })

  app.post<{ Body: HealthAnalysisRequest }>(ENDPOINTS['health-analysis'].url, {
    ...analysis('health-analysis'),
    schema: { headers: SessionHeaders, querystring: NoQuery, body: HealthAnalysisBody, response: { 200: HealthAnalysis } },
    preHandler: async (request) => {
      request.body = { symptoms: normaliseAll(request.body.symptoms), medications: normaliseAll(request.body.medications ?? []) }
      await recordSession(request, 'health-analysis', request.body as Required<HealthAnalysisRequest>)
    }
  }, async (request) => {
    const { symptoms, medications = [] } = request.body
    // Interactions between the same medications are the same whatever the symptoms: a value of
    // their own, for 24 h, shared by every analysis that names them.
    let interactions: string[] = []
    if (medications.length >= 2) {
      let computed = false
      interactions = await app.cache.wrap(`interactions:${medications.join('+')}`, async () => {
        computed = true
        return await slow('medication-interactions', () => [`${medications.join(' + ')}: no known interaction`])
      }, { ttl: INTERACTIONS_TTL })
      request.log.debug({ value: 'interactions', cache: computed ? 'miss' : 'hit' }, 'medinsight value lookup')
    }
    return await slow('health-analysis', () => ({
      requestHash: requestHash(request.body),
      symptoms,
      medications,
      conditions: symptoms.map((symptom) => `possible cause of ${symptom}`),
      interactions,
      analysedAt: new Date().toISOString()
    }))
  })

  app.post<{ Body: DrugAnalysisRequest }>(ENDPOINTS['drug-analysis'].url, {
    ...analysis('drug-analysis'),
    schema: { headers: SessionHeaders, querystring: NoQuery, body: DrugAnalysisBody, response: { 200: DrugAnalysis } },
    preHandler: async (request) => {
      request.body = { drug: normalise(request.body.drug) }
      await recordSession(request, 'drug-analysis', request.body)
    }
  }, async (request) => {
    const { drug } = request.body
    return await slow('drug-analysis', () => ({ requestHash: requestHash(request.body), drug, analysis: `analysis of ${drug}`, analysedAt: new Date().toISOString() }))
  })

  // Basic drug info, one entry per drug: another spelling of the name is sent to the URL of the
  // normal one (308, not cached, no lookup), so `Aspirin` and `aspirin ` share `aspirin`'s entry.
  // An unknown drug's 404 is cached too: asking again does not reach the slow lookup.
  app.get<{ Params: Static<typeof DrugInfoParams> }>(ENDPOINTS['drug-info'].url, {
    config: { cache: { ttl: ENDPOINTS['drug-info'].ttl, statusCodes: [200, 404], tags: (request) => [entryTag('drug-info', urlName((request.params as { name: string }).name))] } },
    schema: { params: DrugInfoParams, querystring: NoQuery, response: { 200: DrugInfo, 308: Problem, 404: Problem } }
  }, async (request, reply) => {
    const name = urlName(request.params.name)
    if (name !== request.params.name) {
      return await reply.code(308).header('location', `/api/v1/drug/info/${name}`).send({ error: `the drug's name is ${name}` })
    }
    const info = await slow('drug-info', () => DRUGS[name.replaceAll('-', ' ')])
    if (info === undefined) return await reply.code(404).send({ error: `no information on ${name}` })
    return { name, summary: info, updatedAt: DRUG_INFO_UPDATED }
  })

  app.get<{ Params: Static<typeof SessionParams> }>(ENDPOINTS.summaries.url, {
    config: { cache: { ttl: ENDPOINTS.summaries.ttl, tags: (request) => { const { sessionId } = request.params as { sessionId: string }; return [entryTag('summaries', sessionId), sessionTag(sessionId)] } } },
    schema: { params: SessionParams, querystring: NoQuery, response: { 200: Summary, 404: Problem } }
  }, async (request, reply) => {
    const { sessionId } = request.params
    const inputs = await lookup<SymptomInputList>(request, `symptoms:${sessionId}`)
    // Not cached (404 is not among the route's statuses): the session's first input makes one.
    if (inputs === undefined || inputs.length === 0) return await reply.code(404).send({ error: 'no symptom input in this session (send x-session-id with an analysis)' })
    return await slow('summaries', () => {
      const symptoms = normaliseAll(inputs.flatMap((input) => input.symptoms))
      const medications = normaliseAll(inputs.flatMap((input) => input.medications))
      return {
        sessionId,
        summary: `Reported ${symptoms.join(', ')}${medications.length === 0 ? '' : `; taking ${medications.join(', ')}`}.`,
        basedOn: inputs.length,
        summarisedAt: new Date().toISOString()
      }
    })
  })

  const token = process.env.MEDINSIGHT_OPS_TOKEN
  if (token === undefined || token === '') app.log.warn('MEDINSIGHT_OPS_TOKEN is not set: every /api/v1/cache request answers 401')
  await app.register(operations({ redis: options.redis, registry, token }), { prefix: '/api/v1/cache' })
  return app
}

/** A check of `authorization: Bearer <token>` in constant time; without a token every request is refused. */
function tokenCheck (token: string | undefined): (header: string | undefined) => boolean {
  if (token === undefined || token === '') return () => false
  const expected = createHash('sha256').update(token).digest()
  // Digests of equal length: the comparison takes as long whatever the header holds.
  return (header) => header !== undefined && timingSafeEqual(createHash('sha256').update(header).digest(), expected)
}

const EndpointName = Type.Union(ENDPOINT_NAMES.map((name) => Type.Literal(name)))
const EndpointParams = Type.Object({ endpoint: EndpointName })
const EntryParams = Type.Object({ endpoint: EndpointName, id: EntryId })
const unavailable = async (reply: FastifyReply): Promise<FastifyReply> => await reply.code(503).send({ error: 'the cache store cannot be asked now' })

/** Redis INFO figures the seed's /performance showed. */
const PERFORMANCE_FIELDS = [
  'redis_version', 'uptime_in_seconds', 'connected_clients', 'used_memory', 'used_memory_human', 'used_memory_peak_human',
  'mem_fragmentation_ratio', 'maxmemory', 'maxmemory_policy', 'instantaneous_ops_per_sec', 'total_commands_processed',
  'total_net_input_bytes', 'total_net_output_bytes', 'keyspace_hits', 'keyspace_misses', 'evicted_keys', 'expired_keys'
]
const INFO_TIMEOUT_MS = 1000

async function serverInfo (node: Redis): Promise<Record<string, string | number>> {
  let timer: NodeJS.Timeout | undefined
  const text = await Promise.race([
    node.info(),
    new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error('INFO timed out')) }, INFO_TIMEOUT_MS) })
  ]).finally(() => { clearTimeout(timer) })
  const fields = new Map(text.split(/\r?\n/).filter((line) => line.includes(':') && !line.startsWith('#')).map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]))
  return Object.fromEntries(PERFORMANCE_FIELDS.filter((name) => fields.has(name)).map((name) => {
    const value = fields.get(name) as string
    return [name, /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value]
  }))
}

/** What the seed's /api/v1/redis/* routes did, on the plugin: health, usage, performance, entries, sessions, invalidation. */
const operations = ({ redis, registry, token }: { redis: Redis | Cluster | undefined, registry: Registry, token: string | undefined }): FastifyPluginAsync => async (app) => {
  const allowed = tokenCheck(token)
  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.authorization
    if (allowed(header?.startsWith('Bearer ') === true ? header.slice(7) : undefined)) return
    await reply.code(401).send({ error: 'unauthorized: send authorization: Bearer <MEDINSIGHT_OPS_TOKEN>' })
  })

  app.get('/health', { schema: { querystring: NoQuery, response: { 200: CacheHealth, 503: CacheHealth } } }, async (_request, reply) => {
    const health = await app.cache.health()
    return await reply.code(health.ok ? 200 : 503).send(health)
  })

  // Requests and hits per endpoint: the plugin's own counters, not counters kept beside them. The
  // store's figures are fetched now (through the registry's metric), and only when it answers: a
  // store that is away has no figures, rather than the last ones it gave.
  app.get('/stats', { schema: { querystring: NoQuery, response: { 200: Stats } } }, async () => {
    const health = await app.cache.health()
    let store: Static<typeof Stats>['store'] = { name: health.store, state: health.state }
    if (health.ok) {
      await registry.getSingleMetric('response_cache_entries')?.get()
      const { entries, bytes, evictions } = app.cache.stats().store
      store = { ...store, entries, bytes, evictions, measuredAt: new Date().toISOString() }
    }
    const { routes, values } = app.cache.stats()
    const usage = Object.fromEntries(ENDPOINT_NAMES.map((endpoint) => {
      const c = routes[routeOf(endpoint)]
      const requests = c === undefined ? 0 : c.hits + c.stale + c.misses + c.bypasses
      return [endpoint, { requests, hits: c?.hits ?? 0, hitRatio: c?.hitRatio ?? 0, errors: c?.errors ?? 0 }]
    }))
    return { usage, values, store }
  })

  // The seed's /performance: the Redis server's own figures (INFO), which the plugin does not
  // gather; on the memory store, this process's and the cache's.
  app.get('/performance', { schema: { querystring: NoQuery, response: { 200: Performance, 503: Problem } } }, async (_request, reply) => {
    if (redis === undefined) {
      const memory = process.memoryUsage()
      const { entries, bytes, evictions } = app.cache.stats().store
      return { store: 'memory', process: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed }, cache: { entries, bytes, evictions } }
    }
    try {
      const nodes = redis.isCluster ? (redis as Cluster).nodes('master') : [redis as Redis]
      return { store: 'redis', servers: await Promise.all(nodes.map(serverInfo)) }
    } catch (error) {
      return await reply.code(503).send({ error: `Redis cannot be asked now: ${(error as Error).message}` })
    }
  })

  // The seed's GET /api/v1/redis/session/{id}: a session's values, each read from app.cache; the
  // server-timing header says which were there.
  app.get<{ Params: Static<typeof SessionParams> }>('/session/:sessionId', {
    schema: { params: SessionParams, querystring: NoQuery, response: { 200: SessionView, 404: Problem, 503: Problem } }
  }, async (request, reply) => {
    const { sessionId } = request.params
    const [session, symptomInputs, summary] = await Promise.all([
      app.cache.get(`session:${sessionId}`, { schema: Session }),
      app.cache.get(`symptoms:${sessionId}`, { schema: SymptomInputs }),
      app.cache.list({ tag: entryTag('summaries', sessionId), limit: 1 })
    ])
    const desc = (value: unknown): string => value === undefined ? 'miss' : 'hit'
    reply.header('server-timing', `cache;desc=${desc(session)}, session;desc=${desc(session)}, symptoms;desc=${desc(symptomInputs)}`)
    if (session === undefined) return await reply.code(404).send({ error: 'no such session (or it expired: sessions are kept 1 h)' })
    return { session, symptomInputs: symptomInputs ?? [], summaryCached: (summary?.entries.length ?? 0) > 0 }
  })

  // Drops a session: its values and its summary, all tagged with it.
  app.delete<{ Params: Static<typeof SessionParams> }>('/session/:sessionId', {
    schema: { params: SessionParams, querystring: NoQuery, response: { 200: Dropped, 503: Problem } }
  }, async (request, reply) => {
    const dropped = await app.cache.invalidate({ tags: [sessionTag(request.params.sessionId)] })
    return dropped === undefined ? await unavailable(reply) : { dropped }
  })

  app.get<{ Params: Static<typeof EndpointParams>, Querystring: Static<typeof EntriesQuery> }>('/entries/:endpoint', {
    schema: { params: EndpointParams, querystring: EntriesQuery, response: { 200: EntryPage, 400: Problem, 503: Problem } }
  }, async (request, reply) => {
    const { limit, cursor } = request.query
    try {
      const page = await app.cache.list({ route: routeOf(request.params.endpoint), limit: limit === undefined ? undefined : Number(limit), cursor })
      return page === undefined ? await unavailable(reply) : page
    } catch (error) {
      if (error instanceof errors.FST_RESPONSE_CACHE_INVALID_ARGUMENT) return await reply.code(400).send({ error: (error as Error).message })
      throw error
    }
  })

  app.delete<{ Params: Static<typeof EndpointParams> }>('/entries/:endpoint', {
    schema: { params: EndpointParams, querystring: NoQuery, response: { 200: Dropped, 503: Problem } }
  }, async (request, reply) => {
    const dropped = await app.cache.invalidate({ route: routeOf(request.params.endpoint) })
    return dropped === undefined ? await unavailable(reply) : { dropped }
  })

  // One entry: an analysis by the request hash its answer carries, drug info by the drug's name, a summary by its session.
  app.delete<{ Params: Static<typeof EntryParams> }>('/entries/:endpoint/:id', {
    schema: { params: EntryParams, querystring: NoQuery, response: { 200: Dropped, 503: Problem } }
  }, async (request, reply) => {
    const { endpoint, id } = request.params
    const dropped = await app.cache.invalidate({ tags: [entryTag(endpoint, endpoint === 'drug-info' ? urlName(id) : id)] })
    return dropped === undefined ? await unavailable(reply) : { dropped }
  })
}

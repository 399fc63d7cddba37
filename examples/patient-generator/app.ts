import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type onRequestHookHandler } from 'fastify'
import { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'
import { ReferenceFiles, type ReferenceName } from './reference-data.js'

// What each route takes and answers. Fastify checks requests against these (a bad one is a 400
// before any hook of the cache or the handler runs its work) and serialises answers with them.
const Strings = Type.Array(Type.String())
const Condition = Type.Object({ code: Type.String(), name: Type.String() })
export const Demographics = Type.Object({
  sexes: Type.Array(Type.Union([Type.Literal('female'), Type.Literal('male')])),
  firstNames: Type.Object({ female: Strings, male: Strings }),
  lastNames: Strings,
  ageBands: Type.Array(Type.Object({ min: Type.Integer(), max: Type.Integer(), weight: Type.Integer() })),
  cities: Strings
})
export const Conditions = Type.Object({ chronic: Type.Array(Condition), acute: Type.Array(Condition) })
const Patient = Type.Object({
  id: Type.String(),
  name: Type.String(),
  sex: Type.String(),
  age: Type.Integer(),
  city: Type.String(),
  conditions: Type.Array(Condition)
})
/** No query parameters: `?anything` is a 400, so it can neither make a new entry nor read the files. */
const NoQuery = Type.Object({}, { additionalProperties: false })
const Problem = Type.Object({ error: Type.String() })
const WarmFailure = Type.Object({ url: Type.String(), reason: Type.String() })
const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  cache: Type.Object({
    enabled: Type.Boolean(),
    ok: Type.Optional(Type.Boolean()),
    store: Type.Optional(Type.String()),
    state: Type.Optional(Type.String()),
    latencyMs: Type.Optional(Type.Number()),
    error: Type.Optional(Type.String())
  }),
  warm: Type.Object({
    runs: Type.Integer({ description: 'times the reference data was warmed since start' }),
    lastAt: Type.Optional(Type.String()),
    lastReason: Type.Optional(Type.String()),
    stored: Type.Array(Type.String()),
    failed: Type.Array(WarmFailure)
  })
})
const ReferenceParams = Type.Object({ name: Type.Union([Type.Literal('demographics'), Type.Literal('conditions')]) })

const REFERENCE: readonly ReferenceName[] = ['demographics', 'conditions']
/** The tag of the entries warmed for the public host: how the app sees whether the store still holds them. */
const WARMED = 'reference:public-host'

export interface PatientGeneratorOptions {
  /** Redis for the cache (`REDIS_URL`); without it, the cache lives in process memory. */
  redisUrl?: string
  /** Seconds the reference data stays cached (`CACHE_TTL`). @defaultValue 86400 */
  ttl?: number
  /** `CACHE_ENABLED=false`: no cache at all, the files are read on every request. @defaultValue true */
  enabled?: boolean
  /** The token `DELETE /cache/reference/:name` asks for (`PATIENT_GENERATOR_OPS_TOKEN`); without one it answers 401. */
  opsToken?: string
  /**
   * The host clients use (their `Host` header): entries are keyed by host, so warming fills the
   * entries of this one. Default `localhost:80`, what `inject` sends.
   */
  publicHost?: string
  /** How often the app checks that the store still holds the warmed entries, and warms them again if not. @defaultValue 10000 */
  checkEveryMs?: number
  /** Larger answers are served but not stored (the plugin's option). @defaultValue 1048576 */
  maxEntryBytes?: number
  /** Where the reference data is read from (slow). */
  files?: ReferenceFiles
  logger?: FastifyServerOptions['logger']
}

/** A guard comparing `authorization: Bearer <token>` with the token in constant time; without a token it refuses all. */
function bearerGuard (token: string | undefined): onRequestHookHandler {
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest()
  const expected = token === undefined || token === '' ? undefined : digest(token)
  return async (request, reply) => {
    const header = request.headers.authorization
    const given = header?.startsWith('Bearer ') === true ? header.slice(7) : undefined
    if (expected !== undefined && given !== undefined && timingSafeEqual(digest(given), expected)) return
    await reply.code(401).send({ error: 'unauthorized: send authorization: Bearer <PATIENT_GENERATOR_OPS_TOKEN>' })
  }
}

/**
 * Patients generated at random from static reference data. The reference routes are cached for
 * `ttl` and warmed before build() returns, and again whenever the store comes back without them (a
 * Redis restarted empty, flushed, or the entries expired); the patients themselves are never cached.
 */
export async function build (options: PatientGeneratorOptions = {}): Promise<FastifyInstance> {
  const { redisUrl, ttl = 86_400, enabled = true, opsToken, publicHost = 'localhost:80', checkEveryMs = 10_000, maxEntryBytes, files = new ReferenceFiles(), logger } = options
  // Query strings with parameters a route does not declare are refused (400), not stripped: each
  // query string is an entry of its own, so `?x=1`, `?x=2`... would each read the files.
  const app = Fastify({ logger, ajv: { customOptions: { removeAdditional: false } } })
  if (opsToken === undefined || opsToken === '') app.log.warn('PATIENT_GENERATOR_OPS_TOKEN is not set: DELETE /cache/reference/:name answers 401 to everyone')
  // Straight from new Redis(url): ready() waits for it, and the app starts without it if Redis is away.
  const redis = !enabled || redisUrl === undefined ? undefined : new Redis(redisUrl)
  if (redis !== undefined) {
    // ioredis reports each failed reconnect; the plugin already logs store trouble, rate-limited.
    redis.on('error', (error) => { app.log.debug({ err: error }, 'redis client error') })
    app.addHook('onClose', async () => { redis.disconnect() })
  }
  if (enabled) {
    await app.register(responseCache, { namespace: 'patients', ttl, ...(maxEntryBytes === undefined ? {} : { maxEntryBytes }), ...(redis === undefined ? {} : { store: 'redis', redis }) })
  } else {
    app.log.info('cache disabled (CACHE_ENABLED=false): the reference data is read from the files on every request')
  }

  // The entries warmed for the public host carry a tag, so the app can list them (app.cache.list) to
  // see they are still there. (With the cache disabled the plugin is not registered: config.cache is inert.)
  const cache = { cache: { tags: (request: { host: string }) => request.host === publicHost ? [WARMED] : [] } }
  for (const name of REFERENCE) {
    app.get(`/reference/${name}`, {
      config: cache,
      schema: { querystring: NoQuery, response: { 200: name === 'demographics' ? Demographics : Conditions } }
    }, async () => await files.read(name))
  }

  // The generator reads the reference data through its cached routes, so it shares their entries and their warming.
  const host = { host: publicHost }
  const reference = async <T>(name: ReferenceName): Promise<{ data: T, cache: string }> => {
    const response = await app.inject({ url: `/reference/${name}`, headers: host })
    return { data: response.json<T>(), cache: String(response.headers['x-cache'] ?? 'off').toLowerCase() }
  }

  app.get<{ Querystring: { count: number } }>('/patients', {
    schema: {
      querystring: Type.Object({ count: Type.Integer({ minimum: 1, maximum: 100, default: 1 }) }, { additionalProperties: false }),
      response: { 200: Type.Array(Patient) }
    }
  }, async (request, reply) => {
    const [demographics, conditions] = await Promise.all([
      reference<Static<typeof Demographics>>('demographics'),
      reference<Static<typeof Conditions>>('conditions')
    ])
    // Where the reference data came from, for anyone reading the headers: hit when both were cached answers.
    const results = [demographics.cache, conditions.cache]
    const overall = results.every((result) => result === 'hit') ? 'hit' : results.find((result) => result !== 'hit') as string
    reply.header('server-timing', `cache;desc=${overall}, demographics;desc=${demographics.cache}, conditions;desc=${conditions.cache}`)
    return Array.from({ length: request.query.count }, () => generatePatient(demographics.data, conditions.data))
  })

  // What warming did, for /health.
  const warmState: Static<typeof Health>['warm'] = { runs: 0, stored: [], failed: [] }
  /** Reference routes whose answer the store refuses (over maxEntryBytes): warming them again would only read the files. */
  const unstorable = new Set<string>()
  let warming: Promise<void> | undefined
  const warm = async (names: readonly ReferenceName[], reason: string): Promise<void> => {
    warming ??= (async () => {
      const report = await app.cache.warm(names.map((name) => ({ url: `/reference/${name}`, headers: host })))
      Object.assign(warmState, {
        runs: warmState.runs + 1,
        lastAt: new Date().toISOString(),
        lastReason: reason,
        stored: report.stored.map((done) => done.url),
        failed: report.failed.map((failure) => ({ url: failure.url, reason: failure.reason }))
      })
      for (const failure of report.failed) {
        if (failure.reason === 'too-large') unstorable.add(failure.url)
        app.log.warn({ url: failure.url, reason: failure.reason }, failure.reason === 'too-large'
          ? `reference data not warmed: larger than maxEntryBytes (${maxEntryBytes ?? 1_048_576} bytes), it is read from the files on every request`
          : 'reference data not warmed')
      }
      app.log.info({ stored: report.stored.length, failed: report.failed.length, reason }, 'reference data warmed')
    })().finally(() => { warming = undefined })
    await warming
  }

  /** Warms what the store lost: a Redis restarted empty or flushed, or entries past their TTL. */
  let checking: Promise<void> | undefined
  let closed = false
  const check = async (why: string): Promise<void> => {
    if (!enabled || closed || checking !== undefined) return
    checking = (async () => {
      if (!(await app.cache.health()).ok) return
      const page = await app.cache.list({ tag: WARMED, limit: 100 })
      if (page === undefined || closed) return
      const present = new Set(page.entries.map((entry) => entry.route))
      const missing = REFERENCE.filter((name) => !present.has(`GET /reference/${name}`) && !unstorable.has(`/reference/${name}`))
      if (missing.length > 0) await warm(missing, `${why}: the store did not hold ${missing.join(' and ')}`)
    })().catch((error: unknown) => { app.log.warn({ err: error }, 'checking the warmed reference data failed') }).finally(() => { checking = undefined })
    await checking
  }

  app.get('/health', { schema: { querystring: NoQuery, response: { 200: Health } } }, async () => {
    if (!enabled) return { status: 'ok', cache: { enabled: false }, warm: warmState }
    const cache = await app.cache.health()
    // Without the cache the service still answers (from the files): degraded, not down.
    return { status: cache.ok ? 'ok' : 'degraded', cache: { enabled: true, ...cache }, warm: warmState }
  })

  // The seed's invalidate_pattern('demographics:*'), over HTTP behind a token: drops the route's
  // entries (every host) and warms the public host's again, so the next client still gets a hit,
  // of the data as the files hold it now.
  app.delete<{ Params: Static<typeof ReferenceParams> }>('/cache/reference/:name', {
    onRequest: bearerGuard(opsToken),
    schema: {
      params: ReferenceParams,
      querystring: NoQuery,
      response: { 200: Type.Object({ dropped: Type.Integer(), warmed: Type.Boolean() }), 401: Problem, 409: Problem, 503: Problem }
    }
  }, async (request, reply) => {
    if (!enabled) return await reply.code(409).send({ error: 'the cache is disabled (CACHE_ENABLED=false): there is nothing to invalidate' })
    const { name } = request.params
    const dropped = await app.cache.invalidate({ route: `GET /reference/${name}` })
    if (dropped === undefined) return await reply.code(503).send({ error: 'the cache store cannot be asked now; nothing was dropped' })
    unstorable.delete(`/reference/${name}`)
    await warm([name], `invalidated over HTTP: ${name}`)
    return { dropped, warmed: warmState.stored.includes(`/reference/${name}`) }
  })

  let timer: NodeJS.Timeout | undefined
  app.addHook('onClose', async () => {
    closed = true
    clearInterval(timer)
    await checking
    await warming
  })

  await app.ready()
  if (enabled) {
    await warm(REFERENCE, 'start')
    // The store coming back (Redis restarted: ioredis's ready event) and, every checkEveryMs, the
    // entries being gone (flushed, evicted, expired) warm them again before a client misses them.
    redis?.on('ready', () => { check('redis connected').catch(() => {}) })
    timer = setInterval(() => { check('periodic check').catch(() => {}) }, checkEveryMs).unref()
  }
  return app
}

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]

function generatePatient (demographics: Static<typeof Demographics>, conditions: Static<typeof Conditions>): Static<typeof Patient> {
  const sex = pick(demographics.sexes)
  let draw = randomInt(demographics.ageBands.reduce((sum, band) => sum + band.weight, 0))
  const band = demographics.ageBands.find((candidate) => (draw -= candidate.weight) < 0) ?? demographics.ageBands[0]
  return {
    id: randomUUID(),
    name: `${pick(demographics.firstNames[sex])} ${pick(demographics.lastNames)}`,
    sex,
    age: band.min + randomInt(band.max - band.min + 1),
    city: pick(demographics.cities),
    conditions: [pick(conditions.chronic), pick(conditions.acute)].slice(0, randomInt(3))
  }
}

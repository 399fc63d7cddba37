import { randomInt, randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'
import { ReferenceFiles, type CONDITIONS, type DEMOGRAPHICS } from './reference-data.js'

const DAY = 86_400

export interface PatientGeneratorOptions {
  /** Redis for the cache (`REDIS_URL`); without it, the cache lives in process memory. */
  redisUrl?: string
  /**
   * The host clients use (their `Host` header): entries are keyed by host, so warming fills the
   * entries of this one. Default `localhost:80`, what `inject` sends.
   */
  publicHost?: string
  /** Where the reference data is read from (slow). */
  files?: ReferenceFiles
  logger?: FastifyServerOptions['logger']
}

/**
 * Patients generated at random from static reference data. The reference routes are cached for a day
 * and warmed before build() returns; the patients themselves are never cached (each call differs).
 */
export async function build ({ redisUrl, publicHost = 'localhost:80', files = new ReferenceFiles(), logger }: PatientGeneratorOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  // Straight from new Redis(url): ready() waits for it, and the app starts without it if Redis is away.
  const redis = redisUrl === undefined ? undefined : new Redis(redisUrl)
  if (redis !== undefined) {
    // ioredis reports each failed reconnect; the plugin already logs store trouble, rate-limited.
    redis.on('error', (error) => { app.log.debug({ err: error }, 'redis client error') })
    app.addHook('onClose', async () => { redis.disconnect() })
  }
  await app.register(responseCache, { namespace: 'patients', ttl: DAY, ...(redis === undefined ? {} : { store: 'redis', redis }) })

  app.get('/reference/demographics', { config: { cache: true } }, async () => await files.read('demographics'))
  app.get('/reference/conditions', { config: { cache: true } }, async () => await files.read('conditions'))

  // The generator reads the reference data through its cached routes, so it shares their entries and their warming.
  const host = { host: publicHost }
  const reference = async <T>(name: string): Promise<T> => (await app.inject({ url: `/reference/${name}`, headers: host })).json<T>()

  app.get<{ Querystring: { count?: number } }>('/patients', {
    schema: { querystring: { type: 'object', properties: { count: { type: 'integer', minimum: 1, maximum: 100, default: 1 } } } }
  }, async (request) => {
    const [demographics, conditions] = await Promise.all([
      reference<typeof DEMOGRAPHICS>('demographics'),
      reference<typeof CONDITIONS>('conditions')
    ])
    return Array.from({ length: request.query.count ?? 1 }, () => generatePatient(demographics, conditions))
  })

  app.get('/health', async () => {
    const cache = await app.cache.health()
    // Without the cache the service still answers (from the files): degraded, not down.
    return { status: cache.ok ? 'ok' : 'degraded', cache }
  })

  await app.ready()
  const warmed = await app.cache.warm(['/reference/demographics', '/reference/conditions'].map((url) => ({ url, headers: host })))
  app.log.info({ stored: warmed.stored.length, failed: warmed.failed }, 'reference data warmed')
  return app
}

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]

function generatePatient (demographics: typeof DEMOGRAPHICS, conditions: typeof CONDITIONS): object {
  const sex = pick(demographics.sexes) as keyof typeof DEMOGRAPHICS.firstNames
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

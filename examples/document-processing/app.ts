import { createHash } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import responseCache from '../../lib/index.js'
import { DocumentPipeline, EXTRACTION_FIELDS } from './pipeline.js'

const DAY = 86_400
const DOCUMENT_TYPES = ['application/pdf', 'application/octet-stream', 'image/png', 'image/jpeg', 'image/tiff']

export interface FrequentDocument { tenant: string, contentType: string, bytes: Buffer }

/** Documents every tenant receives again and again (blank forms, templates): processed before traffic. */
export const FREQUENT_DOCUMENTS: FrequentDocument[] = [
  { tenant: 'acme', contentType: 'application/pdf', bytes: Buffer.from('%PDF-1.7\nACME supplier invoice (template)\nInvoice number: TEMPLATE\nTotal: 0.00\n') },
  { tenant: 'globex', contentType: 'application/pdf', bytes: Buffer.from('%PDF-1.7\nGlobex intake form (blank)\nPatient: \nDate of service: \n') }
]

export interface DocumentProcessingOptions {
  /** Redis for the cache (`REDIS_URL`); without it, the cache lives in process memory. */
  redisUrl?: string
  /** The host clients use (their `Host` header): entries are keyed by host, so warming fills this one's. */
  publicHost?: string
  frequentDocuments?: FrequentDocument[]
  logger?: FastifyServerOptions['logger']
}

const tenantOf = (request: FastifyRequest): string | undefined => request.headers['x-tenant-id'] as string | undefined

/**
 * Upload a document's bytes as the body of POST /documents (the file name, if any, in a header): the
 * answer (OCR text and the tenant's extracted fields) is cached per tenant under the SHA-256 of the
 * bytes, so an identical upload is never processed twice, whatever it is called.
 */
export async function build ({ redisUrl, publicHost = 'localhost:80', frequentDocuments = FREQUENT_DOCUMENTS, logger }: DocumentProcessingOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  const registry = new Registry()
  const pipeline = new DocumentPipeline(registry)
  const redis = redisUrl === undefined ? undefined : new Redis(redisUrl)
  if (redis !== undefined) {
    // ioredis reports each failed reconnect; the plugin already logs store trouble, rate-limited.
    redis.on('error', (error) => { app.log.debug({ err: error }, 'redis client error') })
    app.addHook('onClose', async () => { redis.disconnect() })
  }
  await app.register(responseCache, {
    namespace: 'docs',
    tenant: tenantOf,
    registry,
    ...(redis === undefined ? {} : { store: 'redis', redis })
  })

  // A document arrives as the raw body: the plugin keys a Buffer body by its SHA-256.
  app.addContentTypeParser(DOCUMENT_TYPES, { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })

  app.post<{ Body: Buffer }>('/documents', {
    bodyLimit: 20 * 1024 * 1024,
    // Runs before the cache's own hooks: no tenant, no lookup. (In production the tenant comes from authentication.)
    onRequest: async (request, reply) => {
      const tenant = tenantOf(request)
      if (tenant === undefined || EXTRACTION_FIELDS[tenant] === undefined) await reply.code(401).send({ error: 'unknown tenant' })
    },
    // OCR results live 7 days in the seed, LLM extractions 30: one answer holds both, so it lives 7.
    config: { cache: { ttl: 7 * DAY } }
  }, async (request) => {
    const { pages, text } = await pipeline.ocr(request.body)
    const fields = await pipeline.extract(text, tenantOf(request) as string)
    const sha256 = createHash('sha256').update(request.body).digest('hex')
    return { sha256, pages, text, fields, processedAt: new Date().toISOString() }
  })

  app.get('/metrics', async (_request, reply) => await reply.type(registry.contentType).send(await registry.metrics()))

  await app.ready()
  const warmed = await app.cache.warm(frequentDocuments.map(({ tenant, contentType, bytes }) => ({
    method: 'POST' as const,
    url: '/documents',
    headers: { host: publicHost, 'content-type': contentType, 'x-tenant-id': tenant },
    body: bytes
  })))
  app.log.info({ stored: warmed.stored.length, failed: warmed.failed }, 'frequent documents warmed')
  return app
}

import { createHash } from 'node:crypto'
import { Kind, Type, TypeRegistry } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import responseCache from '../../lib/index.js'
import { adminGuard } from '../admin.js'
import { Backoffice } from './backoffice.js'
import { ENVIRONMENTS, type Environment } from './config.js'
import { DocumentPipeline, EXTRACTION_FIELDS } from './pipeline.js'
import { validateWithTypeBox } from '../validation.js'
import { lookup, tellLookups } from '../value-lookup.js'

/** What `POST /documents` takes: the document's bytes under one of these types. */
export const DOCUMENT_TYPES = ['application/pdf', 'application/octet-stream', 'image/png', 'image/jpeg', 'image/tiff', 'text/plain']

export interface FrequentDocument { tenant: string, contentType: string, bytes: Buffer }

/** Documents every tenant receives again and again (blank forms, templates): processed before traffic. */
export const FREQUENT_DOCUMENTS: FrequentDocument[] = [
  { tenant: 'acme', contentType: 'application/pdf', bytes: Buffer.from('%PDF-1.7\nACME supplier invoice (template)\nInvoice number: TEMPLATE\nTotal: 0.00\n') },
  { tenant: 'globex', contentType: 'application/pdf', bytes: Buffer.from('%PDF-1.7\nGlobex intake form (blank)\nPatient: \nDate of service: \n') }
]

/**
 * The key that seals what the cache writes to Redis when CACHE_ENCRYPTION_KEY is not set: anyone
 * with this code has it, so it protects nothing. Development and staging start with it and warn;
 * production refuses to.
 */
export const DEV_ENCRYPTION_KEY = { id: 'dev', key: createHash('sha256').update('document-processing development key').digest() }

export interface DocumentProcessingOptions {
  /** Redis for the cache (`REDIS_URL`); without it, the cache lives in process memory. */
  redisUrl?: string
  /** The host clients use (their `Host` header): entries are keyed by host, so warming fills this one's. */
  publicHost?: string
  frequentDocuments?: FrequentDocument[]
  /** `APP_ENV`: TTLs, log level and the entry bound (config.ts). @defaultValue 'development' */
  environment?: Environment
  /** `CACHE_ENCRYPTION_KEY`: 32 bytes as 64 hex digits or base64; its id in `CACHE_ENCRYPTION_KEY_ID` (default `k1`). */
  encryptionKey?: string
  encryptionKeyId?: string
  /** The bearer token of the operations routes (`ADMIN_TOKEN`); without one they answer 401. */
  adminToken?: string
  /** Overrides the environment's bound (tests). */
  maxEntryBytes?: number
  pipelineDelays?: { ocrMs: number, extractionMs: number }
  backoffice?: Backoffice
  logger?: FastifyServerOptions['logger']
  /** Called once the server listens, with its port (server.ts prints its listen line there: build() makes the app ready, after which no hook can be added). */
  onListen?: (port: number) => void
}

const Tenant = Type.String({ pattern: '^[a-z0-9-]{1,32}$' })
const UserId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })
const Problem = Type.Object({ error: Type.String(), message: Type.Optional(Type.String()), statusCode: Type.Optional(Type.Integer()), code: Type.Optional(Type.String()) })
const NoQuery = Type.Object({}, { additionalProperties: false })
const TenantHeaders = Type.Object({ 'x-tenant-id': Tenant })
const UserHeaders = Type.Object({ 'x-tenant-id': Tenant, 'x-user-id': UserId })
const Answer = Type.Object({ sha256: Type.String(), pages: Type.Integer(), text: Type.String(), fields: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()])), processedAt: Type.String() })
// A document body is bytes, which JSON Schema cannot describe: a TypeBox kind of its own, checked by TypeBox.
TypeRegistry.Set('Bytes', (_schema, value) => value instanceof Uint8Array && value.length > 0)
const Bytes = Type.Unsafe<Buffer>({ [Kind]: 'Bytes', description: 'the document, as its bytes' })

const badRequest = (message: string): Error => Object.assign(new Error(message), { statusCode: 400 })

/** The event-driven invalidation rules (the seed's CacheInvalidationRule): what each drops. */
export const RULES = {
  /** Run by the app after each document it processes: the tenant's lists, dashboards and billing changed. */
  'document-processed': (tenant?: string) => ({ tags: ['documents', 'dashboard', 'billing'], tenant }),
  /** A tenant's extraction prompt changed: its processed documents are processed again on their next upload. */
  'extraction-changed': (tenant?: string) => ({ route: 'POST /documents', tenant }),
  'billing-recalculated': (tenant?: string) => ({ tags: ['billing'], tenant }),
  /** Reference tables are shared by every tenant: dropped for all. */
  'reference-updated': () => ({ tags: ['reference'] })
} satisfies Record<string, (tenant?: string) => { tags?: string[], route?: string, tenant?: string }>
const TENANT_RULES = new Set(['document-processed', 'extraction-changed', 'billing-recalculated'])

const tenantHeader = (request: FastifyRequest): string | undefined => request.headers['x-tenant-id'] as string | undefined
// Reference data is the same for every tenant: one entry for all of them.
const tenantOf = (request: FastifyRequest): string | undefined => request.routeOptions.url?.startsWith('/reference/') === true ? undefined : tenantHeader(request)

/** Runs before the cache's own hooks: no known tenant, no lookup. (In production the tenant comes from authentication.) */
async function requireTenant (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const tenant = tenantHeader(request)
  if (tenant === undefined || EXTRACTION_FIELDS[tenant] === undefined) await reply.code(401).send({ error: 'unknown tenant' })
}

/**
 * Upload a document's bytes as the body of POST /documents (the file name, if any, in a header): the
 * answer (OCR text and the tenant's extracted fields) is cached per tenant under the SHA-256 of the
 * bytes, so an identical upload is never processed twice, whatever it is called or typed as. Around
 * it, the seed's other caches: sessions (a value), the API's document list, dashboards, billing and
 * reference data (routes), with invalidation by rule, user, tag, tenant and all, and entries sealed
 * in Redis.
 */
export async function build (options: DocumentProcessingOptions = {}): Promise<FastifyInstance> {
  const config = ENVIRONMENTS[options.environment ?? 'development']
  const app = Fastify({ logger: options.logger })
  validateWithTypeBox(app)
  const guard = adminGuard(options.adminToken, app.log)
  const registry = new Registry()
  const pipeline = new DocumentPipeline(registry, options.pipelineDelays)
  const backoffice = options.backoffice ?? new Backoffice()
  const { publicHost = 'localhost:80', frequentDocuments = FREQUENT_DOCUMENTS } = options
  const maxEntryBytes = options.maxEntryBytes ?? config.maxEntryBytes

  const key = options.encryptionKey === undefined || options.encryptionKey === '' ? undefined : options.encryptionKey
  if (key === undefined && config.requireEncryptionKey) {
    throw new Error('CACHE_ENCRYPTION_KEY is required in production (32 bytes: 64 hex digits or base64): cached documents hold health data')
  }
  const encryptionKey = key === undefined ? DEV_ENCRYPTION_KEY : { id: options.encryptionKeyId ?? 'k1', key }
  if (key === undefined) app.log.warn('CACHE_ENCRYPTION_KEY is not set: entries in Redis are sealed with the built-in development key, which protects nothing')

  const redis = options.redisUrl === undefined ? undefined : new Redis(options.redisUrl)
  if (redis !== undefined) {
    // ioredis reports each failed reconnect; the plugin already logs store trouble, rate-limited.
    redis.on('error', (error) => { app.log.debug({ err: error }, 'redis client error') })
    app.addHook('onClose', async () => { redis.disconnect() })
  }
  await app.register(responseCache, {
    namespace: 'docs',
    tenant: tenantOf,
    registry,
    maxEntryBytes,
    // Documents and extracted fields hold health and billing data: sealed with AES-256-GCM in Redis
    // (the memory store never lets them leave the process, and ignores it).
    encryption: { keys: [encryptionKey] },
    ...(redis === undefined ? {} : { store: 'redis', redis })
  })

  await app.register(async (documents) => {
    // The body is the document's bytes, whatever their type: text/plain too, so the same bytes
    // sent as text and as a file are one Buffer, keyed by one SHA-256. Anything else (JSON, a form,
    // multipart) is refused here, before the cache or the pipeline sees it.
    documents.removeAllContentTypeParsers()
    documents.addContentTypeParser(DOCUMENT_TYPES, { parseAs: 'buffer' }, (_request, body, done) => {
      if ((body as Buffer).length === 0) done(badRequest('the document is empty'))
      else done(null, body)
    })
    documents.addContentTypeParser('*', (request, _payload, done) => {
      done(badRequest(`POST /documents takes the document's bytes as ${DOCUMENT_TYPES.join(', ')}; not ${request.headers['content-type'] ?? 'a body without content-type'}`))
    })

    documents.post('/documents', {
      bodyLimit: 20 * 1024 * 1024,
      onRequest: requireTenant,
      schema: {
        querystring: NoQuery,
        headers: Type.Object({ 'x-tenant-id': Tenant, 'x-user-id': Type.Optional(UserId), 'x-file-name': Type.Optional(Type.String({ maxLength: 255 })) }),
        body: Bytes,
        response: { 200: Answer, 400: Problem, 401: Problem }
      },
      // The seed kept OCR results 7 days and extractions 30: one answer holds both, so it lives 7.
      config: { cache: { ttl: config.ttl.document } },
      // The plugin's own word for an answer it did not store is at debug (`too-large`); this says it
      // at warn, since every upload of such a document runs OCR again.
      onSend: async (request, _reply, payload) => {
        const bytes = typeof payload === 'string' ? Buffer.byteLength(payload) : Buffer.isBuffer(payload) ? payload.length : 0
        if (bytes > maxEntryBytes) request.log.warn({ bytes, maxEntryBytes }, 'document answer too large to cache (maxEntryBytes): every upload of this document runs OCR again')
        return payload
      }
    }, async (request, reply) => {
      const tenant = tenantHeader(request) as string
      const { pages, text } = await pipeline.ocr(request.body as Buffer)
      const fields = await pipeline.extract(text, tenant)
      const sha256 = createHash('sha256').update(request.body as Buffer).digest('hex')
      reply.cacheTags(`doc:${sha256}`)
      const processedAt = new Date().toISOString()
      backoffice.record(tenant, { sha256, pages, userId: request.headers['x-user-id'] as string | undefined, processedAt })
      await app.cache.invalidate(RULES['document-processed'](tenant))
      return { sha256, pages, text, fields, processedAt }
    })

    // The API response cache (5 min): the tenant's processed documents.
    documents.get('/documents', {
      onRequest: requireTenant,
      schema: { querystring: NoQuery, headers: TenantHeaders, response: { 200: Type.Array(Type.Object({ sha256: Type.String(), pages: Type.Integer(), processedAt: Type.String() })), 400: Problem, 401: Problem } },
      config: { cache: { ttl: config.ttl.api, tags: ['documents'] } }
    }, async (request) => (await backoffice.documents(tenantHeader(request) as string)).map(({ sha256, pages, processedAt }) => ({ sha256, pages, processedAt })))
  })

  // Dashboards (10 min), per user of a tenant: x-user-id is in the key (`vary`).
  app.get('/dashboard', {
    onRequest: requireTenant,
    schema: { querystring: NoQuery, headers: UserHeaders, response: { 200: Type.Object({ documents: Type.Integer(), pages: Type.Integer(), mine: Type.Integer() }), 400: Problem, 401: Problem } },
    config: { cache: { ttl: config.ttl.dashboard, vary: ['x-user-id'], tags: (request) => ['dashboard', `user:${String(request.headers['x-user-id'])}`] } }
  }, async (request) => await backoffice.dashboard(tenantHeader(request) as string, request.headers['x-user-id'] as string))

  // Billing (1 h), per tenant.
  app.get('/billing', {
    onRequest: requireTenant,
    schema: { querystring: NoQuery, headers: TenantHeaders, response: { 200: Type.Object({ pages: Type.Integer(), amount: Type.Number(), currency: Type.String() }), 400: Problem, 401: Problem } },
    config: { cache: { ttl: config.ttl.billing, tags: ['billing'] } }
  }, async (request) => await backoffice.billing(tenantHeader(request) as string))

  // Reference data (24 h), one entry for every tenant.
  app.get('/reference/:table', {
    schema: { params: Type.Object({ table: Type.Union([Type.Literal('document-types'), Type.Literal('countries')]) }), querystring: NoQuery, response: { 200: Type.Array(Type.String()), 400: Problem } },
    config: { cache: { ttl: config.ttl.reference, tags: ['reference'] } }
  }, async (request) => await backoffice.reference((request.params as { table: 'document-types' | 'countries' }).table))

  // The session cache (24 h): a value, per tenant, tagged with its user.
  app.get('/session', {
    onRequest: requireTenant,
    schema: { querystring: NoQuery, headers: UserHeaders, response: { 200: Type.Object({ userId: Type.String(), tenant: Type.String(), roles: Type.Array(Type.String()), signedInAt: Type.String() }), 400: Problem, 401: Problem } }
  }, async (request, reply) => {
    const tenant = tenantHeader(request) as string
    const userId = request.headers['x-user-id'] as string
    const found = await lookup(app.cache, `session:${userId}`, async () => await backoffice.session(tenant, userId), { tenant, ttl: config.ttl.session, tags: [`user:${userId}`] })
    tellLookups(reply, [['session', found]])
    return found.value
  })

  app.get('/metrics', async (_request, reply) => await reply.type(registry.contentType).send(await registry.metrics()))

  // 200 while Redis is down too: documents are processed without the cache, only slower.
  app.get('/health', {
    schema: {
      response: {
        200: Type.Object({
          status: Type.String(),
          environment: Type.String(),
          cache: Type.Object({ ok: Type.Boolean(), store: Type.String(), state: Type.String(), latencyMs: Type.Optional(Type.Number()), error: Type.Optional(Type.String()) }),
          encryption: Type.Object({ sealed: Type.Boolean(), keyId: Type.String(), developmentKey: Type.Boolean() }),
          maxEntryBytes: Type.Integer()
        })
      }
    }
  }, async () => ({
    status: 'ok',
    environment: config.environment,
    cache: await app.cache.health(),
    encryption: { sealed: redis !== undefined, keyId: encryptionKey.id, developmentKey: key === undefined },
    maxEntryBytes
  }))

  // Operations, behind ADMIN_TOKEN: invalidation by rule, by user, by tag, by tenant, and clear.
  const Dropped = Type.Object({ dropped: Type.Integer() })
  const opsResponse = { 200: Dropped, 400: Problem, 401: Problem, 503: Problem }
  const dropped = async (reply: FastifyReply, count: number | undefined): Promise<unknown> =>
    count === undefined ? await reply.code(503).send({ error: 'the cache could not be asked; nothing was dropped' }) : { dropped: count }
  app.post('/cache/rules/:rule', {
    onRequest: guard,
    schema: {
      params: Type.Object({ rule: Type.Union(Object.keys(RULES).map((rule) => Type.Literal(rule))) }),
      body: Type.Object({ tenant: Type.Optional(Tenant) }, { additionalProperties: false }),
      response: opsResponse
    }
  }, async (request, reply) => {
    const { rule } = request.params as { rule: keyof typeof RULES }
    const { tenant } = request.body as { tenant?: string }
    if (TENANT_RULES.has(rule) && tenant === undefined) return await reply.code(400).send({ error: 'Bad Request', message: `body/tenant Expected required property (rule ${rule} is per tenant)` })
    return await dropped(reply, await app.cache.invalidate(RULES[rule](tenant)))
  })
  const TenantQuery = Type.Object({ tenant: Type.Optional(Tenant) }, { additionalProperties: false })
  app.delete('/cache/users/:userId', { onRequest: guard, schema: { params: Type.Object({ userId: UserId }), querystring: Type.Object({ tenant: Tenant }, { additionalProperties: false }), response: opsResponse } }, async (request, reply) => {
    return await dropped(reply, await app.cache.invalidate({ tags: [`user:${(request.params as { userId: string }).userId}`], tenant: (request.query as { tenant: string }).tenant }))
  })
  app.delete('/cache/tags/:tag', { onRequest: guard, schema: { params: Type.Object({ tag: Type.String({ pattern: '^[A-Za-z0-9:_-]{1,128}$' }) }), querystring: TenantQuery, response: opsResponse } }, async (request, reply) => {
    const { tenant } = request.query as { tenant?: string }
    return await dropped(reply, await app.cache.invalidate({ tags: [(request.params as { tag: string }).tag], ...(tenant === undefined ? {} : { tenant }) }))
  })
  app.delete('/cache/tenants/:tenant', { onRequest: guard, schema: { params: Type.Object({ tenant: Tenant }), response: opsResponse } }, async (request, reply) => {
    return await dropped(reply, await app.cache.invalidate({ tenant: (request.params as { tenant: string }).tenant }))
  })
  app.delete('/cache', { onRequest: guard, schema: { response: { 204: Type.Null(), 401: Problem, 503: Problem } } }, async (request, reply) => {
    try {
      await app.cache.clear()
    } catch (error) {
      request.log.warn({ err: error }, 'the cache could not be cleared')
      return await reply.code(503).send({ error: 'the cache could not be cleared' })
    }
    return await reply.code(204).send()
  })

  const { onListen } = options
  if (onListen !== undefined) {
    app.addHook('onListen', async () => {
      const bound = app.server.address()
      onListen(typeof bound === 'object' && bound !== null ? bound.port : 0)
    })
  }
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

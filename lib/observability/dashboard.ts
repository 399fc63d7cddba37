import { Type, type Static } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, onRequestHookHandler } from 'fastify'
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_ICON, DASHBOARD_JS } from './dashboard-assets.js'

const listQuery = Type.Object({
  route: Type.Optional(Type.String({ minLength: 1 })),
  tag: Type.Optional(Type.String({ minLength: 1 })),
  tenant: Type.Optional(Type.String({ minLength: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  cursor: Type.Optional(Type.String({ minLength: 1 }))
}, { additionalProperties: false })

const invalidateBody = Type.Object({
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 64 })),
  route: Type.Optional(Type.String({ minLength: 1 })),
  tenant: Type.Optional(Type.String({ minLength: 1 }))
}, { additionalProperties: false, minProperties: 1 })

const invalidateAnswer = Type.Object({ dropped: Type.Integer() })

/** A wrong selector or cursor is the caller's mistake; a store without `list` cannot answer. */
function statusOf (error: unknown): number {
  const code = (error as { code?: string } | undefined)?.code
  if (code === 'FST_RESPONSE_CACHE_INVALID_ARGUMENT') return 400
  if (code === 'FST_RESPONSE_CACHE_NOT_SUPPORTED') return 501
  return 500
}

async function storeAway (reply: FastifyReply): Promise<FastifyReply> {
  return await reply.code(503).send({ error: 'Service Unavailable', message: 'the store could not be asked' })
}

/**
 * The dashboard's routes under the stats path, each behind the stats route's guard: the page, its
 * script, style and icon (separate, for a strict Content-Security-Policy), a page of entries through
 * app.cache.list, and invalidation through app.cache.invalidate (POST, JSON only: a cross-site form
 * cannot send it).
 */
export function addDashboard (app: FastifyInstance, path: string, onRequest: onRequestHookHandler[]): void {
  const asset = (suffix: string, type: string, body: string): void => {
    app.get(`${path}/${suffix}`, { onRequest }, async (_request, reply) => {
      return await reply.type(type).header('cache-control', 'no-store').send(body)
    })
  }
  asset('dashboard', 'text/html; charset=utf-8', DASHBOARD_HTML)
  asset('dashboard.js', 'text/javascript; charset=utf-8', DASHBOARD_JS)
  asset('dashboard.css', 'text/css; charset=utf-8', DASHBOARD_CSS)
  asset('dashboard.svg', 'image/svg+xml', DASHBOARD_ICON)

  app.get<{ Querystring: Static<typeof listQuery> }>(`${path}/entries`, { onRequest, schema: { querystring: listQuery } }, async (request, reply) => {
    try {
      const page = await app.cache.list(request.query)
      if (page === undefined) return await storeAway(reply)
      return page
    } catch (error) {
      return await reply.code(statusOf(error)).send({ error: (error as Error).name, message: (error as Error).message })
    }
  })

  app.post<{ Body: Static<typeof invalidateBody> }>(`${path}/invalidate`, {
    onRequest,
    schema: { body: invalidateBody, response: { 200: invalidateAnswer } }
  }, async (request, reply) => {
    const { tags, route, tenant } = request.body
    let dropped: number | undefined
    try {
      dropped = await app.cache.invalidate({ tags, route, tenant })
    } catch (error) {
      return await reply.code(statusOf(error)).send({ error: (error as Error).name, message: (error as Error).message })
    }
    // Who dropped what is worth a line: the route and how many tags, never the tags or the tenant.
    request.log.info({ responseCache: { invalidated: { route, tags: tags?.length ?? 0, tenant: tenant !== undefined, dropped } } }, 'response cache: invalidated from the dashboard')
    if (dropped === undefined) return await storeAway(reply)
    return { dropped }
  })
}

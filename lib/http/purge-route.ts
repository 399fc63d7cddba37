import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { rawPath, tenantOf } from '../key.js'
import type { ResolvedOptions, ResolvedPurgeRoute } from '../options.js'
import { MAX_TAG_BYTES, pathGroup, type PurgeSelector } from '../tags.js'

const purgeBody = Type.Object({
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: MAX_TAG_BYTES }), { maxItems: 1000 })),
  routes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 2048 }), { maxItems: 100 })),
  urls: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 8192 }), { maxItems: 1000 })),
  tenant: Type.Optional(Type.String({ minLength: 1 })),
  soft: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

/**
 * The body checked as it came: Fastify's default validator would drop an unknown field (`tag` for
 * `tags`, leaving `tenant` alone to purge the whole tenant) and coerce `soft: 1` to true.
 */
const purgeBodyCheck = TypeCompiler.Compile(purgeBody)
const validateBody = (): ((data: unknown) => { value?: unknown, error?: Error }) => (data) => {
  if (purgeBodyCheck.Check(data)) return { value: data }
  const first = purgeBodyCheck.Errors(data).First()
  return { error: new Error(`body${first?.path ?? ''} ${first?.message ?? 'is not valid'}`) }
}

const purgeAnswer = Type.Object({ purged: Type.Integer(), soft: Type.Boolean() })

type Purge = (what: PurgeSelector) => Promise<number | undefined>

/**
 * The host-and-path groups (tags.ts pathGroup) of a URL to purge: a path (`/items/1?x`, on the purge
 * request's own host) or an absolute http(s) URL; undefined for anything else. The query is not part
 * of the group: every query of the path is purged, as a write to the path drops them all.
 */
function urlGroups (request: FastifyRequest, url: string): string[] | undefined {
  if (url.startsWith('/')) return [pathGroup(request.host, rawPath(url.split('#')[0]))]
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined
  // Entries are grouped by the Host clients sent, which may spell out the default port the URL leaves out.
  const hosts = parsed.port === '' ? [parsed.host, `${parsed.host}:${parsed.protocol === 'http:' ? 80 : 443}`] : [parsed.host]
  return hosts.map((host) => pathGroup(host, parsed.pathname))
}

const refuse = async (reply: FastifyReply, status: 400 | 403, message: string): Promise<FastifyReply> =>
  await reply.code(status).header('cache-control', 'no-store').send({ error: status === 400 ? 'Bad Request' : 'Forbidden', message })

/**
 * `purgeRoute`: `POST <path>` with `{ tags, routes, urls, tenant, soft }`, and with `purgeMethod`
 * `PURGE <any url>`, each behind the route's guard; both answer `{ purged, soft }`. A request the
 * `tenant` option gives a tenant purges that tenant's entries only.
 */
export function addPurgeRoutes (app: FastifyInstance, route: ResolvedPurgeRoute, options: ResolvedOptions, purge: Purge): void {
  const { path, onRequest } = route
  const schema = { response: { 200: purgeAnswer } }

  const answer = async (request: FastifyRequest, reply: FastifyReply, what: PurgeSelector & { urls?: number }, given: string | undefined): Promise<unknown> => {
    let own: string | undefined
    try {
      own = tenantOf(options, request)
    } catch {
      return await refuse(reply, 400, 'the tenant function answered no tenant id for this request')
    }
    // A tenant's own request never reaches another tenant's entries, whatever its body says.
    if (own !== undefined && given !== undefined && given !== own) return await refuse(reply, 403, 'a request of one tenant purges that tenant\'s entries only')
    const tenant = own ?? given
    let purged: number | undefined
    try {
      purged = await purge({ ...what, tenant })
    } catch (error) {
      // A tag over its bound in UTF-8 bytes (the schema counts characters): no entry can have it.
      return await refuse(reply, 400, (error as Error).message)
    }
    const soft = what.soft === true
    // Who purged what is worth a line: how many of each selector, never the tags, URLs or tenant.
    request.log.info({ responseCache: { purge: { tags: what.tags?.length ?? 0, routes: what.routes?.length ?? 0, urls: what.urls ?? 0, tenant: tenant !== undefined, soft, purged } } }, 'response cache: purged')
    reply.header('cache-control', 'no-store')
    if (purged === undefined) return await reply.code(503).send({ error: 'Service Unavailable', message: 'the cache store could not be asked: nothing was purged' })
    return { purged, soft }
  }

  app.post<{ Body: Static<typeof purgeBody> }>(path, { onRequest, schema: { ...schema, body: purgeBody }, validatorCompiler: validateBody }, async (request, reply) => {
    const { tags, routes, urls, tenant, soft } = request.body
    const groups: string[] = []
    for (const url of urls ?? []) {
      const found = urlGroups(request, url)
      if (found === undefined) return await refuse(reply, 400, 'body/urls: expected paths ("/items/1") or absolute http(s) URLs')
      groups.push(...found)
    }
    return await answer(request, reply, { tags, routes, groups: urls === undefined ? undefined : groups, urls: urls?.length, soft }, tenant)
  })

  if (route.purgeMethod) {
    if (!app.supportedMethods.includes('PURGE')) app.addHttpMethod('PURGE')
    app.route({
      method: 'PURGE',
      url: '/*',
      onRequest,
      schema,
      // Fastly's header asks for a soft purge of the URL.
      handler: async (request, reply) => await answer(request, reply, {
        groups: [pathGroup(request.host, rawPath(request.url))],
        urls: 1,
        soft: request.headers['fastly-soft-purge'] === '1'
      }, undefined)
    })
  }
}

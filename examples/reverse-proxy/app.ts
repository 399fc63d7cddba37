import replyFrom from '@fastify/reply-from'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type onRequestHookHandler } from 'fastify'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'

export interface ReverseProxyOptions {
  /** The origin every request is forwarded to: `http://127.0.0.1:8080`. */
  upstream: string
  /** A client from `new Redis(url)`: one cache shared by every proxy instance. Memory without it. */
  redis?: Redis
  logger?: FastifyServerOptions['logger']
  /**
   * Turns on `PURGE <url>` and `POST /cache/purge` for requests with `Authorization: Bearer <token>`.
   * Without it neither exists.
   */
  purgeToken?: string
}

/** Refuses (401) a request without `Authorization: Bearer <token>`, compared in constant time. */
function bearer (token: string): onRequestHookHandler {
  const digest = (value: string): Buffer => createHash('sha256').update(value).digest()
  const expected = digest(`Bearer ${token}`)
  return async (request, reply) => {
    const given = request.headers.authorization
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'Unauthorized' })
    }
  }
}

/** A caching reverse proxy: every request forwarded to `upstream`; GET and HEAD answered from the cache while the origin's headers say they are fresh. */
export async function build ({ upstream, redis, logger = false, purgeToken }: ReverseProxyOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  await app.register(replyFrom, { base: upstream })
  // Origin mode: Cache-Control (or CDN-Cache-Control), Expires, Date and Age decide, as in a shared
  // HTTP cache, for any status but 206, 304 and the errors a request causes itself (400, 413, 431...);
  // an answer with no freshness of its own is passed on and not stored; a stale one with an ETag or
  // Last-Modified is revalidated with the origin. Requests with If-Match, If-Unmodified-Since,
  // If-Range or a method override (which many origins honour) go to the origin and are not stored.
  // surrogateKeys: the origin's `Surrogate-Key` (Fastly) and `Cache-Tag` (Cloudflare) headers tag the
  // stored answer and are not passed on to clients. With a token, `PURGE <url>` drops a URL's entries
  // and `POST /cache/purge` drops by tag, route or URL, as a Varnish or Fastly operator would.
  await app.register(responseCache, {
    ttl: 'origin',
    surrogateKeys: true,
    ...(purgeToken === undefined ? {} : { purgeRoute: { onRequest: bearer(purgeToken), purgeMethod: true } }),
    ...(redis === undefined ? {} : { store: 'redis', redis })
  })

  // A 503 goes back as the origin sent it: reply-from would otherwise ask again up to ten times,
  // which an origin that is already struggling does not need.
  const forward = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => await reply.from(undefined, { retryDelay: () => null })

  // The proxied routes in a context of their own: their request bodies go upstream as they came,
  // whatever their type (nothing is parsed there), while the purge route keeps Fastify's JSON parser.
  await app.register(async (proxy) => {
    proxy.removeAllContentTypeParsers()
    proxy.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
    // GET, and the HEAD Fastify adds for it, from the cache. The origin's own `Vary` (usually
    // Accept-Encoding) selects the variant each request gets: nothing to key here.
    proxy.get('/*', { config: { cache: true } }, forward)
    // Every other method is forwarded. A 2xx or 3xx answer to one not known to be safe (POST, PUT,
    // PATCH, DELETE...) drops the cached GET and HEAD of its path and of its Location: the plugin does
    // that on any route, with no configuration. PURGE is the cache's own (with a token): never forwarded.
    proxy.route({ method: proxy.supportedMethods.filter((method) => method !== 'GET' && method !== 'HEAD' && method !== 'PURGE'), url: '/*', handler: forward })
  })
  return app
}

import replyFrom from '@fastify/reply-from'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'

export interface ReverseProxyOptions {
  /** The origin every request is forwarded to: `http://127.0.0.1:8080`. */
  upstream: string
  /** A client from `new Redis(url)`: one cache shared by every proxy instance. Memory without it. */
  redis?: Redis
  logger?: FastifyServerOptions['logger']
}

/** A caching reverse proxy: every request forwarded to `upstream`; GET and HEAD answered from the cache while the origin's headers say they are fresh. */
export async function build ({ upstream, redis, logger = false }: ReverseProxyOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  await app.register(replyFrom, { base: upstream })
  // Origin mode: Cache-Control (or CDN-Cache-Control), Expires, Date and Age decide, as in a shared
  // HTTP cache, for any status but 206, 304 and the errors a request causes itself (400, 413, 431...);
  // an answer with no freshness of its own is passed on and not stored; a stale one with an ETag or
  // Last-Modified is revalidated with the origin. Requests with If-Match, If-Unmodified-Since,
  // If-Range or a method override (which many origins honour) go to the origin and are not stored.
  await app.register(responseCache, { ttl: 'origin', ...(redis === undefined ? {} : { store: 'redis', redis }) })

  // Request bodies go upstream as they came, whatever their type: nothing is parsed here.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })

  // A 503 goes back as the origin sent it: reply-from would otherwise ask again up to ten times,
  // which an origin that is already struggling does not need.
  const forward = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => await reply.from(undefined, { retryDelay: () => null })

  // GET, and the HEAD Fastify adds for it, from the cache. The origin's own `Vary` (usually
  // Accept-Encoding) selects the variant each request gets: nothing to key here.
  app.get('/*', { config: { cache: true } }, forward)
  // Every other method is forwarded. A 2xx or 3xx answer to one not known to be safe (POST, PUT,
  // PATCH, DELETE...) drops the cached GET and HEAD of its path and of its Location: the plugin does
  // that on any route, with no configuration.
  app.route({ method: app.supportedMethods.filter((method) => method !== 'GET' && method !== 'HEAD'), url: '/*', handler: forward })
  return app
}

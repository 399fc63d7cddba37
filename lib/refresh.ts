import type { FastifyInstance, FastifyRequest, InjectOptions } from 'fastify'
import { IncomingMessage } from 'node:http'

/** Request headers that describe the client's connection or its own copy, not the resource. */
const NOT_REPLAYED = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'expect', 'upgrade',
  'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range'
])

const kRefreshOf = Symbol('fastify-response-cache.refreshOf')

/**
 * Background refreshes for stale-while-revalidate: at most one per key at a time, run by injecting
 * the request again. The injected request is marked on its raw request object (through
 * light-my-request's `Request` option) with a symbol no client can set: there is no header or query
 * parameter that triggers or forges a refresh.
 */
export class Refresher {
  readonly #running = new Set<string>()

  constructor (private readonly app: FastifyInstance) {}

  /** True for the refresh of `key`: its lookup must skip the stale entry and run the handler. */
  isRefreshOf (request: FastifyRequest, key: string): boolean {
    return (request.raw as unknown as Record<symbol, unknown>)[kRefreshOf] === key
  }

  start (key: string, request: FastifyRequest): void {
    // One refresh per key, and never one started from inside another.
    if (this.#running.has(key) || (request.raw as unknown as Record<symbol, unknown>)[kRefreshOf] !== undefined) return
    this.#running.add(key)
    class RefreshRequest extends IncomingMessage {}
    Object.defineProperty(RefreshRequest.prototype, kRefreshOf, { value: key })
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined && !NOT_REPLAYED.has(name)) headers[name] = value
    }
    const replay: InjectOptions = {
      method: request.method === 'HEAD' ? 'GET' : request.method as InjectOptions['method'],
      url: request.url,
      headers,
      remoteAddress: request.socket?.remoteAddress,
      payload: request.body as InjectOptions['payload'],
      Request: RefreshRequest as unknown as InjectOptions['Request']
    }
    this.app.inject(replay)
      .catch((error: unknown) => { request.log.warn({ err: error }, 'response cache refresh failed') })
      .finally(() => { this.#running.delete(key) })
  }
}

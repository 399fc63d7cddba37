import type { FastifyInstance, FastifyRequest, InjectOptions } from 'fastify'

/** Request headers that describe the client's connection or its own copy, not the resource. */
const NOT_REPLAYED = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'expect', 'upgrade',
  'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range'
])

interface InjectedRaw { _lightMyRequest?: { simulate?: object } }

/**
 * Background refreshes for stale-while-revalidate: at most one per key at a time, run by injecting
 * the request again. A refresh is recognised by the object passed as light-my-request's `simulate`
 * option (all its simulation flags off), which only this process holds: no header or query parameter
 * can trigger or forge a refresh. (Light-my-request's `Request` option would give every refresh a new
 * hidden class and slow every other request down; an async context does not survive Fastify's inject.)
 */
export class Refresher {
  readonly #running = new Set<string>()
  readonly #markers = new WeakSet<object>()

  constructor (private readonly app: FastifyInstance) {}

  /** True for a refresh: its lookup must skip the stale entry and run the handler. */
  isRefresh (request: FastifyRequest): boolean {
    const marker = (request.raw as InjectedRaw)._lightMyRequest?.simulate
    return marker !== undefined && this.#markers.has(marker)
  }

  start (key: string, request: FastifyRequest): void {
    // One refresh per key, and never one started from inside another.
    if (this.#running.has(key) || this.isRefresh(request)) return
    this.#running.add(key)
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined && !NOT_REPLAYED.has(name)) headers[name] = value
    }
    const marker = { end: true, split: false, error: false, close: false }
    this.#markers.add(marker)
    const replay: InjectOptions = {
      method: request.method === 'HEAD' ? 'GET' : request.method as InjectOptions['method'],
      url: request.url,
      headers,
      remoteAddress: request.socket?.remoteAddress,
      payload: request.body as InjectOptions['payload'],
      simulate: marker
    }
    this.app.inject(replay)
      .catch((error: unknown) => { request.log.warn({ err: error }, 'response cache refresh failed') })
      .finally(() => { this.#running.delete(key) })
  }
}

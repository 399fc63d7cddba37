import type { FastifyInstance, InjectOptions } from 'fastify'
import { FST_RESPONSE_CACHE_INVALID_ARGUMENT } from '../errors.js'
import type { Refresher } from '../coalescing/refresh.js'

/** One request to warm: a URL (GET), or method, URL, headers and body. */
export interface WarmRequest {
  url: string
  method?: 'GET' | 'POST' | 'QUERY'
  headers?: Record<string, string>
  body?: unknown
}

export interface WarmResult {
  method: string
  url: string
  /** The handler's status, when it answered. */
  status?: number
  /** Why nothing was stored: `not-cached` (the route has no config.cache), `bypass`, a not-stored reason such as `status` or `set-cookie`, `store-error`, or the error's message. */
  reason?: string
}

export interface WarmReport {
  stored: WarmResult[]
  failed: WarmResult[]
}

/** `app.cache.warm`'s second argument. */
export interface WarmCallOptions {
  /**
   * Also declare the requests, as the `warm` option does: run again when the shared store comes
   * back empty (Redis restarted without persistence, flushed, or cleared). @defaultValue `false`
   * @example `await app.cache.warm(['/products/top'], { keep: true })`
   */
  keep?: boolean
}

/** Requests warmed side by side: enough to overlap slow handlers without flooding them. */
const WARM_CONCURRENCY = 4

export function normalise (request: string | WarmRequest): WarmRequest {
  const item = typeof request === 'string' ? { url: request } : request
  if (typeof item !== 'object' || item === null || typeof item.url !== 'string' || !item.url.startsWith('/')) {
    throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT('warm', 'expected URLs starting with "/" or objects { url, method, headers, body }')
  }
  return item
}

function hasHost (headers: Record<string, string> | undefined): boolean {
  return headers !== undefined && Object.keys(headers).some((name) => name.toLowerCase() === 'host')
}

/**
 * The `Host` a client sends to the address the app listens on: its first address and port (no port
 * for 80, or 443 over TLS); `localhost` where the app listens on every interface (0.0.0.0, ::) or on
 * `localhost` itself (127.0.0.1 and ::1 on one port). Undefined while the app does not listen.
 */
export function listeningHost (app: FastifyInstance): string | undefined {
  // A pipe's address is its path: no host to key by.
  const addresses = app.addresses().filter((a) => typeof a === 'object')
  const first = addresses[0]
  if (first === undefined) return undefined
  const { address, family, port } = first
  const onLocalhost = addresses.some((a) => a.address === '127.0.0.1') && addresses.some((a) => a.address === '::1')
  const name = onLocalhost || address === '0.0.0.0' || address === '::'
    ? 'localhost'
    : family === 'IPv6' ? `[${address}]` : address
  const defaultPort = app.initialConfig.https === undefined || app.initialConfig.https === false ? 80 : 443
  return port === defaultPort ? name : `${name}:${String(port)}`
}

/**
 * app.cache.warm: each request is injected past the cache (like a stale-while-revalidate refresh, so
 * an entry that is already there is replaced), and the report says what was stored and why not.
 * `settleMs` bounds the wait for a remote store to confirm its write. A request without a `host`
 * header is sent with `host()`'s answer (the `warm.host` option, or the address the app listens on),
 * so that its entry is the one real clients look up; with none, inject's `localhost:80`.
 */
export function createWarm (refresher: Refresher, settleMs: number, host: () => string | undefined = () => undefined) {
  return async function warm (items: readonly WarmRequest[]): Promise<WarmReport> {
    const report: WarmReport = { stored: [], failed: [] }
    let next = 0
    const one = async (item: WarmRequest): Promise<void> => {
      const result: WarmResult = { method: item.method ?? 'GET', url: item.url }
      try {
        const defaultHost = hasHost(item.headers) ? undefined : host()
        const { response, outcome } = await refresher.warm({
          method: result.method as InjectOptions['method'],
          url: item.url,
          headers: defaultHost === undefined ? item.headers : { ...item.headers, host: defaultHost },
          payload: item.body as InjectOptions['payload']
        })
        result.status = response.statusCode
        const xCache = response.headers['x-cache']
        const reason = xCache === undefined ? 'not-cached' : await outcome.wait(settleMs, 'unknown')
        if (reason === 'stored') report.stored.push(result)
        else report.failed.push({ ...result, reason })
      } catch (error) {
        report.failed.push({ ...result, reason: String((error as Error)?.message ?? error) })
      }
    }
    const worker = async (): Promise<void> => {
      while (next < items.length) await one(items[next++])
    }
    await Promise.all(Array.from({ length: Math.min(WARM_CONCURRENCY, items.length) }, worker))
    return report
  }
}

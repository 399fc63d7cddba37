import type { InjectOptions } from 'fastify'
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

/** Requests warmed side by side: enough to overlap slow handlers without flooding them. */
const WARM_CONCURRENCY = 4

function normalise (request: string | WarmRequest): WarmRequest {
  const item = typeof request === 'string' ? { url: request } : request
  if (typeof item !== 'object' || item === null || typeof item.url !== 'string' || !item.url.startsWith('/')) {
    throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT('warm', 'expected URLs starting with "/" or objects { url, method, headers, body }')
  }
  return item
}

/**
 * app.cache.warm: each request is injected past the cache (like a stale-while-revalidate refresh, so
 * an entry that is already there is replaced), and the report says what was stored and why not.
 * `settleMs` bounds the wait for a remote store to confirm its write.
 */
export function createWarm (refresher: Refresher, settleMs: number) {
  return async function warm (requests: ReadonlyArray<string | WarmRequest>): Promise<WarmReport> {
    if (!Array.isArray(requests)) throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT('warm', 'expected an array of requests')
    const items = requests.map(normalise)
    const report: WarmReport = { stored: [], failed: [] }
    let next = 0
    const one = async (item: WarmRequest): Promise<void> => {
      const result: WarmResult = { method: item.method ?? 'GET', url: item.url }
      try {
        const { response, outcome } = await refresher.warm({
          method: result.method as InjectOptions['method'],
          url: item.url,
          headers: item.headers,
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

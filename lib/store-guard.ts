import type { FastifyBaseLogger } from 'fastify'
import { FST_RESPONSE_CACHE_STORE_TIMEOUT } from './errors.js'

/** Store trouble is logged at most this often; the rest is counted and reported with the next line. */
export const WARN_INTERVAL_MS = 10_000

export function isPromise<T> (value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function'
}

/** Bounds a promised store call: past `timeoutMs` it rejects, and the request goes on without the cache. */
export function withTimeout<T> (promise: Promise<T>, timeoutMs: number, operation: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // Not unref'd: a request waits on it, and it is cleared as soon as the store answers.
    const timer = setTimeout(() => { reject(new FST_RESPONSE_CACHE_STORE_TIMEOUT(operation, timeoutMs)) }, timeoutMs)
    promise.finally(() => { clearTimeout(timer) }).then(resolve, reject)
  })
}

/**
 * Logs store trouble at warn, once per interval: a Redis outage under load must not turn into one log
 * line per request. Only the error's code and message are logged, never the client or its options.
 */
export class TroubleLog {
  #last = -Infinity
  #suppressed = 0

  constructor (private readonly log: FastifyBaseLogger, private readonly intervalMs = WARN_INTERVAL_MS) {}

  report (operation: string, error: unknown): void {
    const now = Date.now()
    if (now - this.#last < this.intervalMs) {
      this.#suppressed++
      return
    }
    const err = error as { code?: unknown, message?: unknown }
    this.log.warn({
      responseCache: { operation, code: err?.code, error: String(err?.message ?? error), suppressed: this.#suppressed }
    }, 'response cache store trouble; requests go on without the cache')
    this.#last = now
    this.#suppressed = 0
  }
}

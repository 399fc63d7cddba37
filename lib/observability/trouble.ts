import type { FastifyBaseLogger } from 'fastify'
import { hash } from 'node:crypto'
import { redactCredentials, ReportedKeys } from '../errors.js'

// How store trouble reaches the log: rate-limited warn lines, once-per-key lines for unreadable
// entries, and debug lines for app.cache calls the store did not carry out.

/** Store trouble is logged at most this often; the rest is counted and reported with the next line. */
export const WARN_INTERVAL_MS = 10_000

/**
 * Lets one warn line through per interval and counts the rest, so a failure repeated under load
 * becomes one line every few seconds (with how many were held back), not one per request.
 */
export class WarnGate {
  #last = -Infinity
  #suppressed = 0

  constructor (private readonly intervalMs = WARN_INTERVAL_MS) {}

  /** How many lines were held back since the last one let through, or undefined: hold this one back too. */
  pass (): number | undefined {
    const now = Date.now()
    if (now - this.#last < this.intervalMs) {
      this.#suppressed++
      return undefined
    }
    const suppressed = this.#suppressed
    this.#last = now
    this.#suppressed = 0
    return suppressed
  }
}

/**
 * Logs store trouble at warn, once per interval: a Redis outage under load must not turn into one log
 * line per request. Only the error's code and message are logged, never the client or its options.
 */
export class TroubleLog {
  readonly #gate: WarnGate

  constructor (readonly log: FastifyBaseLogger, intervalMs = WARN_INTERVAL_MS) {
    this.#gate = new WarnGate(intervalMs)
  }

  report (operation: string, error: unknown): void {
    const suppressed = this.#gate.pass()
    if (suppressed === undefined) return
    const err = error as { code?: unknown, message?: unknown }
    this.log.warn({
      responseCache: { operation, code: err?.code, error: redactCredentials(String(err?.message ?? error)), suppressed }
    }, 'response cache store trouble; requests go on without the cache')
  }
}

/**
 * An entry a store answered that cannot be used, treated as a miss: logged at warn once per key (a
 * bad value must not write a line on every request that reads it), naming the problem and the entry
 * by the first 16 hex digits of the SHA-256 of its key (the key itself may hold a tenant or a query).
 */
export class UnreadableLog {
  readonly #reported = new ReportedKeys()

  constructor (private readonly log: FastifyBaseLogger) {}

  report (key: string, problem: string): void {
    if (!this.#reported.first(key)) return
    const entry = hash('sha256', key, 'hex').slice(0, 16)
    this.log.warn({ responseCache: { entry, problem } }, 'response cache: unreadable entry treated as a miss')
  }
}

/**
 * A call of app.cache that the store did not carry out: the caller sees it in what the call answers,
 * and the log says why at debug (the warn line is TroubleLog's, rate-limited).
 */
export function logNotDone (log: FastifyBaseLogger, operation: string, error: unknown): void {
  log.debug({ responseCache: { operation, problem: redactCredentials(String((error as Error)?.message ?? error)) } }, 'response cache: store call not done')
}

/** Failures in a row that open the circuit. */
export const BREAKER_THRESHOLD = 5
export const BREAKER_MIN_OPEN_MS = 1000
export const BREAKER_MAX_OPEN_MS = 10_000

/**
 * After repeated failures the store is not asked at all for a short while (doubling up to 10 s while
 * it keeps failing), so a dead Redis costs requests nothing and nothing queues up behind it. The first
 * call after the pause is a probe: one success closes the circuit, one failure reopens it.
 */
export class CircuitBreaker {
  #failures = 0
  #openUntil = 0
  #openMs = BREAKER_MIN_OPEN_MS

  allow (now = Date.now()): boolean {
    return now >= this.#openUntil
  }

  success (): void {
    this.#failures = 0
    this.#openMs = BREAKER_MIN_OPEN_MS
  }

  /** The store says it can answer again (a Redis client's 'ready'): closed at once, no pause waited out. */
  reset (): void {
    this.success()
    this.#openUntil = 0
  }

  failure (now = Date.now()): void {
    // Calls already in flight when the circuit opened do not lengthen the pause.
    if (now < this.#openUntil) return
    if (++this.#failures < BREAKER_THRESHOLD) return
    this.#openUntil = now + this.#openMs
    this.#openMs = Math.min(this.#openMs * 2, BREAKER_MAX_OPEN_MS)
    // Half-open from here: the probe after the pause decides alone.
    this.#failures = BREAKER_THRESHOLD - 1
  }
}

import type { CacheEntry } from '../entry.js'

interface Flight {
  promise: Promise<CacheEntry | undefined>
  resolve: (entry: CacheEntry | undefined) => void
  timer: NodeJS.Timeout
}

/**
 * Concurrent misses of one key in this process: the first request (the leader) runs the handler, the
 * others wait for what it stores. A leader that never reports (aborted, crashed) is given up after
 * `timeoutMs`, and its waiters go to the handler themselves.
 */
export class InFlight {
  readonly #flights = new Map<string, Flight>()
  /** Entries a leader produced whose write to a remote store has not completed yet. */
  readonly #unwritten = new Map<string, CacheEntry>()
  /** Remote writes in progress, until their store call answers. */
  readonly #landing = new Map<CacheEntry, { promise: Promise<void>, landed: () => void }>()

  constructor (private readonly timeoutMs: number) {}

  /** True when the caller is now the leader for `key`; false when someone else already is. */
  lead (key: string): boolean {
    if (this.#flights.has(key)) return false
    let settle!: (entry: CacheEntry | undefined) => void
    const promise = new Promise<CacheEntry | undefined>((resolve) => { settle = resolve })
    // Not unref'd: waiting requests depend on it, and it is cleared as soon as the leader reports.
    const timer = setTimeout(() => { this.settle(key, undefined) }, this.timeoutMs)
    this.#flights.set(key, { promise, resolve: settle, timer })
    return true
  }

  /** What the leader stored, or undefined when it stored nothing or gave up. */
  wait (key: string): Promise<CacheEntry | undefined> | undefined {
    return this.#flights.get(key)?.promise
  }

  settle (key: string, entry: CacheEntry | undefined): void {
    const flight = this.#flights.get(key)
    if (flight === undefined) return
    this.#flights.delete(key)
    clearTimeout(flight.timer)
    flight.resolve(entry)
  }

  /**
   * A read that was on its way to a remote store before the leader's write landed finds nothing
   * there: it is answered from here instead of running the handler a second time.
   */
  writing (key: string, entry: CacheEntry): void {
    this.#unwritten.set(key, entry)
    let landed!: () => void
    const promise = new Promise<void>((resolve) => { landed = resolve })
    this.#landing.set(entry, { promise, landed })
  }

  written (key: string, entry: CacheEntry): void {
    const landing = this.#landing.get(entry)
    if (landing !== undefined) {
      this.#landing.delete(entry)
      landing.landed()
    }
    // Reads answered in the same chunk as the write's reply may finish their promise chains after it.
    setImmediate(() => { if (this.#unwritten.get(key) === entry) this.#unwritten.delete(key) })
  }

  /**
   * Before an invalidation or clear: waits for the writes still on their way to the store (each is
   * bounded by the store timeout), so that none lands after the invalidation, and forgets the entries
   * that bridged them. Undefined when nothing is on its way.
   */
  flush (): Promise<void> | undefined {
    if (this.#landing.size === 0) {
      this.#unwritten.clear()
      return undefined
    }
    return Promise.all([...this.#landing.values()].map(async ({ promise }) => { await promise })).then(() => { this.#unwritten.clear() })
  }

  unwritten (key: string): CacheEntry | undefined {
    return this.#unwritten.get(key)
  }
}

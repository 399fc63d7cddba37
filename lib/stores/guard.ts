import type { FastifyBaseLogger } from 'fastify'
import { hash } from 'node:crypto'
import { FST_RESPONSE_CACHE_STORE_TIMEOUT, FST_RESPONSE_CACHE_STORE_UNAVAILABLE, redactCredentials, ReportedKeys } from '../errors.js'
import { entryProblem, VALUE_STATUS, type CacheEntry } from '../entry.js'
import { kChecksEntries, type CacheStore, type MaybePromise, type StoreSetOptions } from './store.js'

/** Store trouble is logged at most this often; the rest is counted and reported with the next line. */
export const WARN_INTERVAL_MS = 10_000

export function isPromise<T> (value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function'
}

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

/**
 * The store as the hooks and the client use it: promised calls bounded by the timeout, failures
 * reported (rate-limited) and fed to the circuit breaker. Failures still reach the caller, which
 * decides what a failure means for its request.
 */
export class GuardedStore {
  /** Calls that concern the whole store (invalidate, clear, stats, ping), and every call of a store with one failure domain. */
  readonly #storeBreaker = new CircuitBreaker()
  /** Per failure domain (a Redis Cluster's shards): a dead master pauses only the keys it holds. */
  readonly #domainBreakers = new Map<number, CircuitBreaker>()
  readonly #domainOf: ((key: string) => number) | undefined

  /** The store takes locks shared by every process (Redis): cold keys are computed once across them. */
  readonly canLock: boolean
  /** The store reads and locks in one call, and releases a lock in the write it guards. */
  readonly #getOrLock: ((key: string, ttlMs: number) => MaybePromise<{ entry?: CacheEntry, token?: string }>) | undefined

  /**
   * `remote` is false only for the embedded memory store, which answers in place and cannot be slow
   * or gone; every other store (Redis, or a custom one) gets the full guard.
   */
  /** A custom store: what it answers is checked whole (entryProblem) before the plugin uses it. */
  readonly #checkAll: boolean
  readonly #unreadable: UnreadableLog

  constructor (
    readonly store: CacheStore,
    private readonly timeoutMs: number,
    private readonly trouble: TroubleLog,
    readonly remote = true
  ) {
    this.#checkAll = remote && store[kChecksEntries] !== true
    this.#unreadable = new UnreadableLog(trouble.log)
    this.canLock = remote && typeof store.lock === 'function' && typeof store.unlock === 'function'
    this.#getOrLock = this.canLock && typeof store.getOrLock === 'function' ? store.getOrLock.bind(store) : undefined
    this.#domainOf = remote && typeof store.failureDomain === 'function' ? store.failureDomain.bind(store) : undefined
  }

  /** The failure domain of `key`, or undefined when the store fails as one. */
  domainOf (key: string): number | undefined {
    return this.#domainOf?.(key)
  }

  #breaker (domain: number | undefined): CircuitBreaker {
    if (domain === undefined) return this.#storeBreaker
    let breaker = this.#domainBreakers.get(domain)
    if (breaker === undefined) this.#domainBreakers.set(domain, breaker = new CircuitBreaker())
    return breaker
  }

  /** Whether calls of `domain` (undefined: whole-store calls) are let through now. */
  allows (domain?: number): boolean {
    return this.#breaker(domain).allow()
  }

  /** The store can answer again, for every key or for the keys of `domains`: closed at once. */
  reset (domains?: readonly number[]): void {
    if (domains === undefined) {
      this.#storeBreaker.reset()
      for (const breaker of this.#domainBreakers.values()) breaker.reset()
      return
    }
    for (const domain of domains) this.#domainBreakers.get(domain)?.reset()
  }

  readonly #reading = new Map<string, Promise<CacheEntry | undefined>>()
  /** Locks that a read took for its key, waiting for the request that leads the key's computation. */
  readonly #tokens = new Map<string, string>()

  /**
   * A response's entry. Concurrent reads of one key from a remote store share one call: a hot key
   * under load costs one round trip per batch of requests, not one per request.
   */
  get (key: string): MaybePromise<CacheEntry | undefined> {
    return this.#read(key, true)
  }

  /**
   * As `get`, for an entry of either kind: a value, which never answers a request (the values of
   * `app.cache`, the listing's secret), or a response read on behalf of another guard (the tiered
   * store's reads of Redis: the plugin's guard checks what the tiered store answers).
   */
  getAny (key: string): MaybePromise<CacheEntry | undefined> {
    return this.#read(key, false)
  }

  #read (key: string, response: boolean): MaybePromise<CacheEntry | undefined> {
    // The memory store is asked in place: no closure on the hit path. It holds only entries the
    // plugin made, and values only under value keys: nothing there to check.
    if (!this.remote) return this.store.get(key)
    return this.#shared(key, () => {
      const found = this.store.get(key)
      return isPromise(found) ? found.then((entry) => this.#checked(key, entry, response)) : this.#checked(key, found, response)
    }, this.domainOf(key))
  }

  /**
   * What a remote store answered, or a miss (logged once per key) for what must not be used: a value
   * where a response is read (its status cannot be sent), or, from a custom store, an entry that
   * entryProblem refuses. The built-in stores check what they decode themselves.
   */
  #checked (key: string, entry: CacheEntry | undefined, response: boolean): CacheEntry | undefined {
    if (entry === undefined) return undefined
    const problem = typeof entry !== 'object' || entry === null
      ? 'not an entry'
      : this.#checkAll ? entryProblem(entry) : undefined
    if (problem === undefined && !(response && entry.status === VALUE_STATUS)) return entry
    const name = (this.store as { redisKey?: (key: string) => string }).redisKey?.(key) ?? key
    this.#unreadable.report(name, problem ?? 'a value where a response was expected')
    return undefined
  }

  /**
   * The first read of a request. Where the store can, a miss also takes the key's coalescing lock in
   * the same round trip; the request that leads the computation collects it with takeToken.
   */
  lookup (key: string, lockMs: number): MaybePromise<CacheEntry | undefined> {
    const getOrLock = this.#getOrLock
    if (getOrLock === undefined) return this.get(key)
    return this.#shared(key, () => {
      const answer = getOrLock(key, lockMs)
      return isPromise(answer) ? answer.then((found) => this.#found(key, found)) : this.#found(key, answer)
    }, this.domainOf(key))
  }

  #found (key: string, { entry, token }: { entry?: CacheEntry, token?: string }): CacheEntry | undefined {
    if (token !== undefined) this.#tokens.set(key, token)
    return this.#checked(key, entry, true)
  }

  /** The lock a lookup took for `key`, handed out once. */
  takeToken (key: string): string | undefined {
    const token = this.#tokens.get(key)
    if (token !== undefined) this.#tokens.delete(key)
    return token
  }

  /** True when `set` releases the lock whose token it is given, in the same call. */
  get unlocksOnSet (): boolean {
    return this.#getOrLock !== undefined
  }

  #shared (key: string, call: () => MaybePromise<CacheEntry | undefined>, domain: number | undefined): MaybePromise<CacheEntry | undefined> {
    const pending = this.#reading.get(key)
    if (pending !== undefined) return pending
    const read = this.run('get', call, this.timeoutMs, domain)
    if (!isPromise(read)) return read
    const shared = read.finally(() => { this.#reading.delete(key) })
    this.#reading.set(key, shared)
    return shared
  }

  set (key: string, entry: CacheEntry, options: StoreSetOptions): MaybePromise<void> {
    return this.run('set', () => this.store.set(key, entry, options), this.timeoutMs, this.domainOf(key))
  }

  lock (key: string, ttlMs: number): MaybePromise<string | undefined> {
    return this.run('lock', () => (this.store.lock as NonNullable<CacheStore['lock']>)(key, ttlMs), this.timeoutMs, this.domainOf(key))
  }

  /** Best effort: a lock that is not released expires by itself. */
  /** Drops one key; a failure counts against the key's failure domain (its Cluster shard), not the whole store. */
  delete (key: string): MaybePromise<boolean> {
    return this.run('delete', () => this.store.delete(key), this.timeoutMs, this.domainOf(key))
  }

  /** Drops the entries of `tags`: a call that concerns the whole store. */
  invalidateTags (tags: readonly string[]): MaybePromise<number> {
    return this.run('invalidateTags', () => this.store.invalidateTags(tags))
  }

  unlock (key: string, token: string): void {
    try {
      const done = this.run('unlock', () => (this.store.unlock as NonNullable<CacheStore['unlock']>)(key, token), this.timeoutMs, this.domainOf(key))
      if (isPromise(done)) done.catch(() => {})
    } catch {}
  }

  /**
   * `timeoutMs` may be raised for calls that walk the keyspace (clear), never for the request path.
   * `domain` is the failure domain of the call's key (see domainOf); undefined for whole-store calls.
   */
  run<T> (operation: string, call: () => MaybePromise<T>, timeoutMs = this.timeoutMs, domain?: number): MaybePromise<T> {
    if (this.store.guardsItself === true) return call()
    const breaker = this.#breaker(domain)
    if (!breaker.allow()) throw new FST_RESPONSE_CACHE_STORE_UNAVAILABLE(this.store.name, 'paused after repeated failures')
    let result: MaybePromise<T>
    try {
      result = call()
    } catch (error) {
      this.#failed(breaker, operation, error)
      throw error
    }
    if (!isPromise(result)) return result
    // Past `timeoutMs` the call counts as failed and the caller goes on without the store; one
    // promise and one timer per call, on the request path.
    return new Promise<T>((resolve, reject) => {
      // A call that answers after its timeout changes nothing: it already counted as a failure.
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        const error = new FST_RESPONSE_CACHE_STORE_TIMEOUT(operation, timeoutMs)
        this.#failed(breaker, operation, error)
        reject(error)
      }, timeoutMs)
      result.then((value) => {
        if (timedOut) return
        clearTimeout(timer)
        breaker.success()
        resolve(value)
      }, (error: unknown) => {
        if (timedOut) return
        clearTimeout(timer)
        this.#failed(breaker, operation, error)
        reject(error)
      })
    })
  }

  #failed (breaker: CircuitBreaker, operation: string, error: unknown): void {
    // A Redis error reply (a write refused on a full Redis, a value of another type) comes from a
    // server that answers: that call failed, the store is not down, and reads must go on.
    if ((error as Error | undefined)?.name !== 'ReplyError') breaker.failure()
    this.trouble.report(operation, error)
  }
}

import { FST_RESPONSE_CACHE_STORE_TIMEOUT, FST_RESPONSE_CACHE_STORE_UNAVAILABLE } from '../errors.js'
import { entryProblem, VALUE_STATUS, type CacheEntry } from '../entry.js'
import { UnreadableLog, type TroubleLog } from '../observability/trouble.js'
import { isPromise } from '../promise.js'
import { CircuitBreaker } from './breaker.js'
import { kChecksEntries, LIST_TIMEOUT_MS, type CacheStore, type MaybePromise, type StoreListPage, type StoreListQuery, type StoreSetOptions, type StoreState, type StoreStats } from './store.js'

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

  /** The store itself: reached only through the methods below, each guarded with its failure domain. */
  readonly #store: CacheStore

  constructor (
    store: CacheStore,
    private readonly timeoutMs: number,
    private readonly trouble: TroubleLog,
    readonly remote = true
  ) {
    this.#store = store
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

  /** As `getAny`, past any copy this process keeps (the tiered store's memory): what a lock holder reads. */
  getShared (key: string): MaybePromise<CacheEntry | undefined> {
    return this.#read(key, false, true)
  }

  #read (key: string, response: boolean, shared = false): MaybePromise<CacheEntry | undefined> {
    // The memory store is asked in place: no closure on the hit path. It holds only entries the
    // plugin made, and values only under value keys: nothing there to check.
    if (!this.remote) return this.#store.get(key)
    return this.#shared(key, () => {
      const found = shared && this.#store.getShared !== undefined ? this.#store.getShared(key) : this.#store.get(key)
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
    const name = (this.#store as { redisKey?: (key: string) => string }).redisKey?.(key) ?? key
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
    return this.run('set', () => this.#store.set(key, entry, options), this.timeoutMs, this.domainOf(key))
  }

  lock (key: string, ttlMs: number): MaybePromise<string | undefined> {
    return this.run('lock', () => (this.#store.lock as NonNullable<CacheStore['lock']>)(key, ttlMs), this.timeoutMs, this.domainOf(key))
  }

  /** Best effort: a lock that is not released expires by itself. */
  /** The store's name, for logs, stats and errors. */
  get name (): string {
    return this.#store.name
  }

  /** Whether the store can list its entries (app.cache.list). */
  get canList (): boolean {
    return typeof this.#store.list === 'function'
  }

  /** Whether the store can tell its figures (entries, bytes, evictions). */
  get canMeasure (): boolean {
    return typeof this.#store.stats === 'function'
  }

  /** A page of entries; a call that concerns the whole store, which may walk the keyspace. */
  list (query: StoreListQuery, timeoutMs = LIST_TIMEOUT_MS): MaybePromise<StoreListPage> {
    return this.run('list', () => (this.#store.list as NonNullable<CacheStore['list']>).call(this.#store, query), timeoutMs)
  }

  /** The store's figures: in place for the embedded memory store, else a guarded call. */
  measure (groups?: readonly string[]): MaybePromise<StoreStats> {
    const stats = this.#store.stats as NonNullable<CacheStore['stats']>
    return this.remote ? this.run('stats', () => stats.call(this.#store, groups)) : stats.call(this.#store, groups)
  }

  /** Empties the store's namespace; `timeoutMs` is longer than a request's, as it walks the keyspace. */
  clear (timeoutMs: number): MaybePromise<void> {
    return this.run('clear', () => this.#store.clear(), timeoutMs)
  }

  /** Asks the store whether it answers (health). */
  ping (): MaybePromise<unknown> {
    return this.run('ping', () => this.#store.ping?.())
  }

  /** Whether the store can tell that it lost its entries (see CacheStore.generations). */
  get canTellEmptied (): boolean {
    return this.remote && typeof this.#store.generations === 'function'
  }

  /** The store's generations: a call that concerns the whole store, off the request path. */
  generations (): MaybePromise<ReadonlyArray<string | null>> {
    return this.run('generations', () => (this.#store.generations as NonNullable<CacheStore['generations']>).call(this.#store))
  }

  /** What the store says of its connection, where it can tell. */
  state (): StoreState | undefined {
    return this.#store.state?.()
  }

  /** Drops one key; a failure counts against the key's failure domain (its Cluster shard), not the whole store. */
  delete (key: string): MaybePromise<boolean> {
    return this.run('delete', () => this.#store.delete(key), this.timeoutMs, this.domainOf(key))
  }

  /** Drops the entries of `tags`: a call that concerns the whole store. */
  invalidateTags (tags: readonly string[]): MaybePromise<number> {
    return this.run('invalidateTags', () => this.#store.invalidateTags(tags))
  }

  /**
   * Soft purge: marks the entries of `tags` expired from `at`; a store that cannot (a custom store
   * without `softInvalidateTags`) drops them instead.
   */
  softInvalidateTags (tags: readonly string[], at: number): MaybePromise<number> {
    const store = this.#store
    const soft = store.softInvalidateTags
    if (soft === undefined) return this.invalidateTags(tags)
    return this.run('invalidateTags', () => soft.call(store, tags, at))
  }

  unlock (key: string, token: string): void {
    try {
      const done = this.run('unlock', () => (this.#store.unlock as NonNullable<CacheStore['unlock']>)(key, token), this.timeoutMs, this.domainOf(key))
      if (isPromise(done)) done.catch(() => {})
    } catch {}
  }

  /**
   * `timeoutMs` may be raised for calls that walk the keyspace (clear), never for the request path.
   * `domain` is the failure domain of the call's key (see domainOf); undefined for whole-store calls.
   */
  run<T> (operation: string, call: () => MaybePromise<T>, timeoutMs = this.timeoutMs, domain?: number): MaybePromise<T> {
    if (this.#store.guardsItself === true) return call()
    const breaker = this.#breaker(domain)
    if (!breaker.allow()) throw new FST_RESPONSE_CACHE_STORE_UNAVAILABLE(this.#store.name, 'paused after repeated failures')
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

/**
 * Drops every entry stored with any of the store tags in `selected` (with `soft`, marks it expired
 * from now), once the response writes still on their way have landed (an entry written just before
 * must not land after its invalidation). Answers how many were dropped or marked: in place when
 * nothing is on its way and the store answers in place.
 */
export function dropTags (store: GuardedStore, flush: () => Promise<void> | undefined, selected: readonly string[], soft = false): MaybePromise<number> {
  const drop = (): MaybePromise<number> => soft ? store.softInvalidateTags(selected, Date.now()) : store.invalidateTags(selected)
  const pending = flush()
  return pending === undefined ? drop() : pending.then(drop)
}

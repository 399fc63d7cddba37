import type { FastifyBaseLogger } from 'fastify'
import type { Static, TSchema } from '@sinclair/typebox'
import { oneRunPerKey } from '../coalescing/cross-process.js'
import type { CacheEntry } from '../entry.js'
import { jittered } from '../jitter.js'
import { FST_RESPONSE_CACHE_WRAP_TIMEOUT, ReportedKeys } from '../errors.js'
import { tenantSegment } from '../key.js'
import type { RouteCounters } from '../observability/stats.js'
import { logNotDone, WarnGate } from '../observability/trouble.js'
import type { GuardedStore } from '../stores/guard.js'
import type { MaybePromise } from '../stores/store.js'
import { isPromise } from '../promise.js'
import { entryTags } from '../tags.js'
import { traceEnd, traceReturned, traceStart } from '../observability/tracing.js'
import { copiedValue, sharedValue } from './decoded-values.js'
import { ValueKeys } from './value-keys.js'
import { matches, VALUE_STATUS, valueEntry } from './values.js'
import { checkOptions, Context, type GetValueOptions, invalid, MAX_KEY_LENGTH, type SetValueOptions, type ValueOptions, type WrapFunction, type WrapOptions } from './value-options.js'
import { pastEagerPoint, type RunOutcome, TIMED_OUT, within } from './wrap-timing.js'

/** A cached value, how many milliseconds past its freshness it is (below 0: fresh), and its whole freshness. */
interface Found { value: unknown, staleMs: number, ttlMs: number }

/** The entry a write made, and whether the store took it (a shared value is answered from it either way). */
interface Written { entry: CacheEntry, stored: boolean }

/** What a call of `wrap` resolved to, beside the caller's options: the stale-if-error window in seconds. */
interface WrapCall { options: WrapOptions | undefined, staleIfError: number, result?: 'hit' | 'stale' | 'miss' }

/** Flights of shared and copied values of one key stay apart: a copy's callers never get a frozen value, nor the reverse. */
const SHARED_FLIGHT = '\u0000shared'

/**
 * `get`, `set`, `del` and `wrap` of `app.cache`: values stored beside the responses, in the same
 * store and under the same tags. Store trouble never reaches the caller: a read that fails is a miss,
 * a write that fails is lost (and logged, rate-limited, by the guarded store).
 */
export class ValueCache {
  /** Calls of one key in progress: concurrent callers share the read and, on a miss, one run of `fn`. */
  readonly #flights = new Map<string, Promise<unknown>>()
  readonly #refreshing = new Set<string>()
  /** Runs of `fn` still going after their callers were answered on a timeout: later calls join them. */
  readonly #late = new Map<string, Promise<RunOutcome<unknown>>>()
  readonly #reported = new ReportedKeys()
  /** `fn` failing on every call (an API that is down) logs one line per interval, not one per call. */
  readonly #staleWarnings = new WarnGate()
  readonly #keys: ValueKeys

  constructor (
    private readonly store: GuardedStore,
    private readonly namespace: string,
    private readonly defaults: { ttl: number, staleIfError: number, ttlJitter: number, shared: boolean },
    private readonly counters: RouteCounters,
    private readonly log: FastifyBaseLogger,
    /** How long one instance's run of `fn` holds the key's lock, and the others wait for its value. */
    private readonly lockMs = 0
  ) {
    this.#keys = new ValueKeys(namespace)
  }

  #key (key: unknown, options: ValueOptions | undefined): string {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      invalid('key', `expected a string of 1 to ${MAX_KEY_LENGTH} characters`)
    }
    return this.#keys.of(key, options?.tenant)
  }

  #shares (options: GetValueOptions | undefined): boolean {
    return options?.shared ?? this.defaults.shared
  }

  /**
   * The store's answer for `key`; a store that throws in place answers a rejected promise, as one that
   * rejects. `shared`: past this process's copy (see GuardedStore.getShared), as a lock holder reads.
   */
  #entry (key: string, shared = false): MaybePromise<CacheEntry | undefined> {
    try {
      return shared ? this.store.getShared(key) : this.store.getAny(key)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  async #read (key: string, options: GetValueOptions | undefined, shared = false): Promise<Found | undefined> {
    return await this.#readFrom(key, options, this.#entry(key, shared))
  }

  /** `entry`: the store's answer, which the caller already asked for (wrap's hit in place). */
  async #readFrom (key: string, options: GetValueOptions | undefined, entry: MaybePromise<CacheEntry | undefined>): Promise<Found | undefined> {
    let answered: CacheEntry | undefined
    try {
      answered = await entry
    } catch {
      this.counters.errors++
      return undefined
    }
    return this.#found(key, answered, options, false)
  }

  /**
   * As #read, in place when the store answers in place (the memory store, the tiered store's memory
   * tier): a hit costs no promise of its own. `freshOnly`: a value past its `ttl` is not decoded.
   */
  #readNow (key: string, options: GetValueOptions | undefined, freshOnly: boolean): MaybePromise<Found | undefined> {
    const entry = this.#entry(key)
    if (!isPromise(entry)) return this.#found(key, entry, options, freshOnly)
    return entry.then((answered) => this.#found(key, answered, options, freshOnly), () => {
      this.counters.errors++
      return undefined
    })
  }

  #found (key: string, entry: CacheEntry | undefined, options: GetValueOptions | undefined, freshOnly: boolean): Found | undefined {
    if (entry === undefined) return undefined
    const staleMs = Date.now() - entry.storedAt - entry.ttl * 1000
    if (freshOnly && staleMs >= 0) return undefined
    let value: unknown
    try {
      if (entry.status !== VALUE_STATUS) throw new Error('a response entry under a value key')
      value = this.#shares(options) ? sharedValue(entry) : copiedValue(entry)
    } catch (error) {
      // Logged once per key: a bad value must not write a line on every call that reads it.
      if (this.#reported.first(key)) {
        this.log.warn({ responseCache: { problem: String((error as Error).message) } }, 'response cache: unreadable value treated as a miss')
      }
      return undefined
    }
    const schema = options?.schema
    if (schema !== undefined && !matches(schema, value)) return undefined
    return { value, staleMs, ttlMs: entry.ttl * 1000 }
  }

  /** `staleIfError`: the window of the `wrap` call writing; `set` keeps a value for its `ttl` only. */
  async #write (key: string, value: unknown, options: WrapOptions | undefined, staleIfError = 0, lockToken?: string): Promise<Written> {
    const ttl = jittered(options?.ttl ?? this.defaults.ttl, options?.ttlJitter ?? this.defaults.ttlJitter)
    // Encoded before the store is asked: a value that cannot be stored is the caller's error.
    const entry = valueEntry(value, ttl)
    const tags = entryTags({ tenant: tenantSegment(options?.tenant), tags: options?.tags, value: true })
    try {
      // Kept past its freshness for the longer stale window, as response entries are.
      await this.store.set(key, entry, { ttl: ttl + Math.max(options?.staleWhileRevalidate ?? 0, staleIfError), tags, lockToken })
      this.counters.stores++
      return { entry, stored: true }
    } catch (error) {
      this.counters.errors++
      logNotDone(this.log, 'set', error)
      return { entry, stored: false }
    } finally {
      if (lockToken !== undefined && !this.store.unlocksOnSet) this.store.unlock(key, lockToken)
    }
  }

  /** Not async: a hit in place (memory) resolves with no promise but the one answered. */
  get<T = unknown> (key: string, options?: GetValueOptions): Promise<T | undefined> {
    let found: MaybePromise<Found | undefined>
    try {
      checkOptions(options)
      found = this.#readNow(this.#key(key, options), options, true)
    } catch (error) {
      return Promise.reject(error)
    }
    return isPromise(found) ? found.then((answered) => this.#counted<T>(answered)) : Promise.resolve(this.#counted<T>(found))
  }

  /** `get`'s answer to a fresh read (#readNow with `freshOnly`), counted. */
  #counted<T> (found: Found | undefined): T | undefined {
    if (found === undefined) {
      this.counters.misses++
      return undefined
    }
    this.counters.hits++
    return found.value as T
  }

  async set (key: string, value: unknown, options?: SetValueOptions): Promise<boolean> {
    checkOptions(options)
    return (await this.#write(this.#key(key, options), value, options)).stored
  }

  async del (key: string, options?: ValueOptions): Promise<boolean> {
    checkOptions(options)
    const storeKey = this.#key(key, options)
    try {
      await this.store.delete(storeKey)
      return true
    } catch (error) {
      this.counters.errors++
      logNotDone(this.log, 'delete', error)
      return false
    }
  }

  wrap<S extends TSchema>(key: string, fn: WrapFunction<Static<S>>, options: WrapOptions<S> & { schema: S }): Promise<Static<S>>
  wrap<T>(key: string, fn: WrapFunction<T>, options?: WrapOptions): Promise<T>
  async wrap<T> (key: string, fn: WrapFunction<T>, options?: WrapOptions): Promise<T> {
    if (typeof fn !== 'function') invalid('fn', 'expected a function')
    checkOptions(options)
    const storeKey = this.#key(key, options)
    const trace = traceStart('wrap', this.store.name)
    traceReturned(trace)
    const flightKey = this.#shares(options) ? storeKey + SHARED_FLIGHT : storeKey
    let flight = this.#flights.get(flightKey)
    // A call that joins another's run of the same key is `collapsed`.
    let call: WrapCall | undefined
    if (flight === undefined) {
      // A fresh value the store holds in place (memory, the tiered store's memory tier) is answered at
      // once: no flight, no promise of its own. Otherwise #lookupOrRun goes on from this read.
      const entry = this.#entry(storeKey)
      const hit = isPromise(entry) ? undefined : this.#found(storeKey, entry, options, true)
      const staleIfError = options?.staleIfError ?? this.defaults.staleIfError
      if (hit !== undefined) {
        this.counters.hits++
        if (pastEagerPoint(hit, options?.eagerRefresh)) this.#refresh(storeKey, fn, { options, staleIfError })
        if (trace !== undefined) traceEnd(trace, 'hit')
        return hit.value as T
      }
      call = { options, staleIfError }
      flight = this.#lookupOrRun(storeKey, fn, call, entry)
      this.#flights.set(flightKey, flight)
      // Settled either way: after a throw the next call runs fn again.
      const forget = (): void => { this.#flights.delete(flightKey) }
      flight.then(forget, forget)
    }
    if (trace === undefined) return await (flight as Promise<T>)
    try {
      const value = await (flight as Promise<T>)
      traceEnd(trace, call === undefined ? 'collapsed' : call.result ?? 'miss')
      return value
    } catch (error) {
      traceEnd(trace, 'error', { error })
      throw error
    }
  }

  /** `entry`: the store's answer to wrap's read of the key. */
  async #lookupOrRun<T> (key: string, fn: WrapFunction<T>, call: WrapCall, entry: MaybePromise<CacheEntry | undefined>): Promise<T> {
    const { options, staleIfError } = call
    const found = await this.#readFrom(key, options, entry)
    if (found !== undefined && found.staleMs < 0) {
      this.counters.hits++
      call.result = 'hit'
      if (pastEagerPoint(found, options?.eagerRefresh)) this.#refresh(key, fn, call)
      return found.value as T
    }
    if (found !== undefined && found.staleMs < (options?.staleWhileRevalidate ?? 0) * 1000) {
      this.counters.stale++
      call.result = 'stale'
      this.#refresh(key, fn, call)
      return found.value as T
    }
    // A run of fn that timed out for earlier callers is still going here: joined, not run again.
    let running = this.#late.get(key) as Promise<RunOutcome<T>> | undefined
    if (running === undefined) {
      const { token, fresh } = await this.#lockOrWait(key, options)
      if (fresh !== undefined) {
        this.counters.hits++
        call.result = 'hit'
        return fresh.value as T
      }
      running = this.#runAndWrite(key, fn, new Context(options, this.defaults.ttl, staleIfError), options, token)
    }
    this.counters.misses++
    const staleAtHand = found !== undefined && found.staleMs < staleIfError * 1000
    const outcome = await this.#waitFor(key, running, call, staleAtHand)
    if ('value' in outcome) return outcome.value
    if ('writeError' in outcome) throw outcome.writeError
    if (!staleAtHand) throw outcome.fnError
    return await this.#staleInsteadOf(outcome.fnError, key, staleIfError, options)
  }

  /** Runs `fn` and writes its value as its context decides; lets go of the key's lock when it throws. */
  async #runAndWrite<T> (key: string, fn: WrapFunction<T>, ctx: Context, options: WrapOptions | undefined, token: string | undefined): Promise<RunOutcome<T>> {
    let value: T
    try {
      value = await fn(ctx)
    } catch (fnError) {
      if (token !== undefined) this.store.unlock(key, token)
      return { fnError }
    }
    let written: Written | undefined
    try {
      written = await this.#writeAsDecided(key, value, options, ctx, token)
    } catch (writeError) {
      return { writeError }
    }
    // Shared: the callers get the frozen value later hits answer, never fn's own object.
    return { value: written !== undefined && this.#shares(options) ? sharedValue(written.entry) as T : value }
  }

  /**
   * A run of `fn`, waited for within the call's timeouts: `softTimeout` only with a stale value at
   * hand, `hardTimeout` in any case. On a timeout the stale value (read again, as for stale-if-error)
   * is answered, else (hard) FST_RESPONSE_CACHE_WRAP_TIMEOUT; the run goes on, later calls of the key
   * in this process join it, and its failure is logged as a refresh's is.
   */
  async #waitFor<T> (key: string, running: Promise<RunOutcome<T>>, call: WrapCall, staleAtHand: boolean): Promise<RunOutcome<T>> {
    const { options } = call
    const soft = staleAtHand ? options?.softTimeout : undefined
    const hard = options?.hardTimeout
    if (soft === undefined && hard === undefined) return await running
    const since = Date.now()
    let outcome = await within(running, soft ?? hard, since)
    if (outcome === TIMED_OUT && soft !== undefined) {
      const stale = await this.#staleOnTimeout(key, running, call)
      if (stale !== undefined) return stale
      outcome = await within(running, hard, since)
    }
    if (outcome !== TIMED_OUT) return outcome
    const stale = await this.#staleOnTimeout(key, running, call)
    if (stale !== undefined) return stale
    this.#finishLate(key, running)
    throw new FST_RESPONSE_CACHE_WRAP_TIMEOUT(hard as number)
  }

  /**
   * What a timeout answers: the value the store holds now, read again (one dropped meanwhile is never
   * answered; one another instance wrote meanwhile is), if it is within the call's staleIfError.
   */
  async #staleOnTimeout<T> (key: string, running: Promise<RunOutcome<T>>, call: WrapCall): Promise<{ value: T } | undefined> {
    const found = await this.#read(key, call.options)
    if (found === undefined || found.staleMs >= call.staleIfError * 1000) return undefined
    if (found.staleMs < 0) this.counters.hits++
    else this.counters.stale++
    call.result = found.staleMs < 0 ? 'hit' : 'stale'
    this.#finishLate(key, running)
    return { value: found.value as T }
  }

  /** A run no caller waits for any more: joined by later calls until it settles; its failure is logged. */
  #finishLate<T> (key: string, running: Promise<RunOutcome<T>>): void {
    if (this.#late.get(key) === running) return
    this.#late.set(key, running)
    running.then((outcome) => {
      if (this.#late.get(key) === running) this.#late.delete(key)
      if ('value' in outcome) return
      this.log.warn({ err: 'fnError' in outcome ? outcome.fnError : outcome.writeError }, 'response cache: wrap function failed after its timeout; nothing was stored')
    }, () => {})
  }

  /** Writes what `fn` made as its context says: not at all after `ctx.skip()`; its ttl, tags, staleIfError. */
  async #writeAsDecided (key: string, value: unknown, options: WrapOptions | undefined, ctx: Context, token: string | undefined): Promise<Written | undefined> {
    if (ctx.skipped) {
      if (token !== undefined) this.store.unlock(key, token)
      return undefined
    }
    try {
      checkOptions({ ttl: ctx.ttl, tags: ctx.tags, staleIfError: ctx.staleIfError }, 'ctx.')
    } catch (error) {
      if (token !== undefined) this.store.unlock(key, token)
      throw error
    }
    return await this.#write(key, value, { ...options, ttl: ctx.ttl, tags: ctx.tags }, ctx.staleIfError, token)
  }

  /** One run of `fn` per key across the instances on a store that locks (see oneRunPerKey). */
  async #lockOrWait (key: string, options: GetValueOptions | undefined): Promise<{ token?: string, fresh?: Found }> {
    if (!this.store.canLock) return {}
    return await oneRunPerKey(this.store, key, this.lockMs, async () => {
      const found = await this.#read(key, options)
      return found !== undefined && found.staleMs < 0 ? found : undefined
    })
  }

  /**
   * stale-if-error: the value the store holds now, if it is still within the window. Read again rather
   * than kept from before `fn` ran: a value invalidated (or deleted) meanwhile is never answered.
   */
  async #staleInsteadOf<T> (error: unknown, key: string, staleIfError: number, options: WrapOptions | undefined): Promise<T> {
    const found = await this.#read(key, options)
    if (found === undefined || found.staleMs >= staleIfError * 1000) throw error
    if (found.staleMs < 0) this.counters.hits++
    else this.counters.stale++
    const suppressed = this.#staleWarnings.pass()
    if (suppressed !== undefined) {
      this.log.warn({ err: error, responseCache: { suppressed } }, 'response cache: wrap function failed; the stale value was answered instead')
    }
    return found.value as T
  }

  /**
   * One background run of `fn` per key: in this process, and across instances where the store locks
   * (an instance that does not get the lock leaves the refresh to the one that did).
   */
  #refresh<T> (key: string, fn: WrapFunction<T>, { options, staleIfError }: WrapCall): void {
    if (this.#refreshing.has(key) || this.#late.has(key)) return
    this.#refreshing.add(key)
    let token: string | undefined
    const locked = this.store.canLock
      ? new Promise<string | undefined>((resolve) => { resolve(this.store.lock(key, this.lockMs)) }).then((taken) => (token = taken) !== undefined, () => true)
      : Promise.resolve(true)
    locked
      .then(async (mine) => {
        if (!mine) return
        // Another refresh (here or on another instance) may have written and let go since this call's read.
        const current = await this.#read(key, options, true)
        if (current !== undefined && current.staleMs < 0 && !pastEagerPoint(current, options?.eagerRefresh)) {
          if (token !== undefined) this.store.unlock(key, token)
          return
        }
        const ctx = new Context(options, this.defaults.ttl, staleIfError)
        let value: T
        try {
          value = await fn(ctx)
        } catch (error) {
          if (token !== undefined) this.store.unlock(key, token)
          throw error
        }
        await this.#writeAsDecided(key, value, options, ctx, token)
      })
      .catch((error: unknown) => { this.log.warn({ err: error }, 'response cache: wrap refresh failed; the stale value stays') })
      .finally(() => { this.#refreshing.delete(key) })
  }
}

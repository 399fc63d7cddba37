import type { FastifyInstance, FastifyRequest, InjectOptions, LightMyRequestResponse as LightResponse } from 'fastify'
import type { CacheEntry } from '../entry.js'
import type { MaybePromise } from '../stores/store.js'

/** Request headers that describe the client's connection or its own copy, not the resource. */
const NOT_REPLAYED = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'expect', 'upgrade',
  'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range'
])

interface InjectedRaw { _lightMyRequest?: { simulate?: object } }

/** What became of a warm-up request's answer; a remote store reports once its write is done. */
export class Outcome {
  result: string | undefined
  readonly #waiters: Array<(result: string) => void> = []

  settle (result: string): void {
    if (this.result !== undefined) return
    this.result = result
    for (const waiter of this.#waiters) waiter(result)
  }

  /** The result, or `fallback` if none arrives within `ms`. */
  async wait (ms: number, fallback: string): Promise<string> {
    if (this.result !== undefined) return this.result
    return await new Promise((resolve) => {
      const timer = setTimeout(() => { resolve(fallback) }, ms)
      this.#waiters.push((result) => { clearTimeout(timer); resolve(result) })
    })
  }
}

/** A store's lock shared by every instance (Redis): a key's refresh is run by the one that takes it. */
export interface RefreshLock {
  lock: (key: string, ttlMs: number) => MaybePromise<string | undefined>
  unlock: (key: string, token: string) => void
}

/**
 * Background refreshes for stale-while-revalidate: at most one per key at a time, run by injecting
 * the request again; with a store shared by several instances, at most one per key across them. A refresh is recognised by the object passed as light-my-request's `simulate`
 * option (all its simulation flags off), which only this process holds: no header or query parameter
 * can trigger or forge a refresh. (Light-my-request's `Request` option would give every refresh a new
 * hidden class and slow every other request down; an async context does not survive Fastify's inject.)
 */
export class Refresher {
  readonly #running = new Set<string>()
  readonly #markers = new WeakSet<object>()
  /** Warm-up requests (app.cache.warm), which want to hear whether their answer was stored. */
  readonly #outcomes = new WeakMap<object, Outcome>()
  /** The stale entry a refresh replaces, which it revalidates when it can (origin mode). */
  readonly #refreshing = new WeakMap<object, CacheEntry>()

  /**
   * `lock`: the store's lock, held from the start of a refresh until its entry is written (at most
   * `lockMs`). An instance that does not get it leaves the refresh to the one that did, serves the
   * stale entry meanwhile, and asks again only once that lock would have expired.
   */
  constructor (private readonly app: FastifyInstance, private readonly lock?: RefreshLock, private readonly lockMs = 0) {}

  /** The stale entry a refresh was started for. */
  staleOf (request: FastifyRequest): CacheEntry | undefined {
    const marker = (request.raw as InjectedRaw)._lightMyRequest?.simulate
    return marker === undefined ? undefined : this.#refreshing.get(marker)
  }

  /** True for a refresh: its lookup must skip the stale entry and run the handler. */
  isRefresh (request: FastifyRequest): boolean {
    const marker = (request.raw as InjectedRaw)._lightMyRequest?.simulate
    return marker !== undefined && this.#markers.has(marker)
  }

  #marker (): NonNullable<InjectOptions['simulate']> {
    const marker = { end: true, split: false, error: false, close: false }
    this.#markers.add(marker)
    return marker
  }

  /** Runs a request past the cache (its answer replaces the entry); resolves with what became of it. */
  async warm (options: InjectOptions): Promise<{ response: LightResponse, outcome: Outcome }> {
    const marker = this.#marker()
    const outcome = new Outcome()
    this.#outcomes.set(marker, outcome)
    const response = await this.app.inject({ ...options, simulate: marker })
    return { response, outcome }
  }

  /** Tells a warm-up request what became of its answer: `stored`, or why not. */
  report (request: FastifyRequest, result: string): void {
    const marker = (request.raw as InjectedRaw)._lightMyRequest?.simulate
    if (marker !== undefined) this.#outcomes.get(marker)?.settle(result)
  }

  /**
   * `payload`: the parsed body, or the raw bytes of a request answered before its body was parsed;
   * `stale`: the entry served meanwhile.
   */
  start (key: string, request: FastifyRequest, payload: unknown, stale: CacheEntry): void {
    // One refresh per key, and never one started from inside another.
    if (this.#running.has(key) || this.isRefresh(request)) return
    this.#running.add(key)
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined && !NOT_REPLAYED.has(name)) headers[name] = value
    }
    const replay: InjectOptions = {
      method: request.method === 'HEAD' ? 'GET' : request.method as InjectOptions['method'],
      url: request.url,
      headers,
      remoteAddress: request.socket?.remoteAddress,
      payload: payload as InjectOptions['payload']
    }
    const lock = this.lock
    if (lock === undefined) {
      this.#run(key, request, replay, undefined, stale)
      return
    }
    new Promise<string | undefined>((resolve) => { resolve(lock.lock(key, this.lockMs)) }).then((token) => {
      if (token !== undefined) {
        this.#run(key, request, replay, token, stale)
        return
      }
      request.log.debug('response cache refresh left to another instance')
      setTimeout(() => { this.#running.delete(key) }, this.lockMs).unref()
    }, () => {
      // The store cannot lock now: this instance refreshes, as it would alone.
      this.#run(key, request, replay, undefined, stale)
    })
  }

  #run (key: string, request: FastifyRequest, replay: InjectOptions, token: string | undefined, stale: CacheEntry): void {
    const marker = this.#marker()
    const outcome = new Outcome()
    if (token !== undefined) this.#outcomes.set(marker, outcome)
    this.#refreshing.set(marker, stale)
    this.app.inject({ ...replay, simulate: marker })
      // The lock is let go once the new entry is in the store, where the other instances find it.
      .then(async () => { if (token !== undefined) await outcome.wait(this.lockMs, 'unknown') })
      .catch((error: unknown) => { request.log.warn({ err: error }, 'response cache refresh failed') })
      .finally(() => {
        this.#running.delete(key)
        if (token !== undefined) this.lock?.unlock(key, token)
      })
  }
}

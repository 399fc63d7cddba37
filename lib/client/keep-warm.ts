import type { FastifyBaseLogger } from 'fastify'
import { redactCredentials } from '../errors.js'
import { rawPath } from '../key.js'
import type { WarmCounters } from '../observability/stats.js'
import { publishStoreEmptied } from '../observability/tracing.js'
import type { GuardedStore } from '../stores/guard.js'
import type { WarmReport, WarmRequest } from './warm.js'

export interface KeeperParts {
  store: GuardedStore
  /** Runs requests past the cache (app.cache.warm without `keep`). */
  warm: (requests: readonly WarmRequest[]) => Promise<WarmReport>
  log: FastifyBaseLogger
  namespace: string
  counters: WarmCounters
  intervalMs: number
  /** Whether the app listens now (the address `warm` keys entries by is known). */
  listening: () => boolean
  /** `warm.host` was given: entries are keyed by it, listening or not. */
  hostGiven: boolean
}

/** A part of the store whose generation was there and is gone or replaced: its entries were lost. */
function lost (before: ReadonlyArray<string | null>, now: ReadonlyArray<string | null>): boolean {
  return before.some((token, part) => token !== null && now[part] !== token)
}

/**
 * The declared warm requests (the `warm` option, `app.cache.warm(requests, { keep: true })`): run
 * once the app is ready and the store answers (again once it listens, if they ran before its address
 * was known), and again when the shared store comes back empty. That is found by comparing the
 * store's generations (Redis: one key per shard, gone after a restart without persistence, a flush
 * or clear()) when the client is ready again and every `intervalMs`, never on the request path. With
 * several instances, the one that takes the store's lock re-warms; the others find its entries.
 */
export class WarmKeeper {
  readonly #requests: WarmRequest[] = []
  readonly #parts: KeeperParts
  /** The generations as last seen; undefined until the first run has read them. */
  #seen: ReadonlyArray<string | null> | undefined
  #timer: NodeJS.Timeout | undefined
  /** The app is ready: declared requests run from now on. */
  #ready = false
  /** The first run waits for the store to answer. */
  #startPending = false
  /** The first run went before the app listened: its entries are keyed by inject's host. */
  #ranBeforeListen = false
  #checking: Promise<void> | undefined
  #closed = false

  constructor (parts: KeeperParts) {
    this.#parts = parts
  }

  /** Declares requests; once the app is ready they are run by the caller, and kept from then on. */
  add (requests: readonly WarmRequest[]): void {
    this.#requests.push(...requests)
    if (this.#ready && requests.length > 0) this.#watch()
  }

  /** The app is ready; `storeUp`: the store answers (or cannot tell), else the run waits for it. */
  start (storeUp: boolean): void {
    this.#ready = true
    if (this.#requests.length === 0) return
    if (!storeUp) {
      this.#startPending = true
      return
    }
    this.#firstRun()
  }

  #firstRun (): void {
    this.#startPending = false
    // The app's listen() binds right after ready(): a turn of the event loop later the address is
    // known when it listens on an IP address, and entries are keyed by it.
    setImmediate(() => {
      if (this.#closed) return
      this.#ranBeforeListen = !this.#parts.hostGiven && !this.#parts.listening()
      this.#run('start').then(() => { this.#watch() }, /* c8 ignore next */ () => {})
    })
  }

  /** The app listens: requests run before its address was known run again, keyed by it. */
  listened (): void {
    if (!this.#ranBeforeListen) return
    this.#ranBeforeListen = false
    this.#run('listen').catch(/* c8 ignore next */ () => {})
  }

  /** The store's client is ready (again): the first run if it waited, else a look at the store. */
  storeReady (): void {
    // Its first 'ready' comes while ready() still waits for it: the first run follows ready().
    if (!this.#ready) return
    if (this.#startPending) this.#firstRun()
    else this.check().catch(/* c8 ignore next */ () => {})
  }

  /** Looks for the store having lost its entries, and re-warms if so (one look at a time). */
  async check (): Promise<void> {
    this.#checking ??= this.#check().finally(() => { this.#checking = undefined })
    await this.#checking
  }

  #watch (): void {
    const { store, intervalMs } = this.#parts
    // Closed while the first run went on: no timer for a closed app.
    /* c8 ignore next */
    if (this.#closed) return
    if (this.#timer !== undefined || !store.canTellEmptied) return
    this.#timer = setInterval(() => { this.check().catch(/* c8 ignore next */ () => {}) }, intervalMs).unref()
  }

  /** Reads the generations; undefined when the store cannot answer now (next time, then). */
  async #generations (): Promise<ReadonlyArray<string | null> | undefined> {
    try {
      return await this.#parts.store.generations()
    } catch {
      return undefined
    }
  }

  async #see (): Promise<void> {
    const now = await this.#generations()
    if (now !== undefined) this.#seen = now
  }

  async #check (): Promise<void> {
    const { store, log, counters, namespace, intervalMs } = this.#parts
    if (this.#seen === undefined) return await this.#see()
    const before = this.#seen
    const now = await this.#generations()
    if (now === undefined) return
    this.#seen = now
    if (!lost(before, now)) return
    counters.emptied++
    let token: string | undefined
    try {
      // Held until it expires, not released: an instance that finds the loss a little later (within
      // an interval) must not warm again what this one just did.
      token = store.canLock ? await store.lock(`${namespace}:warm`, Math.max(2 * intervalMs, 10_000)) : 'alone'
    } catch {
      // The store cannot lock now: look again next time.
      this.#seen = before
      return
    }
    const requests = this.#requests.length
    publishStoreEmptied({ store: store.name, requests, rewarming: token !== undefined })
    if (token === undefined) {
      log.info({ responseCache: { store: store.name } }, 'response cache: store came back empty; another instance is re-warming')
      return
    }
    log.warn({ responseCache: { store: store.name, requests } }, `response cache: store came back empty; re-warming ${requests} requests`)
    await this.#run('re-warm')
  }

  async #run (reason: 'start' | 'listen' | 're-warm'): Promise<void> {
    const { log, counters } = this.#parts
    const report = await this.#parts.warm([...this.#requests])
    // What the store holds now is what later looks compare with: read before the run is counted.
    if (this.#parts.store.canTellEmptied) await this.#see()
    counters.runs++
    counters.stored += report.stored.length
    counters.failed += report.failed.length
    log.info({ responseCache: { warm: reason, stored: report.stored.length, failed: report.failed.length } },
      `response cache: warmed ${report.stored.length} of ${this.#requests.length} declared requests`)
    if (report.failed.length > 0) {
      // Paths without their query (which may carry a token), and reasons without credentials.
      const failed = report.failed.map(({ method, url, status, reason: why }) => ({ method, path: rawPath(url), status, reason: redactCredentials(String(why)) }))
      log.warn({ responseCache: { warm: reason, failed } }, `response cache: ${report.failed.length} declared warm requests stored nothing`)
    }
  }

  close (): void {
    this.#closed = true
    clearInterval(this.#timer)
  }
}

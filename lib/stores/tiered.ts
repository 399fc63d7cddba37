import type { FastifyBaseLogger } from 'fastify'
import type { CacheEntry } from '../entry.js'
import { TroubleLog } from '../observability/trouble.js'
import { isPromise } from '../promise.js'
import { GuardedStore } from './guard.js'
import { InvalidationBus, type BusClient, type Drop } from './bus.js'
import type { MemoryStore } from './memory.js'
import type { RedisStore } from './redis.js'
import { kChecksEntries, LIST_TIMEOUT_MS, type CacheStore, type StoreListPage, type StoreListQuery, type StoreSetOptions, type StoreState, type StoreStats } from './store.js'

/**
 * The L1 tag of an entry filled from Redis whose own tags were not read (a RedisStore made without
 * `readTags`): a tag drop drops these as well. Store tags never start with a NUL.
 */
const FROM_L2 = '\u0000l2'
/**
 * A copy L1 holds past its freshness: L1 keeps copies only while they are fresh, so this one was
 * softly purged. Redis is asked instead while it answers: another instance may have refreshed it
 * there already (its bus message not yet here), and the refresh lock is only let go once it has.
 */
const softlyPurged = (entry: CacheEntry): boolean => entry.revalidate !== true && Date.now() - entry.storedAt >= entry.ttl * 1000

/** A lock token for a request that runs its handler while Redis cannot be asked for a real one. */
const LOCAL_TOKEN = 'local'
/** Keys and tags waiting for Redis to come back, at most; past it, Redis's namespace is cleared instead. */
export const PENDING_DROPS_MAX = 10_000

/**
 * Memory (L1, this process) over Redis (L2, shared). Reads try L1, then L2, and an L2 hit is kept in
 * L1 for what is left of its freshness, capped by `localTtlMs`; writes and drops go to both, and
 * every change is told to the other instances over the bus, which drop their L1 copies.
 *
 * Redis trouble never reaches the plugin from here: L2 calls have a guard of their own (timeout,
 * circuit breaker, rate-limited log), so while Redis is away L1 goes on answering what it holds and
 * keeps what the handlers compute.
 */
export class TieredStore implements CacheStore {
  readonly name = 'tiered'
  /** L2 calls are bounded and paused here: the plugin adds no guard of its own, which would pause L1 too. */
  readonly guardsItself = true
  /** L1 holds what the plugin made or L2 decoded, and L2 checks what it decodes. */
  readonly [kChecksEntries] = true
  readonly #l1: MemoryStore
  readonly #l2: GuardedStore
  readonly #redis: RedisStore
  readonly #bus: InvalidationBus | undefined
  readonly #localTtlMs: number
  readonly #timeoutMs: number
  /** Counts every drop applied to L1: an L2 read that saw it change answers a miss, not what it read. */
  #drops = 0
  /**
   * Keys read from L2 right now, with the newest storedAt another instance announced for them
   * meanwhile: a read that brings back an older entry answers a miss.
   */
  readonly #reading = new Map<string, number>()
  /** Drops made while Redis could not take them, sent when it can (the last change per key wins). */
  #pending: { keys: Set<string>, tags: Set<string>, clear: boolean } = { keys: new Set(), tags: new Set(), clear: false }

  constructor (options: { l1: MemoryStore, redis: RedisStore, busClient?: BusClient, namespace: string, timeoutMs: number, localTtlMs: number, log: FastifyBaseLogger }) {
    this.#l1 = options.l1
    this.#redis = options.redis
    this.#l2 = new GuardedStore(options.redis, options.timeoutMs, new TroubleLog(options.log))
    this.#localTtlMs = options.localTtlMs
    this.#timeoutMs = options.timeoutMs
    this.#bus = options.busClient === undefined
      ? undefined
      : new InvalidationBus(options.busClient, options.namespace, { drop: (drop) => { this.#drop(drop) }, distrust: () => { this.#drop({ kind: 'clear' }) } })
  }

  /** The Redis key of `key`, by which a log line names an entry. */
  redisKey (key: string): string {
    return this.#redis.redisKey(key)
  }

  get (key: string): CacheEntry | undefined | Promise<CacheEntry | undefined> {
    const local = this.#l1.get(key)
    if (local !== undefined && !softlyPurged(local)) return local
    return this.#fromL2(key, async () => ({ entry: await this.#l2.getAny(key) }), local).then(({ entry }) => entry)
  }

  getOrLock (key: string, ttlMs: number): { entry?: CacheEntry, token?: string } | Promise<{ entry?: CacheEntry, token?: string }> {
    const local = this.#l1.get(key)
    if (local !== undefined && !softlyPurged(local)) return { entry: local }
    return this.#fromL2(key, async () => await this.#l2.run('get', () => this.#redis.getOrLock(key, ttlMs), undefined, this.#l2.domainOf(key)), local)
  }

  /**
   * An L2 read; while Redis cannot answer, the softly purged copy L1 holds (`local`), else a miss
   * whose handler runs without a shared lock.
   */
  async #fromL2 (key: string, read: () => Promise<{ entry?: CacheEntry, token?: string }>, local?: CacheEntry): Promise<{ entry?: CacheEntry, token?: string }> {
    const drops = this.#drops
    this.#reading.set(key, this.#reading.get(key) ?? 0)
    let found: { entry?: CacheEntry, token?: string }
    try {
      found = await read()
    } catch {
      this.#reading.delete(key)
      return local === undefined ? { token: LOCAL_TOKEN } : { entry: local }
    }
    const newest = this.#reading.get(key) ?? 0
    this.#reading.delete(key)
    // Redis answers again (a slow Redis sends no 'ready'): the drops that waited for it go now.
    if (this.#hasPending()) this.#flushPending().catch(() => {})
    if (found.entry === undefined) return found
    return { entry: this.#keep(key, found.entry, drops, newest), token: found.token }
  }

  /**
   * An entry read from L2, kept in L1 for what is left of its life there; a miss if a drop came
   * meanwhile, or if another instance announced a newer entry for the key.
   */
  #keep (key: string, entry: CacheEntry, drops: number, newest: number): CacheEntry | undefined {
    if (drops !== this.#drops || entry.storedAt < newest) return undefined
    const left = entry.storedAt + entry.ttl * 1000 - Date.now()
    // Kept under the tags Redis holds it by, so that a drop of other tags leaves it.
    /* c8 ignore next: createStore always makes the RedisStore read tags; FROM_L2 is the safe fallback */
    if (left > 0) this.#l1.set(key, entry, { ttl: Math.min(left, this.#localTtlMs) / 1000, tags: this.#redis.tagsOf(entry) ?? [FROM_L2] })
    return entry
  }

  async set (key: string, entry: CacheEntry, options: StoreSetOptions): Promise<void> {
    this.#l1.set(key, entry, { ...options, ttl: Math.min(options.ttl, entry.ttl, this.#localTtlMs / 1000) })
    const lockToken = options.lockToken === LOCAL_TOKEN ? undefined : options.lockToken
    try {
      await this.#l2.set(key, entry, { ...options, lockToken })
    } catch {
      return
    }
    // An overwrite: other instances may hold the entry it replaces.
    this.#tell({ kind: 'written', keys: [key], storedAt: [entry.storedAt] })
  }

  async delete (key: string): Promise<boolean> {
    const local = this.#drop({ kind: 'keys', keys: [key] })
    const remote = await this.#send({ kind: 'keys', keys: [key] })
    return local || remote > 0
  }

  /** How many entries Redis dropped; while Redis is away, how many L1 dropped (Redis's wait their turn). */
  async invalidateTags (tags: readonly string[]): Promise<number> {
    const local = this.#l1.invalidateTags(tags)
    this.#l1.invalidateTags([FROM_L2])
    this.#drops++
    const remote = await this.#send({ kind: 'tags', tags: [...tags] })
    return remote < 0 ? local : remote
  }

  /**
   * Soft purge: copies in this instance's memory are marked (those read from Redis whose tags are not
   * known are dropped), Redis marks its entries, and the other instances mark theirs when the bus
   * message arrives. While Redis is away it waits for Redis as a hard drop of the tags.
   */
  async softInvalidateTags (tags: readonly string[], at: number): Promise<number> {
    const local = this.#l1.softInvalidateTags(tags, at)
    this.#l1.invalidateTags([FROM_L2])
    // A read of Redis under way may bring back what it read before the purge: it answers a miss (#keep).
    this.#drops++
    const remote = await this.#send({ kind: 'tags', tags: [...tags], softAt: at })
    return remote < 0 ? local : remote
  }

  async clear (): Promise<void> {
    this.#drop({ kind: 'clear' })
    await this.#send({ kind: 'clear' })
  }

  /**
   * Applies a drop to Redis, then tells the other instances; answers what Redis dropped, or -1 when
   * Redis could not be asked and the drop waits for it.
   */
  async #send (drop: Drop): Promise<number> {
    let dropped: number
    try {
      if (drop.kind === 'clear') {
        await this.#l2.run('clear', () => this.#redis.clear(), 30_000)
        dropped = 0
      } else if (drop.kind === 'tags') {
        const { tags, softAt } = drop
        dropped = await this.#l2.run('invalidateTags', () => softAt === undefined ? this.#redis.invalidateTags(tags) : this.#redis.softInvalidateTags(tags, softAt))
      } else {
        dropped = 0
        for (const key of drop.keys) if (await this.#l2.run('delete', () => this.#redis.delete(key), undefined, this.#l2.domainOf(key))) dropped++
      }
    } catch {
      this.#postpone(drop)
      return -1
    }
    this.#tell(drop)
    return dropped
  }

  #postpone (drop: Drop): void {
    const pending = this.#pending
    if (drop.kind === 'clear') pending.clear = true
    else if (drop.kind === 'tags') for (const tag of drop.tags) pending.tags.add(tag)
    else for (const key of drop.keys) pending.keys.add(key)
    if (pending.keys.size + pending.tags.size > PENDING_DROPS_MAX) this.#pending = { keys: new Set(), tags: new Set(), clear: true }
  }

  #hasPending (): boolean {
    const pending = this.#pending
    return pending.clear || pending.keys.size > 0 || pending.tags.size > 0
  }

  /** Redis is back: what was dropped meanwhile is dropped there too, and told to the other instances. */
  async #flushPending (): Promise<void> {
    if (!this.#hasPending()) return
    const { keys, tags, clear } = this.#pending
    this.#pending = { keys: new Set(), tags: new Set(), clear: false }
    if (clear) await this.#send({ kind: 'clear' })
    else {
      if (tags.size > 0) await this.#send({ kind: 'tags', tags: [...tags] })
      if (keys.size > 0) await this.#send({ kind: 'keys', keys: [...keys] })
    }
  }

  async lock (key: string, ttlMs: number): Promise<string | undefined> {
    try {
      return await this.#l2.run('lock', () => this.#redis.lock(key, ttlMs), undefined, this.#l2.domainOf(key))
    } catch {
      return LOCAL_TOKEN
    }
  }

  /**
   * Redis's entry, past this process's copy (which it then replaces): what a lock holder reads before
   * it runs anything, since another instance's write may have replaced the copy here while its news is
   * still on the bus.
   */
  getShared (key: string): Promise<CacheEntry | undefined> {
    return this.#fromL2(key, async () => ({ entry: await this.#l2.getAny(key) })).then(({ entry }) => entry)
  }

  async unlock (key: string, token: string): Promise<void> {
    if (token !== LOCAL_TOKEN) this.#l2.unlock(key, token)
  }

  /** Redis's answer: health says whether the shared tier is there (memory always is). */
  async ping (): Promise<unknown> {
    return await this.#l2.run('ping', () => this.#redis.ping())
  }

  /** Redis's figures: every entry is there, and most instances hold only some of them in memory. */
  async stats (groups?: readonly string[]): Promise<StoreStats> {
    return await this.#l2.run('stats', () => this.#redis.stats(groups))
  }

  /**
   * Redis's entries: every entry is there. While Redis cannot answer, this instance's memory tier
   * (`source: 'memory'`): the entries it computed, not those it copied from Redis, whose tags it
   * does not know. A listing begun on one tier goes on on that tier; Redis's cannot go on from memory.
   */
  async list (query: StoreListQuery): Promise<StoreListPage> {
    const [tier, ...rest] = query.cursor ?? []
    if (tier === undefined || tier === 'redis') {
      try {
        const page = await this.#l2.run('list', async () => await this.#redis.list({ ...query, cursor: tier === undefined ? undefined : rest }), LIST_TIMEOUT_MS)
        return { entries: page.entries, cursor: page.cursor === undefined ? undefined : ['redis', ...page.cursor], source: 'redis' }
      } catch (error) {
        if (tier !== undefined) throw error
      }
    } else if (tier !== 'memory') return { entries: [] }
    const page = this.#l1.list({ ...query, cursor: tier === undefined ? undefined : rest })
    return { entries: page.entries, cursor: page.cursor === undefined ? undefined : ['memory', ...page.cursor], source: 'memory' }
  }

  /** Redis's: the shared tier is what can come back empty. */
  async generations (): Promise<ReadonlyArray<string | null>> {
    return await this.#l2.run('generations', () => this.#redis.generations())
  }

  state (): StoreState {
    return this.#redis.state()
  }

  /** Redis connected, then the bus subscribed: from then on no change of another instance is missed. */
  async connect (timeoutMs: number): Promise<boolean> {
    if (!await this.#redis.connect(timeoutMs)) return false
    return await this.#startBus(Math.max(this.#timeoutMs, timeoutMs))
  }

  async #startBus (timeoutMs: number): Promise<boolean> {
    if (this.#bus === undefined || this.#bus.started) return true
    try {
      await this.#bus.start(timeoutMs)
    } catch {
      return false
    }
    // What memory took from Redis before the bus listened was never told of changes: not trusted.
    this.#drop({ kind: 'clear' })
    return true
  }

  onReady (listener: (domains?: readonly number[]) => void): () => void {
    return this.#redis.onReady((domains) => {
      this.#l2.reset(domains)
      if (domains === undefined) {
        // A Redis that was not there at start: the bus subscribes now.
        this.#startBus(this.#timeoutMs * 10).then(async () => { await this.#flushPending() }).catch(() => {})
      }
      listener(domains)
    })
  }

  close (): void {
    this.#bus?.close()
    this.#l1.clear()
  }

  /**
   * A change from another instance, or this one's own: L1 forgets what it drops, and marks what a
   * soft purge names (copies whose tags it does not know are dropped).
   */
  #drop (drop: Drop): boolean {
    if (drop.kind === 'written') {
      drop.keys.forEach((key, i) => {
        const storedAt = drop.storedAt[i]
        if ((this.#l1.get(key)?.storedAt ?? Infinity) < storedAt) this.#l1.delete(key)
        const reading = this.#reading.get(key)
        if (reading !== undefined && reading < storedAt) this.#reading.set(key, storedAt)
      })
      return false
    }
    this.#drops++
    if (drop.kind === 'clear') {
      this.#l1.clear()
      return true
    }
    if (drop.kind === 'tags') {
      if (drop.softAt === undefined) return this.#l1.invalidateTags([...drop.tags, FROM_L2]) > 0
      return this.#l1.softInvalidateTags(drop.tags, drop.softAt) + this.#l1.invalidateTags([FROM_L2]) > 0
    }
    let dropped = false
    for (const key of drop.keys) dropped = this.#l1.delete(key) || dropped
    return dropped
  }

  #tell (drop: Drop): void {
    const sent = this.#bus?.publish(drop)
    if (isPromise(sent)) sent.catch(() => {})
  }
}

import { randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'

/**
 * What one instance tells the others to drop from their local tier: store keys, store tags, or
 * everything. Values never travel; keys and tags are only ever compared, never read as patterns.
 */
export type Drop = { kind: 'keys', keys: string[] } | { kind: 'clear' }
  /** `softAt`: a soft purge at that time (ms): copies are marked expired then, not dropped. */
  | { kind: 'tags', tags: string[], softAt?: number }
  /** Entries written anew: copies stored before `storedAt` are older than what Redis now holds. */
  | { kind: 'written', keys: string[], storedAt: number[] }

/**
 * The wire form, JSON: format version, sender id, the sender's sequence number, kind and items; for a
 * soft purge, its time in `p` (a release before soft purge reads the message as a drop: safe).
 */
interface Message {
  v: 1
  s: string
  n: number
  k: 'k' | 't' | 'c' | 'w'
  x?: string[]
  t?: number[]
  p?: number
}

const FORMAT = 1
const KINDS = { keys: 'k', tags: 't', clear: 'c', written: 'w' } as const

/**
 * Senders whose last number a receiver keeps, at most: the least recently heard is forgotten first.
 * Far more instances than one namespace has (each process is one sender, a restart a new one), and
 * 50,000 forged ids on the channel keep no more than this many (about 100 KB).
 */
export const MAX_SENDERS = 1024
const MAX_SENDER_ID_LENGTH = 32

/**
 * The parts of an ioredis client the bus uses: one connection publishes, its duplicate subscribes. A
 * Cluster that has `spublish` (ioredis 5.9 and later) carries the bus on sharded pub/sub.
 */
export interface BusClient {
  status: string
  isCluster?: boolean
  publish: (channel: string, message: string) => Promise<unknown>
  spublish?: (channel: string, message: string) => Promise<unknown>
  duplicate: (startupNodes?: unknown[], options?: Record<string, unknown>) => BusSubscriber
}

export interface BusSubscriber {
  status: string
  connect: () => Promise<void>
  subscribe: (channel: string) => Promise<unknown>
  ssubscribe?: (channel: string) => Promise<unknown>
  on: (event: string, listener: (...args: any[]) => void) => unknown
  disconnect: () => void
}

export interface BusListener {
  /** Drop what another instance changed. */
  drop: (drop: Drop) => void
  /**
   * A message may have been missed (a gap in a sender's numbers, or the bus connection lost and back):
   * the local tier can no longer be trusted.
   */
  distrust: (why: 'gap' | 'reconnected') => void
}

/**
 * Redis pub/sub between the instances of one namespace (`<namespace>:bus`), on a connection of its
 * own. Pub/sub delivers at most once, so each sender numbers its messages: a receiver that sees a
 * number skipped, or whose subscription was lost, distrusts its local tier rather than serve what a
 * lost message would have dropped.
 *
 * On a Cluster the channel is a shard channel (SSUBSCRIBE/SPUBLISH): it lives on the master of its
 * slot, and messages do not travel the cluster bus to every node. The subscriber is a duplicate of
 * the Cluster with ioredis's `shardedSubscribers`, which follows the channel's slot to a new master
 * after a failover and subscribes there again.
 */
export class InvalidationBus {
  readonly channel: string
  /** Sharded pub/sub (a Cluster), or plain pub/sub (a single Redis, or an older ioredis). */
  readonly sharded: boolean
  readonly #client: BusClient
  readonly #subscriber: BusSubscriber
  readonly #listener: BusListener
  /** Sender id (12 characters): unique across processes and restarts. */
  readonly id = randomBytes(9).toString('base64url')
  #sent = 0
  /**
   * Each sender's last number. A sender forgotten here (1,024 others heard since it last spoke, or
   * the table emptied on a reconnect) is heard again as new past its first message: a gap, so the
   * local tier is emptied. Forgetting costs a cold tier, never a stale answer.
   */
  readonly #lastSeen = new LRUCache<string, number>({ max: MAX_SENDERS })
  #subscribed = false
  #starting: Promise<void> | undefined
  #lost = false
  /** Messages that did not parse or came from a newer format: counted, never acted on. */
  unreadable = 0

  /** How many senders' numbers are kept (at most MAX_SENDERS). */
  get senders (): number {
    return this.#lastSeen.size
  }

  constructor (client: BusClient, namespace: string, listener: BusListener) {
    this.channel = namespace + ':bus'
    this.#client = client
    this.#listener = listener
    this.sharded = client.isCluster === true && typeof client.spublish === 'function'
    const subscriber = this.#subscriber = this.sharded ? client.duplicate([], { shardedSubscribers: true }) : client.duplicate()
    subscriber.on('error', () => {})
    // A keyPrefix is added to a shard channel, which Redis treats as a key: the end of it is the name.
    subscriber.on(this.sharded ? 'smessage' : 'message', (channel: string, text: string) => { if (channel.endsWith(this.channel)) this.#receive(text) })
    const lost = (): void => { if (this.#subscribed) this.#lost = true }
    // The connection (a single Redis), or the subscriber of a shard (a Cluster: its master died, or the
    // connection was killed), is gone: whatever is sent until the subscription is back is lost.
    subscriber.on('close', lost)
    subscriber.on('-subscriber', lost)
    subscriber.on(this.sharded ? 'subscribersReady' : 'ready', () => { this.#resubscribed().catch(() => {}) })
  }

  /**
   * Subscribed again after a loss: ioredis has sent the subscription again, and this one, sent after
   * it on the same connection, answers once both are in place; only then is the local tier dropped,
   * so that nothing sent from then on is missed. If it fails, the next ready event tries again.
   */
  async #resubscribed (): Promise<void> {
    if (!this.#lost) return
    await this.#subscribeChannel()
    if (!this.#lost) return
    this.#lost = false
    this.#lastSeen.clear()
    this.#listener.distrust('reconnected')
  }

  async #subscribeChannel (): Promise<void> {
    const subscriber = this.#subscriber
    await (this.sharded ? (subscriber.ssubscribe as NonNullable<BusSubscriber['ssubscribe']>)(this.channel) : subscriber.subscribe(this.channel))
  }

  /**
   * Subscribes, once its connection is ready (at most `timeoutMs`); answers once Redis confirmed it:
   * messages sent after that reach this instance. Called at start and again when Redis comes: one
   * subscription, however many callers.
   */
  async start (timeoutMs: number): Promise<void> {
    this.#starting ??= this.#subscribe(timeoutMs).catch((error: unknown) => {
      this.#starting = undefined
      throw error
    })
    await this.#starting
  }

  /** Subscribed: from then on every message published on the channel reaches this instance. */
  get started (): boolean {
    return this.#subscribed
  }

  async #subscribe (timeoutMs: number): Promise<void> {
    const subscriber = this.#subscriber
    if (subscriber.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error('the invalidation bus did not connect in time')) }, timeoutMs)
        subscriber.on('ready', () => {
          clearTimeout(timer)
          resolve()
        })
        // The client's own options carry over to its duplicate, lazyConnect included.
        if (subscriber.status === 'wait') subscriber.connect().catch(() => {})
      })
    }
    await this.#subscribeChannel()
    this.#subscribed = true
  }

  /** Tells the other instances; the caller has applied the change itself, and Redis holds it. */
  async publish (drop: Drop): Promise<void> {
    const message: Message = { v: FORMAT, s: this.id, n: ++this.#sent, k: KINDS[drop.kind] }
    if (drop.kind === 'keys' || drop.kind === 'written') message.x = drop.keys
    if (drop.kind === 'written') message.t = drop.storedAt
    if (drop.kind === 'tags') {
      message.x = drop.tags
      if (drop.softAt !== undefined) message.p = drop.softAt
    }
    const text = JSON.stringify(message)
    await (this.sharded ? (this.#client.spublish as NonNullable<BusClient['spublish']>)(this.channel, text) : this.#client.publish(this.channel, text))
  }

  #receive (text: string): void {
    let message: Message
    try {
      message = JSON.parse(text) as Message
    } catch {
      this.unreadable++
      return
    }
    // A sender id is 12 characters: a longer one is made up, and would make the table of senders large.
    if (message?.v !== FORMAT || typeof message.s !== 'string' || message.s.length > MAX_SENDER_ID_LENGTH || typeof message.n !== 'number') {
      this.unreadable++
      return
    }
    if (message.s === this.id) return
    const last = this.#lastSeen.get(message.s)
    this.#lastSeen.set(message.s, message.n)
    // A sender heard from for the first time past its first message: what it sent before may have
    // been missed as well as not.
    if ((last === undefined && message.n !== 1) || (last !== undefined && message.n !== last + 1)) this.#listener.distrust('gap')
    const items = Array.isArray(message.x) ? message.x.filter((item): item is string => typeof item === 'string') : []
    if (message.k === 'w') {
      const times = Array.isArray(message.t) ? message.t : []
      // A time that is not a number is read as "now": the copy here is dropped.
      this.#listener.drop({ kind: 'written', keys: items, storedAt: items.map((_, i) => typeof times[i] === 'number' ? times[i] : Date.now()) })
    } else if (message.k === 'k') this.#listener.drop({ kind: 'keys', keys: items })
    // A soft purge's time that is not a finite number: the copies are dropped instead.
    else if (message.k === 't') this.#listener.drop(Number.isFinite(message.p) ? { kind: 'tags', tags: items, softAt: message.p } : { kind: 'tags', tags: items })
    else if (message.k === 'c') this.#listener.drop({ kind: 'clear' })
    else this.unreadable++
  }

  close (): void {
    this.#subscribed = false
    this.#subscriber.disconnect()
  }
}

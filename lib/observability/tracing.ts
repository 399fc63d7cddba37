import diagnostics from 'node:diagnostics_channel'

// Tracing channels (node:diagnostics_channel): what the cache does, for a subscriber to turn into
// spans (docs/API.md "Tracing"). A context says which route or operation, what came of it and how many
// bytes; never a key, a tenant, a tag's or value's contents. Nothing is built unless someone subscribes.

/** What one traced operation publishes: set as it goes, complete on `end` or `asyncEnd`. */
export interface CacheTraceContext {
  /** The operation: `lookup`, `store`, `invalidate` or `wrap`. */
  operation: 'lookup' | 'store' | 'invalidate' | 'wrap'
  /** The route (`"GET /items/:id"`) of a lookup or store. */
  route?: string
  /** `memory`, `redis`, `tiered`, or a custom store's `name`. */
  store: string
  /**
   * lookup: `hit`, `stale`, `miss`, `bypass`; store: `stored`, `not-stored`; wrap: `hit`, `stale`,
   * `miss`, `collapsed` (joined a run of the same key), `error`; invalidate: `done`, `error`.
   */
  result?: string
  /** Why not stored, or bypassed (the reasons of docs/API.md "Never stored"). */
  reason?: string
  /** The body's bytes (a hit's, or what was stored). */
  bytes?: number
  /** invalidate: how many tags. */
  tags?: number
  /** invalidate: a soft purge (entries marked expired, not dropped). */
  soft?: boolean
  /** Set when the operation failed. */
  error?: unknown
}

const channels = {
  lookup: diagnostics.tracingChannel<unknown, CacheTraceContext>('fastify-response-cache:lookup'),
  store: diagnostics.tracingChannel<unknown, CacheTraceContext>('fastify-response-cache:store'),
  invalidate: diagnostics.tracingChannel<unknown, CacheTraceContext>('fastify-response-cache:invalidate'),
  wrap: diagnostics.tracingChannel<unknown, CacheTraceContext>('fastify-response-cache:wrap')
}

/**
 * A context when someone subscribes to the operation's channel (its `start` published), undefined
 * otherwise: the whole cost of tracing nobody listens to is this check.
 */
export function traceStart (operation: CacheTraceContext['operation'], store: string, route?: string): CacheTraceContext | undefined {
  const channel = channels[operation]
  if (!channel.hasSubscribers) return undefined
  const context: CacheTraceContext = { operation, store, route }
  channel.start.publish(context)
  return context
}

/** Contexts whose starting call returned before their result (traceReturned). */
const returned = new WeakSet<CacheTraceContext>()

/**
 * The operation is over: `end` when it finished within the call that started it, else `end` was
 * published when that call returned (traceReturned) and `asyncStart`, `asyncEnd` are now. A subscriber
 * ends its span on `asyncEnd`, or on `end` once the context has its `result`.
 */
export function traceEnd (context: CacheTraceContext | undefined, result: string, details?: { reason?: string, bytes?: number, error?: unknown }): void {
  if (context === undefined) return
  context.result = result
  if (details?.reason !== undefined) context.reason = details.reason
  if (details?.bytes !== undefined) context.bytes = details.bytes
  const channel = channels[context.operation]
  if (details?.error !== undefined) {
    context.error = details.error
    channel.error.publish(context)
  }
  if (!returned.has(context)) {
    channel.end.publish(context)
    return
  }
  channel.asyncStart.publish(context)
  channel.asyncEnd.publish(context)
}

/** The call that started an operation returned before its result: `end` of its synchronous part. */
export function traceReturned (context: CacheTraceContext | undefined): void {
  if (context === undefined) return
  returned.add(context)
  channels[context.operation].end.publish(context)
}

/** A store's kind, as the contexts name it: `memory`, `redis`, `tiered`, or a custom store's `name`. */
export function storeKind (store: unknown): string {
  return typeof store === 'string' ? store : String((store as { name?: unknown }).name ?? 'custom')
}

/** What the `fastify-response-cache:store-emptied` channel publishes. */
export interface StoreEmptiedMessage {
  /** `redis`, `tiered`, or a custom store's `name`. */
  store: string
  /** The declared warm requests there are to run again. */
  requests: number
  /** Whether this instance runs them (it took the lock), or leaves them to another instance. */
  rewarming: boolean
}

const storeEmptied = diagnostics.channel('fastify-response-cache:store-emptied')

/** The shared store was found to have lost its entries (docs/API.md "Warming that survives"). */
export function publishStoreEmptied (message: StoreEmptiedMessage): void {
  if (storeEmptied.hasSubscribers) storeEmptied.publish(message)
}

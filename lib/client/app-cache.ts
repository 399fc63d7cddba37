import type { FastifyBaseLogger } from 'fastify'
import type { Static, TSchema } from '@sinclair/typebox'
import { FST_RESPONSE_CACHE_INVALID_ARGUMENT, FST_RESPONSE_CACHE_NOT_SUPPORTED, redactCredentials } from '../errors.js'
import { isMarker } from '../rules/variants.js'
import { isKeyPart, tenantSegment } from '../key.js'
import { CursorSigner } from './cursor.js'
import { listedEntry, listQuery, type EntryPage, type ListSelector } from './listing.js'
import type { CacheStats, Stats } from '../observability/stats.js'
import { logNotDone } from '../observability/trouble.js'
import { dropTags, type GuardedStore } from '../stores/guard.js'
import type { CacheHealth, StoreListPage, StoreStats } from '../stores/store.js'
import { countedGroups, selectorTags, TAGS_EXPECTED, tagTooLong, type PurgeSelector } from '../tags.js'
import { ValueCache } from './value-cache.js'
import type { GetValueOptions, SetValueOptions, ValueOptions, WrapFunction, WrapOptions } from './value-options.js'
import { normalise, type WarmCallOptions, type WarmReport, type WarmRequest } from './warm.js'
import type { WarmKeeper } from './keep-warm.js'
import { traceEnd, traceReturned, traceStart } from '../observability/tracing.js'

export type { GetValueOptions, SetValueOptions, ValueOptions, WrapContext, WrapFunction, WrapOptions } from './value-options.js'
export type { EntryPage, ListedEntry, ListSelector } from './listing.js'
export type { WarmCallOptions, WarmReport, WarmRequest, WarmResult } from './warm.js'

/** What `invalidate` drops: entries with any of the tags, and of the route; `tenant` narrows both. */
export interface InvalidateSelector {
  tags?: readonly string[]
  /** `"GET /items/:id"` for one method, `"/items/:id"` for all of them. */
  route?: string
  /** A tenant id, as the `tenant` option answers it. Alone, it drops everything of that tenant. */
  tenant?: string | number
  /**
   * Soft purge: mark the entries expired instead of dropping them. Each is then answered stale
   * (`x-cache: STALE`) within its `staleWhileRevalidate` window, counted from the purge, while one
   * refresh runs, and past it (or without one) it is a miss. A custom store without
   * `softInvalidateTags` drops them.
   * @defaultValue false
   * @example app.cache.invalidate({ tags: ['product:42'], soft: true })
   */
  soft?: boolean
}

/** `app.cache`: values and responses in one store. */
export interface ResponseCacheClient {
  /** A value stored with `set` or `wrap`, or undefined (also when the store fails, or the value no longer matches `schema`). */
  get: {
    <S extends TSchema>(key: string, options: GetValueOptions<S> & { schema: S }): Promise<Static<S> | undefined>
    <T = unknown>(key: string, options?: GetValueOptions & { schema?: undefined }): Promise<T | undefined>
  }
  /**
   * Stores a value; resolves to true once the store holds it, false when the store could not take it
   * (away, slow or failing: the write is lost, not thrown). Throws FST_RESPONSE_CACHE_UNSERIALIZABLE_VALUE
   * for functions, symbols or cycles.
   */
  set: <T>(key: string, value: T, options?: SetValueOptions) => Promise<boolean>
  /** Removes a value; resolves to true once the store no longer holds it, false when the store could not be asked. */
  del: (key: string, options?: ValueOptions) => Promise<boolean>
  /**
   * The cached value of `key`, or `fn(ctx)`'s, run once for any number of concurrent callers and stored
   * as `ctx` then says (its `ttl`, `tags`, `staleIfError`; not at all after `ctx.skip()`).
   */
  wrap: {
    <S extends TSchema>(key: string, fn: WrapFunction<Static<S>>, options: WrapOptions<S> & { schema: S }): Promise<Static<S>>
    <T>(key: string, fn: WrapFunction<T>, options?: WrapOptions & { schema?: undefined }): Promise<T>
  }
  /**
   * Drops response and value entries alike (with `soft: true`, marks them expired); resolves to how
   * many were dropped or marked, or undefined when the store could not be asked (nothing was dropped).
   */
  invalidate: (what: InvalidateSelector) => Promise<number | undefined>
  /**
   * A page of the live entries of a route, a tag or a tenant (every selector given must match), at
   * most `limit`; undefined when the store could not be asked. Rejects with
   * FST_RESPONSE_CACHE_NOT_SUPPORTED for a custom store without `list`.
   */
  list: (selector: ListSelector) => Promise<EntryPage | undefined>
  /** Drops every entry of this plugin's namespace; rejects when the store fails. */
  clear: () => Promise<void>
  /** Counters in total and per route, and the store's own figures. */
  stats: () => CacheStats
  /** Whether the store answers, and how fast; the error never holds credentials. */
  health: () => Promise<CacheHealth>
  /**
   * Fills entries by running requests past the cache, after `ready()`; with `{ keep: true }` also
   * declares them, as the `warm` option does: warmed again when the shared store comes back empty.
   */
  warm: (requests: ReadonlyArray<string | WarmRequest>, options?: WarmCallOptions) => Promise<WarmReport>
}

/** clear() walks the namespace with SCAN: it gets longer than a request-path call. */
export const CLEAR_TIMEOUT_MS = 30_000

function checkSelector (what: unknown): InvalidateSelector {
  const fail = (name: string, problem: string): never => { throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT(name, problem) }
  if (typeof what !== 'object' || what === null) return fail('invalidate', 'expected an object { tags, route, tenant, soft }')
  const { tags, route, tenant, soft } = what as Record<string, unknown>
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((tag) => typeof tag === 'string'))) fail('tags', 'expected an array of strings')
  // No entry can carry a longer tag: asking to drop one is a mistake worth hearing about.
  if ((tags as string[] | undefined)?.some(tagTooLong) === true) fail('tags', TAGS_EXPECTED['tag-too-long'])
  if (route !== undefined && typeof route !== 'string') fail('route', 'expected a string such as "GET /items/:id" or "/items/:id"')
  if (tenant !== undefined && !isKeyPart(tenant)) fail('tenant', 'expected a string or a finite number')
  if (soft !== undefined && typeof soft !== 'boolean') fail('soft', 'expected a boolean')
  return what as InvalidateSelector
}

export interface ClientParts {
  store: GuardedStore
  stats: Stats
  namespace: string
  ttl: number
  ttlJitter: number
  /** The plugin's `sharedValues`: whether get and wrap answer shared frozen values by default. */
  sharedValues: boolean
  /** The plugin's `staleIfError`: the default window of `wrap`. */
  staleIfError: number
  /** The plugin's `coalesceTimeout`: how long one instance's run of `wrap`'s `fn` keeps the others waiting. */
  lockMs: number
  log: FastifyBaseLogger
  /** Runs requests past the cache. */
  warm: (requests: readonly WarmRequest[]) => Promise<WarmReport>
  /** The declared requests, which `warm(requests, { keep: true })` adds to. */
  keeper: WarmKeeper
  /** Waits for response writes still on their way to the store, so none lands after an invalidation. */
  flush: () => Promise<void> | undefined
  /** Ids of the routes that store entries (`"GET /items/:id"`): a remote store counts their sets. */
  routeIds: () => Iterable<string>
}

/** A remote store's figures are asked for at most this often by stats(); the stats route asks each time. */
export const STORE_STATS_MAX_AGE_MS = 5000

/** The store tags a purge selects: what `invalidate` would for its tags and groups, and for each route. */
function purgedTags ({ tags, routes, groups, tenant }: PurgeSelector): string[] {
  const segment = tenant === undefined ? undefined : tenantSegment(tenant)
  // A tenant alone selects everything of that tenant, as in invalidate.
  if (tags === undefined && routes === undefined && groups === undefined) return selectorTags({ tenant: segment })
  const selected = selectorTags({ tags: tags ?? [], groups, tenant: segment })
  for (const route of routes ?? []) selected.push(...selectorTags({ route, tenant: segment }))
  return [...new Set(selected)]
}

export function createClient ({ store: guarded, stats, namespace, ttl, staleIfError, ttlJitter, sharedValues, lockMs, log, warm, keeper, flush, routeIds }: ClientParts): {
  client: ResponseCacheClient
  /** Asks the store for fresh figures (bounded by `timeout`); stats() answers them from then on. */
  refreshStoreStats: () => Promise<void>
  /** `invalidate` for the purge route: several routes, and paths; its selectors are checked by the route's schema. */
  purge: (what: PurgeSelector) => Promise<number | undefined>
} {
  const values = new ValueCache(guarded, namespace, { ttl, staleIfError, ttlJitter, shared: sharedValues }, stats.values, log, lockMs)
  const notDone = (operation: string, error: unknown): void => { logNotDone(log, operation, error) }
  const cursors = new CursorSigner(guarded, namespace)
  const listNotDone = (error: unknown): undefined => {
    stats.other.errors++
    notDone('list', error)
    return undefined
  }
  let last: StoreStats & { name: string } = { name: guarded.name, entries: 0, bytes: 0, evictions: 0 }
  let lastAt = -Infinity
  let refreshing: Promise<void> | undefined
  const refreshStoreStats = async (): Promise<void> => {
    if (!guarded.canMeasure) return
    refreshing ??= (async () => {
      try {
        // Responses already answered count: their writes are waited for (each bounded by `timeout`).
        await flush()
        last = { name: guarded.name, ...await guarded.measure(countedGroups(routeIds())) }
      } catch {
        stats.other.errors++
      } finally {
        lastAt = Date.now()
        refreshing = undefined
      }
    })()
    await refreshing
  }
  const storeStats = (): StoreStats & { name: string } => {
    // The memory store counts in place; a remote store's figures are fetched in the background, since
    // stats() is synchronous: it answers the last figures (zeros until the first arrive).
    if (!guarded.remote && guarded.canMeasure) return { name: guarded.name, ...guarded.measure() as StoreStats }
    if (Date.now() - lastAt > STORE_STATS_MAX_AGE_MS) refreshStoreStats().catch(/* c8 ignore next */ () => {})
    return last
  }
  /**
   * Drops (or with `soft`, marks expired) the entries of these store tags: how many, or undefined when
   * the store could not be asked (logged, counted).
   */
  const dropSelected = async (selected: readonly string[], soft: boolean | undefined): Promise<number | undefined> => {
    if (selected.length === 0) return 0
    const trace = traceStart('invalidate', guarded.name)
    if (trace !== undefined) {
      trace.tags = selected.length
      if (soft === true) trace.soft = true
    }
    traceReturned(trace)
    try {
      const dropped = await dropTags(guarded, flush, selected, soft)
      traceEnd(trace, 'done')
      return dropped
    } catch (error) {
      traceEnd(trace, 'error', { error })
      stats.other.errors++
      notDone('invalidate', error)
      return undefined
    }
  }
  const purge = async (what: PurgeSelector): Promise<number | undefined> => {
    // Bounded like invalidate's: a tag no entry can carry is the caller's mistake.
    checkSelector({ tags: what.tags, tenant: what.tenant, soft: what.soft })
    return await dropSelected(purgedTags(what), what.soft)
  }
  const client: ResponseCacheClient = {
    get: values.get.bind(values) as ResponseCacheClient['get'],
    set: values.set.bind(values),
    del: values.del.bind(values),
    wrap: values.wrap.bind(values) as ResponseCacheClient['wrap'],
    invalidate: async (what) => {
      const { tags, route, tenant, soft } = checkSelector(what)
      return await dropSelected(selectorTags({ tags, route, tenant: tenant === undefined ? undefined : tenantSegment(tenant) }), soft)
    },
    list: async (selector) => {
      // A cursor of the wrong form throws here, before the store is asked anything.
      const { query, cursor } = listQuery(selector)
      if (!guarded.canList) throw new FST_RESPONSE_CACHE_NOT_SUPPORTED(guarded.name, 'list')
      let secret: Buffer
      try {
        secret = await cursors.secret()
      } catch (error) {
        return listNotDone(error)
      }
      // One this cache did not sign throws; another listing's ends this one. Either way no store is
      // asked with it, so a bad cursor never counts as a store failure.
      const position = cursor === undefined ? undefined : cursors.open(secret, query, cursor)
      if (cursor !== undefined && position === undefined) return { entries: [], cursor: undefined, source: guarded.name }
      let page: StoreListPage
      try {
        // Responses already answered are listed: their writes are waited for (each bounded by `timeout`).
        await flush()
        page = await guarded.list({ ...query, cursor: position })
      } catch (error) {
        return listNotDone(error)
      }
      const now = Date.now()
      return {
        // A varying resource's marker is bookkeeping, not an answer: its variants are listed instead.
        entries: page.entries.filter((found) => !isMarker(found.entry)).map((found) => listedEntry(found, namespace, selector.tenant, now)),
        cursor: page.cursor === undefined ? undefined : cursors.sign(secret, query, page.cursor),
        source: page.source ?? guarded.name
      }
    },
    clear: async () => {
      await flush()
      try {
        await guarded.clear(CLEAR_TIMEOUT_MS)
      } catch (error) {
        notDone('clear', error)
        throw error
      }
    },
    stats: () => stats.snapshot(storeStats()),
    health: async () => {
      const started = performance.now()
      try {
        await guarded.ping()
        return { ok: true, store: guarded.name, state: 'up', latencyMs: Math.round((performance.now() - started) * 100) / 100 }
      } catch (error) {
        const state = guarded.state() ?? 'down'
        return { ok: false, store: guarded.name, state: state === 'up' ? 'down' : state, error: redactCredentials(String((error as Error)?.message ?? error)) }
      }
    },
    warm: async (requests, options) => {
      if (!Array.isArray(requests)) throw new FST_RESPONSE_CACHE_INVALID_ARGUMENT('warm', 'expected an array of requests')
      const items = requests.map(normalise)
      if (options?.keep === true) keeper.add(items)
      return await warm(items)
    }
  }
  return { client, refreshStoreStats, purge }
}

import { Type, type TObject, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import type { Registry } from 'prom-client'
import { FST_RESPONSE_CACHE_INVALID_OPTION, FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG, redactCredentials } from './errors.js'
import { checkEncryptionOption, type EncryptionOptions } from './stores/encryption-options.js'
import type { CacheStore } from './stores/store.js'
import { TAGS_EXPECTED, tagsProblem, tagTooLong } from './tags.js'
import { REQUEST_ERROR_STATUSES } from './rules/storability.js'
import { HAS_ZSTD, type CompressionSettings } from './compression/encode.js'
import { ENCODINGS, type Encoding } from './entry.js'
import { RESPONSE_HEADERS } from './rules/per-request.js'
import type { WarmRequest } from './client/warm.js'
import { cacheStatusNameProblem, DEFAULT_CACHE_STATUS_NAME, serializeCacheStatusName } from './rules/cache-status.js'

export const DEFAULT_NAMESPACE = 'rc'
export const DEFAULT_TTL = 60
export const DEFAULT_MAX_ENTRY_BYTES = 1_048_576
export const DEFAULT_MEMORY_MAX_BYTES = 67_108_864
export const DEFAULT_TIMEOUT_MS = 100
export const DEFAULT_COALESCE_TIMEOUT_MS = 5000
export const DEFAULT_READY_TIMEOUT_MS = 3000
export const DEFAULT_LOCAL_TTL = 60
/** Seconds between two looks at whether the shared store came back empty (`warm.interval`). */
export const DEFAULT_WARM_INTERVAL = 30
export const DEFAULT_STATS_PATH = '/cache/stats'
export const DEFAULT_PURGE_PATH = '/cache/purge'
export const DEFAULT_STATUS_CODES = [200]
/**
 * With `ttl: 'origin'` the response's own headers decide, as RFC 9111 section 3 lets any final status
 * be stored: every status a route may list (200 to 499) but 206 (a part, never stored for the whole),
 * 304 (no body of its own) and the request errors (REQUEST_ERROR_STATUSES).
 */
export const ORIGIN_STATUS_CODES = Array.from({ length: 300 }, (_, i) => 200 + i)
  .filter((status) => status !== 206 && status !== 304 && !REQUEST_ERROR_STATUSES.has(status))
/** The longest heuristic freshness, as Apache Traffic Server caps it by default: one day. */
export const DEFAULT_HEURISTIC_MAX_TTL = 86_400
/** How long a stale origin-mode entry with a validator is kept to be revalidated, as nginx's `inactive`: ten minutes. */
export const DEFAULT_KEEP_FOR_REVALIDATION = 600

/**
 * A route's freshness: a number of seconds, or `'origin'`: the response's own `CDN-Cache-Control`,
 * `Cache-Control` and `Expires`, less the `Age` it arrives with (RFC 9111, as a shared cache).
 */
export type Ttl = number | 'origin'

/** Bytes below which a body is not compressed, as @fastify/compress's `threshold`. */
export const DEFAULT_COMPRESS_THRESHOLD = 1024
/** @fastify/compress's brotli quality: 11, zlib's default, costs many times more CPU for a few percent. */
export const DEFAULT_BROTLI_QUALITY = 4
export const DEFAULT_GZIP_LEVEL = 6

/**
 * `compress`: the encodings the cache makes of a compressible response and serves from the entry.
 * `false` turns it off (a response @fastify/compress encodes is then not stored, as it varies on
 * Accept-Encoding).
 */
export interface CompressOptions {
  /** Bodies smaller than this many bytes are stored and sent as they are. @defaultValue `1024` */
  threshold?: number
  /**
   * The encodings made, each once per entry; `'zstd'` only where the runtime's zlib has it (Node 22.15
   * and 23.8 on), silently left out elsewhere. @defaultValue `['br', 'gzip', 'zstd']`
   * @example `['gzip']`
   */
  encodings?: Encoding[]
  /** Brotli quality, 0 to 11. @defaultValue `4` */
  brotliQuality?: number
  /** Gzip level, 1 to 9. @defaultValue `6` */
  gzipLevel?: number
}

/** `warm` as an object: the requests, and how they are run. */
export interface WarmOptions {
  /**
   * The requests: a URL (GET) or `{ url, method, headers, body }`, as `app.cache.warm` takes them.
   * @example `['/products/top', { method: 'POST', url: '/search', body: { q: 'aspirin' } }]`
   */
  requests: ReadonlyArray<string | WarmRequest>
  /**
   * The `Host` warmed entries are keyed by, for requests that give none: the host clients send (the
   * public name behind a proxy). @defaultValue the address the app listens on (`127.0.0.1:3000`;
   * `localhost:3000` when it listens on `localhost` or every interface), or inject's `localhost:80`
   * while it does not listen
   * @example `'api.example.com'`
   */
  host?: string
  /**
   * Seconds between two looks at whether the shared store (Redis, tiered) came back empty; the
   * client's reconnection is looked at too. 0.1 to 86400. @defaultValue `30`
   */
  interval?: number
}

/** `statsRoute` as an object. */
export interface StatsRouteOptions {
  /** Where the JSON and Prometheus text answer. @defaultValue `'/cache/stats'` */
  path?: string
  /** Runs before the route and the dashboard's routes: reply 401 from it to protect them. */
  onRequest?: onRequestHookHandler | onRequestHookHandler[]
  /**
   * An HTML page at `<path>/dashboard` (its script and style at `<path>/dashboard.js` and `.css`):
   * counters, hit ratio over the last 5 minutes, store health, entries listed by route, tag or
   * tenant, invalidation by tag or route. `true`, or `{ interval }`: seconds between the samples of
   * the counters the recent hit ratio is worked out from (1 to 60, default 10). It lists URLs and
   * drops entries, so it needs `onRequest`, or `public: true`. @defaultValue `false`
   */
  dashboard?: boolean | { interval?: number }
  /**
   * Says the route is meant to be open (a guard elsewhere, such as the network, protects it): no
   * warning at `ready()` for a missing `onRequest`, and `dashboard` allowed without one. @defaultValue `false`
   */
  public?: boolean
}

/** `purgeRoute`: HTTP purge for operators and origins, behind a guard. */
export interface PurgeRouteOptions {
  /**
   * Where `POST` takes a JSON body `{ tags?, routes?, urls?, tenant?, soft? }` and answers
   * `{ purged, soft }` (see "Purging" in docs/API.md). @defaultValue `'/cache/purge'`
   */
  path?: string
  /**
   * Runs before the purge route (and `PURGE`): reply 401 or 403 from it to refuse the request.
   * Required, unless `public: true`.
   * @example `async (request, reply) => { if (request.headers.authorization !== expected) await reply.code(401).send() }`
   */
  onRequest?: onRequestHookHandler | onRequestHookHandler[]
  /**
   * Says the routes are meant to be open (the network, or an app-wide hook, protects them): without
   * it, and without `onRequest`, `ready()` fails. @defaultValue `false`
   */
  public?: boolean
  /**
   * Also answer the `PURGE` method on any URL (as Varnish and Fastly do): drops the entries of that
   * URL's host and path, behind the same guard. The plugin adds `PURGE` to Fastify's methods and
   * declares `PURGE /*`. @defaultValue `false`
   * @example `curl -X PURGE -H 'authorization: Bearer …' https://proxy.example.com/items/1`
   */
  purgeMethod?: boolean
}

/** `surrogateKeys` as an object. */
export interface SurrogateKeysOptions {
  /** Send the `Surrogate-Key` and `Cache-Tag` headers on to the client (and store them). @defaultValue `false` */
  keep?: boolean
}

/** Options given to `app.register(responseCache, options)`. */
export interface ResponseCacheOptions {
  /**
   * Where entries live: `'memory'` (embedded LRU), `'redis'`, `'tiered'` (memory over Redis, kept in step
   * across instances), or a custom {@link CacheStore}.
   * @defaultValue `'memory'`
   */
  store?: 'memory' | 'redis' | 'tiered' | CacheStore
  /** ioredis `Redis` or `Cluster` for `store: 'redis'`. @defaultValue `app.redis` from `@fastify/redis` */
  redis?: unknown
  /**
   * First segment of every key; letters, digits, `_`, `-` and `.`, at most 64 characters.
   * @defaultValue `'rc'`
   */
  namespace?: string
  /**
   * Seconds a stored response is fresh, for routes that do not set their own; or `'origin'` for
   * freshness from the response's own headers (see "HTTP caching (RFC 9111)" in docs/API.md).
   * Values stored with `app.cache.set` or `wrap` default to this, or to 60 when it is `'origin'`.
   * @defaultValue `60`
   */
  ttl?: Ttl
  /**
   * With `ttl: 'origin'`: give a response without explicit freshness a tenth of the time since its
   * `Last-Modified`, for the statuses RFC 9110 calls heuristically cacheable. Off: such responses are
   * not stored. @defaultValue `false`
   */
  heuristicFreshness?: boolean
  /** Seconds of heuristic freshness at most. @defaultValue `86_400` (one day) */
  heuristicMaxTtl?: number
  /**
   * With `ttl: 'origin'`: seconds a stale entry that has a validator (`ETag`, `Last-Modified`) stays
   * stored, so that the next request revalidates it with a conditional request (a 304 costs the origin
   * no body) instead of fetching it whole. `0` keeps nothing past its freshness and stale windows.
   * @defaultValue `600`
   */
  keepForRevalidation?: number
  /** Seconds a stale entry may be served while one refresh runs. @defaultValue `0` */
  staleWhileRevalidate?: number
  /**
   * The default of routes' `eagerRefresh`: a fraction strictly between 0 and 1 of an entry's freshness
   * lifetime past which a hit is answered as usual and starts one background refresh of the entry
   * (one per key across instances sharing a store), so that a key in use never expires. `false` is off.
   * @defaultValue `false`
   * @example `0.8` (an entry of a 60 s `ttl` read 48 s or more after it was stored is refreshed)
   */
  eagerRefresh?: number | false
  /**
   * Seconds a stale entry may be served when the handler throws or answers 5xx; also the default of
   * `app.cache.wrap`'s `staleIfError` (the old value answered when its function throws). @defaultValue `0`
   */
  staleIfError?: number
  /**
   * A fraction from 0 to 1: each TTL written (of a response with a number `ttl`, of a value) is multiplied
   * by a random factor from `1 - ttlJitter` to 1, so that entries written together do not all expire
   * together. Shorter, never longer than asked; `0` is off. Does not apply to `ttl: 'origin'`, where
   * the response's own headers decide.
   * @defaultValue `0`
   * @example `0.1` (a `ttl` of 600 is stored for 540 to 600 seconds)
   */
  ttlJitter?: number
  /**
   * The tenant of a request (a string or a finite number; undefined for none); entries of different
   * tenants never mix. Any other answer (null, an object, NaN) makes the request bypass the cache.
   * @example `(request) => request.headers['x-tenant-id'] as string | undefined`
   */
  tenant?: (request: FastifyRequest) => string | number | undefined
  /** Responses larger than this many bytes, body and headers together, are served but not stored. @defaultValue `1_048_576` */
  maxEntryBytes?: number
  /** Memory store settings. */
  memory?: {
    /** Bytes the memory store (and the tiered store's memory tier) may hold (bodies, headers and keys counted). @defaultValue `67_108_864` */
    maxBytes?: number
  }
  /** `store: 'tiered'`: memory over Redis. */
  tiered?: {
    /**
     * Seconds an entry stays in this instance's memory at most, whatever its TTL in Redis: the bound
     * on how long a lost invalidation message can leave an old answer here. @defaultValue `60`
     */
    localTtl?: number
  }
  /**
   * Encrypts every entry and value written to Redis (AES-256-GCM): the first key seals, every key
   * listed opens, so keys rotate without a flush. The memory store is unaffected. @defaultValue none
   */
  encryption?: EncryptionOptions
  /** Milliseconds a store call may take before the request goes on without the cache. @defaultValue `100` */
  timeout?: number
  /**
   * Milliseconds `app.ready()` waits for a Redis client that is still connecting (or made with
   * `lazyConnect`). Past it the app starts without the cache, says so once at warn, and uses Redis
   * from the moment the client is ready. @defaultValue `3000`
   */
  readyTimeout?: number
  /**
   * Milliseconds a request waits for another request of the same key that is already running the
   * handler, before it runs the handler itself. @defaultValue `5000`
   */
  coalesceTimeout?: number
  /**
   * Let a client's `cache-control: no-cache` (or `max-age=0`, or `pragma: no-cache`) skip the stored
   * entry and refresh it. Off by default: a client must not reach the origin at will. @defaultValue `false`
   */
  honorClientNoCache?: boolean
  /**
   * What `app.cache.get` and `wrap` answer by default (a call's `shared` option overrides it).
   * `false`: a fresh copy, decoded from the stored bytes on every call, that the caller may change.
   * `true`: one deep-frozen object per stored value, decoded once and kept beside the entry in this
   * process's memory and handed to every caller (no decode on a hit); changing it throws in strict mode.
   * @defaultValue `false`
   * @example `{ sharedValues: true }`
   */
  sharedValues?: boolean
  /**
   * A prom-client `Registry` of the app's: the plugin's counters register there too (labelled by
   * `namespace`), for the app's own `/metrics`.
   */
  registry?: Registry
  /**
   * Expose counters over HTTP: `true`, or `{ path, onRequest, dashboard, public }`. `onRequest`
   * guards the route (and the dashboard's); `dashboard` adds an HTML page at `<path>/dashboard` (see
   * "Dashboard" in docs/API.md), which needs `onRequest` or `public: true`. @defaultValue `false`
   */
  statsRoute?: boolean | StatsRouteOptions
  /**
   * An HTTP purge route for operators and origins: `{ path, onRequest, public, purgeMethod }` (see
   * "Purging" in docs/API.md). Needs `onRequest` (a guard) or `public: true`. @defaultValue none
   * @example `{ onRequest: requireToken, purgeMethod: true }`
   */
  purgeRoute?: PurgeRouteOptions
  /**
   * Tag each stored response with the keys its `Surrogate-Key` (space-separated, Fastly) and
   * `Cache-Tag` (comma-separated, Cloudflare) headers name, as if passed to `reply.cacheTags()`; the
   * headers are then removed from the response (sent and stored) unless `{ keep: true }`. For every
   * cached route; a route's `config.cache.surrogateKeys` overrides it. @defaultValue `false`
   * @example `true`
   */
  surrogateKeys?: boolean | SurrogateKeysOptions
  /**
   * Compression the cache owns: a compressible response (JSON, text, JavaScript, CSS, SVG, XML) of
   * `threshold` bytes or more is stored with its br and gzip encodings, and each request gets the one
   * its `Accept-Encoding` prefers. `false` turns it off. See "Compression" in docs/API.md.
   * @defaultValue `{ threshold: 1024, encodings: ['br', 'gzip', 'zstd'], brotliQuality: 4, gzipLevel: 6 }`
   * @example `{ threshold: 2048, encodings: ['gzip'] }`
   */
  compress?: false | CompressOptions
  /**
   * Response headers that belong to the request, not to the response, on every cached route (with the
   * route's own): never stored, and a hit keeps the value the request's hooks set, if any. For headers
   * the handler or an `onSend` hook sets; those set before the cache's lookup are found out alone (see
   * "Per-request headers" in docs/API.md). Names are matched in any case; those describing the stored
   * response (`etag`, `content-type`, `cache-control`, `vary`…) may not be listed.
   * @defaultValue `[]`
   * @example `['x-request-id', 'server-timing']`
   */
  perRequestHeaders?: string[]
  /**
   * The `Cache-Status` header (RFC 9211) on every answer of a cached route: a member named `name` that
   * says what the cache did (`hit` and `ttl`, or why the request went forward, `fwd-status`, `stored`,
   * `collapsed`, and in `detail` why a response was not stored or a request bypassed the cache), after
   * the members of the caches before it (an origin's, in origin mode). `false` leaves it out. See
   * "Cache-Status" in docs/API.md.
   * @defaultValue `{ name: 'fastify-response-cache' }`
   * @example `{ name: 'edge-1' }`
   */
  cacheStatus?: false | { name?: string }
  /**
   * Requests warmed once the app is ready and the store answers, and warmed again whenever the shared
   * store comes back empty (Redis restarted without persistence, flushed, or cleared): by one instance
   * of those sharing it. An array of requests (a URL, or `{ url, method, headers, body }`), or
   * `{ requests, host, interval }`. See "Warming" in docs/API.md. @defaultValue none
   * @example `['/products/top', '/categories']`
   * @example `{ requests: ['/products/top'], host: 'shop.example.com' }`
   */
  warm?: ReadonlyArray<string | WarmRequest> | WarmOptions
  /**
   * The `x-cache` header (`HIT`, `MISS`, `STALE`, `BYPASS`, `REVALIDATED`) on every answer of a cached
   * route. `false` leaves it out, `Cache-Status` saying as much and more. @defaultValue `true`
   */
  xCache?: boolean
}

/** A function of the request, or a fixed list. */
export type FromRequest<T> = T | ((request: FastifyRequest) => T)

/** `config.cache` on a route: `true` for the plugin's defaults, or an object. */
export interface RouteCacheOptions {
  /** Seconds a stored response is fresh, or `'origin'`. @defaultValue the plugin's `ttl` */
  ttl?: Ttl
  /** With `ttl: 'origin'`. @defaultValue the plugin's `heuristicFreshness` */
  heuristicFreshness?: boolean
  /** With `ttl: 'origin'`. @defaultValue the plugin's `heuristicMaxTtl` */
  heuristicMaxTtl?: number
  /** With `ttl: 'origin'`. @defaultValue the plugin's `keepForRevalidation` */
  keepForRevalidation?: number
  /** @defaultValue the plugin's `staleWhileRevalidate` */
  staleWhileRevalidate?: number
  /**
   * A fraction strictly between 0 and 1 of the entry's freshness lifetime (the `ttl`, or in origin mode
   * the one the response's headers give) past which a hit starts one background refresh; `false` turns
   * off the plugin's. See "Eager refresh" in docs/API.md.
   * @defaultValue the plugin's `eagerRefresh`
   * @example `0.8`
   */
  eagerRefresh?: number | false
  /** @defaultValue the plugin's `staleIfError` */
  staleIfError?: number
  /** A fraction from 0 to 1 (see the plugin's `ttlJitter`). @defaultValue the plugin's `ttlJitter` */
  ttlJitter?: number
  /** Request header names whose values are part of the key. */
  vary?: string[]
  /** Tags stored with the entry, for invalidation: at most 64 (with `reply.cacheTags()`), of at most 256 bytes (UTF-8) each. */
  tags?: FromRequest<string[]>
  /**
   * An extra key part computed from the request: a string or a finite number (undefined for none). Any
   * other answer (null, an object, NaN) makes the request bypass the cache.
   */
  key?: (request: FastifyRequest) => string | number | undefined
  /** Tags to drop after a 2xx response of this route. */
  invalidate?: FromRequest<string[]>
  /**
   * Statuses that are stored: 200 to 499, never 304; with `ttl: 'origin'` never 400, 411, 412, 413, 414,
   * 416 or 431 either (errors the request caused).
   * @defaultValue `[200]`; with `ttl: 'origin'`, 200 to 499 but 206, 304 and those request errors
   */
  statusCodes?: number[]
  /** Serve and store requests that carry cookies, because the response never depends on them. @defaultValue `false` */
  ignoreCookies?: boolean
  /** `false`, or settings over the plugin's `compress`. @defaultValue the plugin's `compress` */
  compress?: false | CompressOptions
  /**
   * Response headers this route sets for one request (with the plugin's `perRequestHeaders`): never
   * stored, and a hit keeps the request's own value, if any.
   * @defaultValue `[]`
   * @example `['x-request-id']`
   */
  perRequestHeaders?: string[]
  /**
   * Tags from the response's `Surrogate-Key` and `Cache-Tag` headers (see the plugin's `surrogateKeys`).
   * @defaultValue the plugin's `surrogateKeys`
   * @example `{ keep: true }`
   */
  surrogateKeys?: boolean | SurrogateKeysOptions
}

const seconds = (what: string) => Type.Number({ minimum: 0, description: `${what}: a number of seconds, 0 or more` })
const jitterSchema = Type.Number({ minimum: 0, maximum: 1, description: 'a fraction from 0 to 1' })
const eagerRefreshSchema = Type.Union([Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }), Type.Literal(false)], {
  description: 'a fraction strictly between 0 and 1 (such as 0.8), or false'
})
const positiveSeconds = Type.Number({ exclusiveMinimum: 0, description: 'a number of seconds greater than 0' })
const ttlSchema = Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Literal('origin')], {
  description: "a number of seconds greater than 0, or 'origin'"
})
const originSchema = {
  heuristicFreshness: Type.Boolean({ description: 'a boolean' }),
  heuristicMaxTtl: positiveSeconds,
  keepForRevalidation: seconds('keepForRevalidation')
}
const fn = (what: string) => Type.Function([Type.Any()], Type.Any(), { description: `a function ${what}` })
const headerNames = (what: string) => Type.Array(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), {
  maxItems: 32,
  description: `an array of ${what} header names`
})
// Their bounds (MAX_TAGS_PER_ENTRY, MAX_TAG_BYTES, counted in UTF-8) are checked after the schema, with messages that name them.
const compressSchema = Type.Object({
  threshold: Type.Integer({ minimum: 0, description: 'a whole number of bytes, 0 or more' }),
  encodings: Type.Array(Type.Union(ENCODINGS.map((name) => Type.Literal(name))), {
    uniqueItems: true,
    minItems: 1,
    description: `a non-empty array of encodings from ${ENCODINGS.map((name) => `'${name}'`).join(', ')}, each once`
  }),
  brotliQuality: Type.Integer({ minimum: 0, maximum: 11, description: 'a whole number from 0 to 11' }),
  gzipLevel: Type.Integer({ minimum: 1, maximum: 9, description: 'a whole number from 1 to 9' })
})
const compressOption = Type.Union([Type.Literal(false), Type.Object({})], { description: 'false or an object { threshold, encodings, brotliQuality, gzipLevel }' })

const surrogateKeysSchema = Type.Union([
  Type.Boolean(),
  Type.Object({ keep: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
], { description: 'a boolean or an object { keep: boolean }' })

const tagList = Type.Array(Type.String({ minLength: 1 }), { maxItems: 1000 })

const optionsSchema = Type.Object({
  store: Type.Union([Type.Literal('memory'), Type.Literal('redis'), Type.Literal('tiered'), Type.Object({})], {
    description: "'memory', 'redis', 'tiered' or a store object"
  }),
  redis: Type.Object({}, { description: 'an ioredis Redis or Cluster client' }),
  namespace: Type.String({
    pattern: '^[A-Za-z0-9_.-]{1,64}$',
    description: 'a string of 1 to 64 letters, digits, "_", "-" or "."'
  }),
  ttl: ttlSchema,
  ...originSchema,
  staleWhileRevalidate: seconds('staleWhileRevalidate'),
  eagerRefresh: eagerRefreshSchema,
  staleIfError: seconds('staleIfError'),
  ttlJitter: jitterSchema,
  tenant: fn('of the request returning a string, a number or undefined'),
  maxEntryBytes: Type.Integer({ minimum: 1, description: 'a whole number of bytes, 1 or more' }),
  memory: Type.Object({
    maxBytes: Type.Integer({ minimum: 1024, description: 'a whole number of bytes, 1024 or more' })
  }, { description: 'an object { maxBytes }' }),
  tiered: Type.Object({
    localTtl: Type.Number({ exclusiveMinimum: 0, maximum: 86_400, description: 'a number of seconds greater than 0, at most 86400' })
  }, { description: 'an object { localTtl }' }),
  // Checked by checkEncryptionOption, whose messages never echo a key.
  encryption: Type.Any(),
  timeout: Type.Number({ exclusiveMinimum: 0, maximum: 60_000, description: 'milliseconds, more than 0 and at most 60000' }),
  readyTimeout: Type.Number({ minimum: 0, maximum: 600_000, description: 'milliseconds, 0 to 600000' }),
  coalesceTimeout: Type.Number({ minimum: 0, maximum: 600_000, description: 'milliseconds, 0 to 600000' }),
  honorClientNoCache: Type.Boolean({ description: 'a boolean' }),
  sharedValues: Type.Boolean({ description: 'a boolean' }),
  registry: Type.Object({}, { description: 'a prom-client Registry' }),
  statsRoute: Type.Union([
    Type.Boolean(),
    Type.Object({}, { description: 'an object { path, onRequest, dashboard, public }' })
  ], { description: 'true, false or an object { path, onRequest, dashboard, public }' }),
  purgeRoute: Type.Object({}, { description: 'an object { path, onRequest, public, purgeMethod }' }),
  surrogateKeys: surrogateKeysSchema,
  compress: compressOption,
  perRequestHeaders: headerNames('response'),
  cacheStatus: Type.Union([Type.Literal(false), Type.Object({})], { description: 'false or an object { name }' }),
  xCache: Type.Boolean({ description: 'a boolean' }),
  // Its requests are checked one by one (warmRequestSchema), so that the message names the one.
  warm: Type.Union([Type.Array(Type.Unknown()), Type.Object({})], { description: 'an array of requests or an object { requests, host, interval }' })
})

const warmRequestSchema = Type.Union([
  Type.String({ pattern: '^/' }),
  Type.Object({
    url: Type.String({ pattern: '^/' }),
    method: Type.Optional(Type.Union([Type.Literal('GET'), Type.Literal('POST'), Type.Literal('QUERY')])),
    headers: Type.Optional(Type.Record(Type.String(), Type.String())),
    body: Type.Optional(Type.Unknown())
  }, { additionalProperties: false })
], { description: 'a URL starting with "/" or an object { url, method (GET, POST or QUERY), headers (strings), body }' })

const warmSchema = Type.Object({
  requests: Type.Array(Type.Unknown(), { description: 'an array of requests' }),
  host: Type.String({
    pattern: '^(?:[A-Za-z0-9_-]+(?:\\.[A-Za-z0-9_-]+)*\\.?|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$',
    description: 'a host name or address with an optional port, as a Host header holds it ("api.example.com", "127.0.0.1:3000")'
  }),
  interval: Type.Number({ minimum: 0.1, maximum: 86_400, description: 'a number of seconds from 0.1 to 86400' })
})

export interface ResolvedWarm {
  requests: WarmRequest[]
  host: string | undefined
  intervalMs: number
}

/** `warm` checked, each request named by its place when it is wrong. */
function resolveWarm (value: ResponseCacheOptions['warm'], fail: Fail): ResolvedWarm {
  let requests: readonly unknown[] = []
  let path = 'warm'
  let options: WarmOptions | undefined
  if (Array.isArray(value)) requests = value
  else if (isRecord(value)) {
    checkObject(warmSchema, value, 'warm.', fail)
    if (value.requests === undefined) fail('warm.requests', 'is required: an array of requests')
    options = value as unknown as WarmOptions
    requests = options.requests
    path = 'warm.requests'
  }
  requests.forEach((request, i) => {
    if (!Value.Check(warmRequestSchema, request)) fail(`${path}[${i}]`, `expected ${String(warmRequestSchema.description)}, ${describe(request)}`)
  })
  return {
    requests: requests.map((request) => typeof request === 'string' ? { url: request } : request as WarmRequest),
    host: options?.host,
    intervalMs: (options?.interval ?? DEFAULT_WARM_INTERVAL) * 1000
  }
}

const cacheStatusSchema = Type.Object({
  name: Type.String({ description: 'a string' })
})

const statsRouteSchema = Type.Object({
  path: Type.String({ pattern: '^/', description: 'a path starting with "/"' }),
  onRequest: Type.Union([fn('hook'), Type.Array(fn('hook'))], { description: 'a hook function or an array of them' }),
  dashboard: Type.Union([
    Type.Boolean(),
    Type.Object({
      interval: Type.Optional(Type.Integer({ minimum: 1, maximum: 60, description: 'a whole number of seconds from 1 to 60' }))
    }, { additionalProperties: false })
  ], { description: 'true, false or an object { interval }' }),
  public: Type.Boolean({ description: 'a boolean' })
})

const purgeRouteSchema = Type.Object({
  path: Type.String({ pattern: '^/', description: 'a path starting with "/"' }),
  onRequest: Type.Union([fn('hook'), Type.Array(fn('hook'))], { description: 'a hook function or an array of them' }),
  public: Type.Boolean({ description: 'a boolean' }),
  purgeMethod: Type.Boolean({ description: 'a boolean' })
})

const routeSchema = Type.Object({
  ttl: ttlSchema,
  ...originSchema,
  staleWhileRevalidate: seconds('staleWhileRevalidate'),
  eagerRefresh: eagerRefreshSchema,
  staleIfError: seconds('staleIfError'),
  ttlJitter: jitterSchema,
  vary: headerNames('request'),
  tags: Type.Union([tagList, fn('of the request')], { description: 'an array of non-empty strings or a function of the request' }),
  key: fn('of the request'),
  invalidate: Type.Union([tagList, fn('of the request')], { description: 'an array of non-empty strings or a function of the request' }),
  statusCodes: Type.Array(Type.Integer({ minimum: 200, maximum: 499 }), {
    minItems: 1,
    description: 'a non-empty array of statuses from 200 to 499 (5xx is never stored)'
  }),
  ignoreCookies: Type.Boolean({ description: 'a boolean' }),
  compress: compressOption,
  perRequestHeaders: headerNames('response'),
  surrogateKeys: surrogateKeysSchema
})

type Fail = (path: string, problem: string) => never

function describe (value: unknown): string {
  if (typeof value === 'string') {
    const shown = redactCredentials(value)
    return `got "${shown.length > 40 ? shown.slice(0, 40) + '…' : shown}"`
  }
  if (value === null || typeof value !== 'object') return `got ${String(value)}`
  return `got ${Array.isArray(value) ? 'an array' : 'an object'}`
}

/** Checks each known property against its schema, so the error names one option and what it expects. */
function checkObject (schema: TObject, value: Record<string, unknown>, prefix: string, fail: Fail): void {
  for (const name of Object.keys(value)) {
    const path = prefix + name
    const propertySchema: TSchema | undefined = schema.properties[name]
    if (propertySchema === undefined) fail(path, 'is not a known option')
    const propertyValue = value[name]
    if (propertyValue === undefined) continue
    const nested = (propertySchema as TObject).properties
    if (isRecord(propertyValue) && propertySchema.type === 'object' && Object.keys(nested).length > 0) {
      checkObject(propertySchema as TObject, propertyValue, path + '.', fail)
      continue
    }
    if (!Value.Check(propertySchema, propertyValue)) {
      // Every schema above carries a description: it is what the message says is expected.
      fail(path, `expected ${String(propertySchema.description)}, ${describe(propertyValue)}`)
    }
  }
}

/** `perRequestHeaders` lower-cased, each once; none that the stored response needs. */
function perRequestNames (names: string[] | undefined, fail: Fail): string[] {
  const lower = [...new Set((names ?? []).map((name) => name.toLowerCase()))]
  for (const name of lower) {
    if (RESPONSE_HEADERS.has(name)) fail('perRequestHeaders', `may not list "${name}": it describes the stored response (${[...RESPONSE_HEADERS].join(', ')} are stored with it)`)
  }
  return lower
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export interface ResolvedStatsRoute {
  path: string
  onRequest: onRequestHookHandler[]
  /** Seconds between samples of the counters; false without the page. */
  dashboard: false | { interval: number }
  public: boolean
}

export const DEFAULT_DASHBOARD_INTERVAL = 10

export interface ResolvedPurgeRoute {
  path: string
  onRequest: onRequestHookHandler[]
  purgeMethod: boolean
}

/** `surrogateKeys` resolved: undefined when off. */
export type ResolvedSurrogateKeys = { keep: boolean } | undefined

export interface ResolvedOptions {
  store: 'memory' | 'redis' | 'tiered' | CacheStore
  redis: unknown
  namespace: string
  ttl: Ttl
  /** The default TTL of values (app.cache.set, wrap): `ttl`, or DEFAULT_TTL when that is `'origin'`. */
  valueTtl: number
  heuristicFreshness: boolean
  heuristicMaxTtl: number
  keepForRevalidation: number
  staleWhileRevalidate: number
  /** The routes' default: a fraction strictly between 0 and 1, or undefined when off. */
  eagerRefresh: number | undefined
  staleIfError: number
  ttlJitter: number
  tenant: ((request: FastifyRequest) => string | number | undefined) | undefined
  maxEntryBytes: number
  memoryMaxBytes: number
  localTtlMs: number
  /** Checked; the store builds its keyring from it. */
  encryption: EncryptionOptions | undefined
  timeoutMs: number
  readyTimeoutMs: number
  coalesceTimeoutMs: number
  honorClientNoCache: boolean
  sharedValues: boolean
  registry: Registry | undefined
  statsRoute: false | ResolvedStatsRoute
  /** Undefined when off. */
  purgeRoute: ResolvedPurgeRoute | undefined
  surrogateKeys: ResolvedSurrogateKeys
  /** Undefined when off. */
  compress: CompressionSettings | undefined
  /** Lower case, each once. */
  perRequestHeaders: string[]
  /** The name of the plugin's Cache-Status member as sent (rules/cache-status.ts); undefined when off. */
  cacheStatus: string | undefined
  xCache: boolean
  warm: ResolvedWarm
}

/** Validates the plugin options and fills in defaults; throws FST_RESPONSE_CACHE_INVALID_OPTION. */
export function resolveOptions (options: unknown): ResolvedOptions {
  const fail: Fail = (path, problem) => { throw new FST_RESPONSE_CACHE_INVALID_OPTION(path, problem) }
  const opts = options ?? {}
  if (!isRecord(opts)) fail('options', `expected an object, ${describe(opts)}`)
  checkObject(optionsSchema, opts, '', fail)
  const memory = opts.memory as Record<string, unknown> | undefined
  const stats = opts.statsRoute
  if (isRecord(stats)) checkObject(statsRouteSchema, stats, 'statsRoute.', fail)

  const o = opts as ResponseCacheOptions
  if (o.registry !== undefined && typeof o.registry.registerMetric !== 'function') fail('registry', `expected a prom-client Registry, ${describe(o.registry)}`)
  if (o.encryption !== undefined) {
    const problem = checkEncryptionOption(o.encryption)
    if (problem !== undefined) fail('encryption', problem)
    // A custom store holds entries where the plugin cannot tell: encrypting for it would be a guess.
    if (typeof o.store === 'object') fail('encryption', "applies to store 'redis' (and is ignored by 'memory'); a custom store encrypts what it keeps itself")
  }
  const ttl = o.ttl ?? DEFAULT_TTL
  let statsRoute: ResolvedOptions['statsRoute'] = false
  if (o.statsRoute === true) statsRoute = { path: DEFAULT_STATS_PATH, onRequest: [], dashboard: false, public: false }
  if (isRecord(o.statsRoute)) {
    const { path, onRequest: hooks, dashboard, public: open } = o.statsRoute as StatsRouteOptions
    const resolved: ResolvedStatsRoute = {
      path: path ?? DEFAULT_STATS_PATH,
      onRequest: hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks],
      dashboard: dashboard === undefined || dashboard === false ? false : { interval: (dashboard === true ? undefined : dashboard.interval) ?? DEFAULT_DASHBOARD_INTERVAL },
      public: open ?? false
    }
    // The page lists URLs and drops entries: open to anyone only when the app says so.
    if (resolved.dashboard !== false && resolved.onRequest.length === 0 && !resolved.public) {
      fail('statsRoute.dashboard', 'lists cached URLs and invalidates entries: give statsRoute.onRequest a guard, or set statsRoute.public: true if something else protects the path')
    }
    statsRoute = resolved
  }
  return {
    store: o.store ?? 'memory',
    redis: o.redis,
    namespace: o.namespace ?? DEFAULT_NAMESPACE,
    ttl,
    valueTtl: ttl === 'origin' ? DEFAULT_TTL : ttl,
    heuristicFreshness: o.heuristicFreshness ?? false,
    heuristicMaxTtl: o.heuristicMaxTtl ?? DEFAULT_HEURISTIC_MAX_TTL,
    keepForRevalidation: o.keepForRevalidation ?? DEFAULT_KEEP_FOR_REVALIDATION,
    staleWhileRevalidate: o.staleWhileRevalidate ?? 0,
    eagerRefresh: o.eagerRefresh === false ? undefined : o.eagerRefresh,
    staleIfError: o.staleIfError ?? 0,
    ttlJitter: o.ttlJitter ?? 0,
    tenant: o.tenant,
    maxEntryBytes: o.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES,
    memoryMaxBytes: memory?.maxBytes as number | undefined ?? DEFAULT_MEMORY_MAX_BYTES,
    localTtlMs: ((opts.tiered as { localTtl?: number } | undefined)?.localTtl ?? DEFAULT_LOCAL_TTL) * 1000,
    encryption: o.encryption,
    timeoutMs: o.timeout ?? DEFAULT_TIMEOUT_MS,
    readyTimeoutMs: o.readyTimeout ?? DEFAULT_READY_TIMEOUT_MS,
    coalesceTimeoutMs: o.coalesceTimeout ?? DEFAULT_COALESCE_TIMEOUT_MS,
    honorClientNoCache: o.honorClientNoCache ?? false,
    sharedValues: o.sharedValues ?? false,
    registry: o.registry,
    statsRoute,
    purgeRoute: resolvePurgeRoute(o.purgeRoute, fail),
    surrogateKeys: resolveSurrogateKeys(o.surrogateKeys),
    compress: compressionSettings(o.compress, PLUGIN_COMPRESS_DEFAULTS, fail),
    perRequestHeaders: perRequestNames(o.perRequestHeaders, fail),
    cacheStatus: cacheStatusName(o.cacheStatus, fail),
    xCache: o.xCache ?? true,
    warm: resolveWarm(o.warm, fail)
  }
}

/** `purgeRoute` checked: refused without a guard unless said to be public. */
function resolvePurgeRoute (value: PurgeRouteOptions | undefined, fail: Fail): ResolvedPurgeRoute | undefined {
  if (value === undefined) return undefined
  checkObject(purgeRouteSchema, value as Record<string, unknown>, 'purgeRoute.', fail)
  const { path, onRequest: hooks, public: open, purgeMethod } = value
  const onRequest = hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]
  // Anyone who can reach it could empty the cache and send every request on to the origin.
  if (onRequest.length === 0 && open !== true) {
    fail('purgeRoute', 'drops entries: give purgeRoute.onRequest a guard, or set purgeRoute.public: true if something else protects the path')
  }
  return { path: path ?? DEFAULT_PURGE_PATH, onRequest, purgeMethod: purgeMethod ?? false }
}

/** `surrogateKeys` (checked by its schema) as the request path uses it. */
function resolveSurrogateKeys (value: boolean | SurrogateKeysOptions | undefined): ResolvedSurrogateKeys {
  if (value === undefined || value === false) return undefined
  return { keep: value === true ? false : value.keep ?? false }
}

/** `cacheStatus` checked, its name serialized once. */
function cacheStatusName (value: ResponseCacheOptions['cacheStatus'], fail: Fail): string | undefined {
  if (value === false) return undefined
  if (value !== undefined) checkObject(cacheStatusSchema, value as Record<string, unknown>, 'cacheStatus.', fail)
  const name = value?.name ?? DEFAULT_CACHE_STATUS_NAME
  const problem = cacheStatusNameProblem(name)
  if (problem !== undefined) fail('cacheStatus.name', `expected ${problem}, ${describe(name)}`)
  return serializeCacheStatusName(name)
}

const PLUGIN_COMPRESS_DEFAULTS: CompressionSettings = {
  threshold: DEFAULT_COMPRESS_THRESHOLD,
  encodings: ENCODINGS.filter((name) => name !== 'zstd' || HAS_ZSTD),
  brotliQuality: DEFAULT_BROTLI_QUALITY,
  gzipLevel: DEFAULT_GZIP_LEVEL
}

/** `compress` checked (one error per option, `compress.threshold`...) and laid over `base`. */
function compressionSettings (value: false | CompressOptions | undefined, base: CompressionSettings, fail: Fail): CompressionSettings | undefined {
  if (value === false) return undefined
  if (value === undefined) return base
  checkObject(compressSchema, value as Record<string, unknown>, 'compress.', fail)
  const encodings = value.encodings?.filter((name) => name !== 'zstd' || HAS_ZSTD) ?? base.encodings
  return {
    threshold: value.threshold ?? base.threshold,
    encodings,
    brotliQuality: value.brotliQuality ?? base.brotliQuality,
    gzipLevel: value.gzipLevel ?? base.gzipLevel
  }
}

export interface ResolvedRouteOptions {
  ttl: Ttl
  /** With `ttl: 'origin'`: the cap on heuristic freshness in seconds, or undefined when heuristics are off. */
  heuristicMaxTtl: number | undefined
  /** With `ttl: 'origin'`: seconds a stale entry with a validator is kept to be revalidated; 0 otherwise. */
  keepForRevalidation: number
  staleWhileRevalidate: number
  /** The share of an entry's freshness lifetime past which a hit starts a refresh; undefined when off. */
  eagerRefresh: number | undefined
  staleIfError: number
  /** Applies to a number `ttl` only. */
  ttlJitter: number
  vary: string[]
  tags: FromRequest<string[]> | undefined
  key: ((request: FastifyRequest) => string | number | undefined) | undefined
  invalidate: FromRequest<string[]> | undefined
  statusCodes: Set<number>
  ignoreCookies: boolean
  /** Undefined when off. */
  compress: CompressionSettings | undefined
  /** The plugin's and the route's, lower case, each once: never stored, never taken from an entry. */
  perRequestHeaders: readonly string[]
  /** The plugin's: its Cache-Status member's name as sent, undefined when off; whether `x-cache` is sent. */
  cacheStatus: string | undefined
  xCache: boolean
  /** Tags from the response's surrogate-key headers: undefined when off. */
  surrogateKeys: ResolvedSurrogateKeys
}

/**
 * Validates a route's `config.cache` against the plugin defaults; throws
 * FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG naming the route. Returns undefined for an uncached route.
 */
export function resolveRouteOptions (config: unknown, defaults: ResolvedOptions, routeName: string): ResolvedRouteOptions | undefined {
  if (config === undefined || config === false) return undefined
  const fail: Fail = (path, problem) => { throw new FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG(routeName, path, problem) }
  if (config !== true && !isRecord(config)) fail('cache', `expected true, false or an object, ${describe(config)}`)
  const c = (config === true ? {} : config) as RouteCacheOptions
  if (config !== true) checkObject(routeSchema, config as Record<string, unknown>, '', fail)
  if (Array.isArray(c.tags)) {
    const problem = tagsProblem([...new Set(c.tags)])
    if (problem !== undefined) fail('tags', TAGS_EXPECTED[problem])
  }
  if (Array.isArray(c.invalidate) && c.invalidate.some(tagTooLong)) fail('invalidate', TAGS_EXPECTED['tag-too-long'])
  const ttl = c.ttl ?? defaults.ttl
  // Only the route's own settings are checked: the plugin's apply to whichever routes are in origin mode.
  for (const name of ['heuristicFreshness', 'heuristicMaxTtl', 'keepForRevalidation'] as const) {
    if (c[name] !== undefined && ttl !== 'origin') fail(name, `applies only with ttl: 'origin' (this route's ttl is ${ttl})`)
  }
  for (const status of c.statusCodes ?? []) {
    // Only ever the answer to a client's own If-None-Match or If-Modified-Since, with no body: stored,
    // it would answer clients that asked for the whole response.
    if (status === 304) fail('statusCodes', 'may not list 304: a 304 answers one client\'s conditional request and has no body')
    if (ttl === 'origin' && REQUEST_ERROR_STATUSES.has(status)) {
      fail('statusCodes', `may not list ${status} with ttl: 'origin': an error the request caused is never stored from another server (${[...REQUEST_ERROR_STATUSES].join(', ')})`)
    }
  }
  return {
    ttl,
    heuristicMaxTtl: ttl === 'origin' && (c.heuristicFreshness ?? defaults.heuristicFreshness) ? c.heuristicMaxTtl ?? defaults.heuristicMaxTtl : undefined,
    keepForRevalidation: ttl === 'origin' ? c.keepForRevalidation ?? defaults.keepForRevalidation : 0,
    staleWhileRevalidate: c.staleWhileRevalidate ?? defaults.staleWhileRevalidate,
    eagerRefresh: c.eagerRefresh === false ? undefined : c.eagerRefresh ?? defaults.eagerRefresh,
    staleIfError: c.staleIfError ?? defaults.staleIfError,
    ttlJitter: c.ttlJitter ?? defaults.ttlJitter,
    vary: [...new Set((c.vary ?? []).map((name) => name.toLowerCase()))],
    tags: c.tags,
    key: c.key,
    invalidate: c.invalidate,
    statusCodes: new Set(c.statusCodes ?? (ttl === 'origin' ? ORIGIN_STATUS_CODES : DEFAULT_STATUS_CODES)),
    ignoreCookies: c.ignoreCookies ?? false,
    compress: c.compress === undefined
      ? defaults.compress
      : compressionSettings(c.compress, defaults.compress ?? PLUGIN_COMPRESS_DEFAULTS, fail),
    perRequestHeaders: c.perRequestHeaders === undefined ? defaults.perRequestHeaders : [...new Set([...defaults.perRequestHeaders, ...perRequestNames(c.perRequestHeaders, fail)])],
    cacheStatus: defaults.cacheStatus,
    xCache: defaults.xCache,
    surrogateKeys: c.surrogateKeys === undefined ? defaults.surrogateKeys : resolveSurrogateKeys(c.surrogateKeys)
  }
}

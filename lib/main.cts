// The CommonJS entry: `require('fastify-response-cache')` is the plugin itself, as Fastify plugins are.
import lib = require('./index.js')

const fastifyResponseCache = Object.assign(lib.default, {
  default: lib.default,
  fastifyResponseCache: lib.default,
  MemoryStore: lib.MemoryStore,
  RedisStore: lib.RedisStore,
  errors: lib.errors
})

// eslint-disable-next-line @typescript-eslint/no-namespace
declare namespace fastifyResponseCache {
  export type ResponseCacheOptions = lib.ResponseCacheOptions
  export type RouteCacheOptions = lib.RouteCacheOptions
  export type FromRequest<T> = lib.FromRequest<T>
  export type ResponseCacheClient = lib.ResponseCacheClient
  export type CacheHealth = lib.CacheHealth
  export type InvalidateSelector = lib.InvalidateSelector
  export type GetValueOptions = lib.GetValueOptions
  export type SetValueOptions = lib.SetValueOptions
  export type ValueOptions = lib.ValueOptions
  export type WrapOptions = lib.WrapOptions
  export type WrapContext = lib.WrapContext
  export type WrapFunction<T> = lib.WrapFunction<T>
  export type WarmReport = lib.WarmReport
  export type WarmRequest = lib.WarmRequest
  export type WarmResult = lib.WarmResult
  export type WarmCallOptions = lib.WarmCallOptions
  export type WarmOptions = lib.WarmOptions
  export type WarmCounters = lib.WarmCounters
  export type CacheStats = lib.CacheStats
  export type CounterSnapshot = lib.CounterSnapshot
  export type CacheEntry = lib.CacheEntry
  export type HeaderValue = lib.HeaderValue
  export type CompressOptions = lib.CompressOptions
  export type StatsRouteOptions = lib.StatsRouteOptions
  export type PurgeRouteOptions = lib.PurgeRouteOptions
  export type SurrogateKeysOptions = lib.SurrogateKeysOptions
  export type Encoding = lib.Encoding
  export type EncodedBodies = lib.EncodedBodies
  export type CacheStore = lib.CacheStore
  export type StoreSetOptions = lib.StoreSetOptions
  export type StoreStats = lib.StoreStats
  export type StoreState = lib.StoreState
  export type MaybePromise<T> = lib.MaybePromise<T>
  export type StoreCursor = lib.StoreCursor
  export type StoreListQuery = lib.StoreListQuery
  export type StoreListedEntry = lib.StoreListedEntry
  export type StoreListPage = lib.StoreListPage
  export type ListSelector = lib.ListSelector
  export type ListedEntry = lib.ListedEntry
  export type EntryPage = lib.EntryPage
  export type RedisClientLike = lib.RedisClientLike
  export type EncryptionOptions = lib.EncryptionOptions
  export type EncryptionKey = lib.EncryptionKey
}

export = fastifyResponseCache

import type { FastifyInstance } from 'fastify'
import { FST_RESPONSE_CACHE_INVALID_STORE, FST_RESPONSE_CACHE_NO_REDIS_CLIENT } from '../errors.js'
import type { EncryptionOptions } from './encryption-options.js'
import { Keyring } from './encryption.js'
import { MemoryStore } from './memory.js'
import type { BusClient } from './bus.js'
import { RedisStore, type RedisClientLike } from './redis.js'
import { TieredStore } from './tiered.js'
import { STORE_METHODS, type CacheStore } from './store.js'

export type { CacheStore, StoreSetOptions, StoreStats } from './store.js'
export { MemoryStore } from './memory.js'
export { RedisStore } from './redis.js'
export { TieredStore } from './tiered.js'

const CLIENT_METHODS = ['getBuffer', 'set', 'unlink', 'scan', 'defineCommand'] as const

/** What picking and building a store needs of the plugin's (resolved) options. */
export interface StoreConfig {
  store: 'memory' | 'redis' | 'tiered' | CacheStore
  /** The client for 'redis' and 'tiered'; else the app's `redis` decorator (@fastify/redis). */
  redis?: unknown
  namespace: string
  memoryMaxBytes: number
  maxEntryBytes: number
  timeoutMs: number
  localTtlMs: number
  /** Checked by the options (resolveOptions): the keyring is built here. */
  encryption: EncryptionOptions | undefined
}

/** The store the plugin uses, and what the plugin owes it. */
export interface PickedStore {
  store: CacheStore
  /** Anything but the embedded memory store: its calls may be slow or fail, and are guarded. */
  remote: boolean
  /** Built by the plugin (memory, tiered), so closed with the app; a store or client passed in is the app's. */
  ownedByPlugin: boolean
}

function redisClient (options: StoreConfig, app: FastifyInstance): RedisClientLike {
  const client = (options.redis ?? (app as unknown as { redis?: unknown }).redis) as Partial<RedisClientLike> | undefined
  if (client === undefined || client === null) {
    throw new FST_RESPONSE_CACHE_NO_REDIS_CLIENT("store 'redis' needs an ioredis client: pass one as \"redis\" or register @fastify/redis before this plugin")
  }
  for (const method of CLIENT_METHODS) {
    if (typeof client[method] !== 'function') throw new FST_RESPONSE_CACHE_NO_REDIS_CLIENT(`expected an ioredis Redis or Cluster client, which has ${method}()`)
  }
  return client as RedisClientLike
}

/** Picks the store named by the options, or checks a custom one for the methods the plugin calls. */
export function createStore (options: StoreConfig, app: FastifyInstance): PickedStore {
  const store = buildStore(options, app)
  return { store, remote: options.store !== 'memory', ownedByPlugin: options.store === 'memory' || options.store === 'tiered' }
}

function buildStore (options: StoreConfig, app: FastifyInstance): CacheStore {
  const { store } = options
  if (store === 'memory') return new MemoryStore({ maxBytes: options.memoryMaxBytes })
  if (store === 'redis' || store === 'tiered') {
    const client = redisClient(options, app)
    // The keys were checked with the options, so this does not throw.
    const keyring = options.encryption === undefined ? undefined : new Keyring(options.encryption)
    const redis = new RedisStore({ client, namespace: options.namespace, log: app.log, keyring, readTags: store === 'tiered', maxEntryBytes: options.maxEntryBytes })
    if (store === 'redis') return redis
    return new TieredStore({
      l1: new MemoryStore({ maxBytes: options.memoryMaxBytes }),
      redis,
      busClient: client as unknown as BusClient,
      namespace: options.namespace,
      timeoutMs: options.timeoutMs,
      localTtlMs: options.localTtlMs,
      log: app.log
    })
  }
  for (const method of STORE_METHODS) {
    if (typeof store[method] !== 'function') throw new FST_RESPONSE_CACHE_INVALID_STORE(method)
  }
  return store
}

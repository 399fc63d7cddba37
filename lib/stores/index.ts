import type { FastifyInstance } from 'fastify'
import { FST_RESPONSE_CACHE_INVALID_STORE, FST_RESPONSE_CACHE_NO_REDIS_CLIENT } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
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

function redisClient (options: ResolvedOptions, app: FastifyInstance): RedisClientLike {
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
export function createStore (options: ResolvedOptions, app: FastifyInstance): CacheStore {
  const { store } = options
  if (store === 'memory') return new MemoryStore({ maxBytes: options.memoryMaxBytes })
  if (store === 'redis') return new RedisStore({ client: redisClient(options, app), namespace: options.namespace, log: app.log, keyring: options.keyring, maxEntryBytes: options.maxEntryBytes })
  if (store === 'tiered') {
    const client = redisClient(options, app)
    return new TieredStore({
      l1: new MemoryStore({ maxBytes: options.memoryMaxBytes }),
      redis: new RedisStore({ client, namespace: options.namespace, log: app.log, keyring: options.keyring, readTags: true, maxEntryBytes: options.maxEntryBytes }),
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

import type { ResponseCacheOptions } from '../../lib/index.js'
import type { Redis } from 'ioredis'
import { connect, startRedis } from './redis.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/**
 * The plugin options for each store a feature must hold on: memory, and Redis on a server started
 * for the test file. Each call gets its own namespace.
 */
export async function storeKinds (t: Teardown): Promise<Array<[string, () => ResponseCacheOptions]>> {
  const server = await startRedis(t)
  const client = await connect(t, server)
  let n = 0
  return [
    ['memory', () => ({ store: 'memory' })],
    // A generous timeout: these tests are about what is stored, and a loaded CI machine must not
    // turn a slow write into a missing entry. Timeouts have tests of their own.
    ['redis', () => ({ store: 'redis', redis: client, namespace: `t${++n}`, timeout: 2000 })]
  ]
}

/**
 * Memory, Redis and tiered (memory + Redis) on one redis-server started for the test file, with its
 * url (for clients made as the README shows) and a connected client. Each call gets its own namespace.
 */
export async function allStoreKinds (t: Teardown, prefix: string): Promise<{ kinds: Array<[string, () => ResponseCacheOptions]>, url: string, client: Redis }> {
  const server = await startRedis(t)
  const client = await connect(t, server)
  let n = 0
  return {
    kinds: [
      ['memory', () => ({ store: 'memory' })],
      ['redis', () => ({ store: 'redis', redis: client, namespace: `${prefix}${++n}`, timeout: 2000 })],
      ['tiered', () => ({ store: 'tiered', redis: client, namespace: `${prefix}${++n}`, timeout: 2000 })]
    ],
    url: `redis://${await server.getHost()}:${await server.getPort()}`,
    client
  }
}

import { Redis } from 'ioredis'

/**
 * An ioredis client of the bench's redis-server (BENCH_REDIS_PORT, started by the runner), set up as
 * the README advises for the plugin: fail fast rather than queue while Redis is away, and no
 * auto-pipelining (measured: it slowed both hits and misses; see docs/API.md, "Redis store").
 */
export async function benchRedis (port = Number(process.env.BENCH_REDIS_PORT)): Promise<Redis> {
  const redis = new Redis({
    port,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0
  })
  // ioredis reports each failed reconnect as an 'error' event (the recovery measure kills Redis); unheard, it prints every one.
  redis.on('error', () => {})
  await new Promise((resolve) => redis.once('ready', resolve))
  return redis
}

import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { ResponseCacheOptions } from '../../lib/index.js'
import { cachedApp } from './app.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/**
 * Three instances of one app on one redis-server at `url`, each with its own client as the README
 * shows it (`new Redis(url)`, still connecting when the plugin is registered), ready.
 */
export async function threeInstances (t: Teardown, url: string, store: 'redis' | 'tiered', namespace: string, options: ResponseCacheOptions = {}): Promise<FastifyInstance[]> {
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 3; i++) {
    const redis = new Redis(url)
    t.teardown(() => { redis.disconnect() })
    const app = await cachedApp(t, { ...options, store, redis, namespace })
    await app.ready()
    apps.push(app)
  }
  return apps
}

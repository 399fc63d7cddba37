// The slow route with the plugin on the tiered store (memory over the runner's redis-server): after
// the first request every one is a hit from this process's memory. Also the routes bench/tiered.ts
// drives across three of these processes: /item (tagged, no handler delay), an invalidation, and a
// watch that reports when this process's memory no longer holds an item.
import Fastify from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import responseCache from '../../dist/esm/index.js'
import { PRODUCT, loadProduct } from './payload.js'
import { benchRedis } from './redis-client.js'
import { serve } from './serve.js'

/**
 * Wall-clock milliseconds, comparable between the processes of one machine (performance.timeOrigin
 * is not: measured several ms apart between two processes).
 */
const now = (): number => Date.now()
const WATCH_LIMIT_MS = 5000

const redis = await benchRedis()
const app = Fastify()
await app.register(responseCache, { store: 'tiered', redis, ttl: 3600, namespace: process.env.BENCH_NAMESPACE ?? `bench${process.pid}` })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())

const idOf = (request: { query: unknown }): string => String((request.query as { id?: string }).id)
app.get('/item', { config: { cache: { tags: (request) => [`item:${idOf(request)}`] } } }, async () => PRODUCT)
// GET: a 2xx POST would drop the memory copies from Redis of every instance (the drops after writes).
app.get('/invalidate', async (request) => {
  await app.cache.invalidate({ tags: [`item:${idOf(request)}`] })
  return { at: now() }
})

// Asks this process for the item (HEAD: read, never stored) until memory no longer answers it; the
// time is when the first probe that missed started, so the drop happened before it.
const watched = new Map<string, Promise<number>>()
app.get('/watch', async (request) => {
  const id = idOf(request)
  // The host is part of the key: the probe asks as the runner does.
  const headers = { host: request.headers.host }
  const deadline = now() + WATCH_LIMIT_MS
  watched.set(id, (async () => {
    for (;;) {
      const started = now()
      const probe = await app.inject({ method: 'HEAD', url: `/item?id=${id}`, headers })
      if (probe.headers['x-cache'] !== 'HIT') return started
      if (started > deadline) return NaN
      // Every millisecond (the clock's resolution): a busy loop would take the CPU the bus needs.
      await sleep(1)
    }
  })())
  return { armed: true }
})
app.get('/watched', async (request) => {
  const id = idOf(request)
  const at = await watched.get(id)
  watched.delete(id)
  return { at: at ?? NaN }
})
app.addHook('onClose', async () => { redis.disconnect() })
await serve(app)

// Redis stopped: the plugin on the Redis store with a client pointed at a port nothing listens on.
// With the offline queue off every store call fails at once, the circuit breaker soon stops asking,
// and each request runs the 20 ms handler as if the route were not cached.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { createServer } from 'node:net'
import responseCache from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const closedPort = await new Promise<number>((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address() as { port: number }
    probe.close(() => { resolve(port) })
  })
})
const redis = new Redis({ port: closedPort, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 1000 })
// ioredis reports each failed reconnect as an 'error' event; unheard, it prints every one.
redis.on('error', () => {})
const app = Fastify()
await app.register(responseCache, { store: 'redis', redis, ttl: 3600 })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
app.addHook('onClose', async () => { redis.disconnect() })
await serve(app)

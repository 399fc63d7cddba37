// The slow route with the plugin on Redis (the runner starts a redis-server and passes its port).
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import responseCache from '../../lib/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const redis = new Redis({
  port: Number(process.env.BENCH_REDIS_PORT),
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  // Many concurrent GETs share one write to Redis: fewer syscalls on both sides.
  enableAutoPipelining: true
})
await new Promise((resolve) => redis.once('ready', resolve))
const app = Fastify()
await app.register(responseCache, { store: 'redis', redis, ttl: 3600, namespace: `bench${process.pid}` })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
app.addHook('onClose', async () => { redis.disconnect() })
await serve(app)

// A cold key under a stampede: a 50 ms handler that counts its runs. BENCH_STORE picks the store
// ('memory', 'redis', or 'none' for the route without the plugin).
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import responseCache from '../../dist/esm/index.js'
import { PRODUCT, sleep } from './payload.js'
import { serve } from './serve.js'

const store = process.env.BENCH_STORE ?? 'memory'
const app = Fastify()
let runs = 0
if (store !== 'none') {
  const redis = store === 'redis' ? new Redis({ port: Number(process.env.BENCH_REDIS_PORT), enableOfflineQueue: false, maxRetriesPerRequest: 0 }) : undefined
  if (redis !== undefined) {
    await new Promise((resolve) => redis.once('ready', resolve))
    app.addHook('onClose', async () => { redis.disconnect() })
  }
  await app.register(responseCache, { store: store as 'memory' | 'redis', redis, ttl: 3600, namespace: `stampede${process.pid}` })
}
app.get('/product', { config: { cache: store !== 'none' } }, async () => {
  runs++
  await sleep(50)
  return PRODUCT
})
app.get('/runs', async () => ({ runs }))
await serve(app)

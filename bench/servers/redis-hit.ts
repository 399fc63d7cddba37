// The slow route with the plugin on Redis (the runner starts a redis-server and passes its port);
// BENCH_ENCRYPTION=1 seals entries with a 32-byte key (encryption at rest).
import Fastify from 'fastify'
import responseCache from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { benchRedis } from './redis-client.js'
import { serve } from './serve.js'

const redis = await benchRedis()
const app = Fastify()
const encryption = process.env.BENCH_ENCRYPTION === '1' ? { keys: [{ id: 'bench', key: Buffer.alloc(32, 7) }] } : undefined
await app.register(responseCache, { store: 'redis', redis, ttl: 3600, namespace: `bench${process.pid}`, encryption })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
app.addHook('onClose', async () => { redis.disconnect() })
await serve(app)

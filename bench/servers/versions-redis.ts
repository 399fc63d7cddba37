// The slow route with the plugin on Redis, its RedisStore loaded from BENCH_STORE_MODULE (bench/versions.ts
// passes this tree's lib/stores/redis.ts or a copy of an earlier commit's): the same app around either store.
import Fastify from 'fastify'
import responseCache, { type CacheStore } from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { benchRedis } from './redis-client.js'
import { serve } from './serve.js'

type StoreClass = new (options: { client: unknown, namespace: string, log: unknown }) => CacheStore
const { RedisStore } = await import(process.env.BENCH_STORE_MODULE as string) as { RedisStore: StoreClass }
const redis = await benchRedis()
const app = Fastify()
await app.register(responseCache, { store: new RedisStore({ client: redis, namespace: `bench${process.pid}`, log: app.log }), ttl: 3600 })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
app.addHook('onClose', async () => { redis.disconnect() })
await serve(app)

// Peer: bentocache getOrSet in the handler, memory only, or with BENCH_L2=redis memory in front of the
// bench's redis-server (hits then come from the memory tier). Defaults otherwise: the memory tier
// stores serialised values, so every hit parses JSON and Fastify serialises it again.
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'
import Fastify from 'fastify'
import { loadProduct } from './payload.js'
import { benchRedis } from './redis-client.js'
import { serve } from './serve.js'

const redis = process.env.BENCH_L2 === 'redis' ? await benchRedis() : undefined
const store = bentostore().useL1Layer(memoryDriver({ maxSize: '64mb' }))
if (redis !== undefined) store.useL2Layer(redisDriver({ connection: redis }))
const bento = new BentoCache({ default: 'product', stores: { product: store }, prefix: `bento${process.pid}` })

const app = Fastify()
app.get('/product', async () => await bento.getOrSet({ key: 'product:42', ttl: '1h', factory: loadProduct }))
app.addHook('onClose', async () => { await bento.disconnectAll() })
await serve(app)

// The slow route with the plugin on a Redis Cluster (BENCH_CLUSTER_PORTS, the masters' ports), its
// client made as the README shows: `new Cluster(nodes)`.
import Fastify from 'fastify'
import { Cluster } from 'ioredis'
import responseCache from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const cluster = new Cluster((process.env.BENCH_CLUSTER_PORTS ?? '').split(',').map((port) => ({ host: '127.0.0.1', port: Number(port) })))
// ioredis reports each failed reconnect to a dead node as an 'error' event; unheard, it prints every one.
cluster.on('error', () => {})
const app = Fastify()
await app.register(responseCache, { store: 'redis', redis: cluster, ttl: 3600, namespace: 'failover' })
// The id in a header of its own, stored with the entry: the failover bench finds which master holds which URL.
app.get('/product', { config: { cache: true } }, async (request, reply) => {
  reply.header('x-product-id', (request.query as { id?: string }).id ?? '')
  return await loadProduct()
})
app.addHook('onClose', async () => { cluster.disconnect() })
await serve(app)

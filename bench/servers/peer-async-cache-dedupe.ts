// Peer: async-cache-dedupe's memory storage wrapping the handler's data function. The handler still
// runs on every request and Fastify serialises the cached object each time.
import { createCache } from 'async-cache-dedupe'
import Fastify from 'fastify'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const cache = createCache({ ttl: 3600, storage: { type: 'memory' } }).define('product', async (_id: number) => await loadProduct())
const app = Fastify()
app.get('/product', async () => await cache.product(42))
await serve(app)

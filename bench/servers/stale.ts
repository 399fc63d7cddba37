// Stale serving under load: the entry is stale again as soon as it is refreshed (ttl 1 ms), so every
// request but the one refresh at a time is answered STALE from the memory store.
import Fastify from 'fastify'
import responseCache from '../../lib/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
await app.register(responseCache, { ttl: 0.001, staleWhileRevalidate: 3600 })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
await serve(app)

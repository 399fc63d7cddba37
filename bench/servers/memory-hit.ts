// The same slow route with the plugin on the memory store: after the first request, every one is a hit.
import Fastify from 'fastify'
import responseCache from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
await app.register(responseCache, { ttl: 3600 })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
await serve(app)

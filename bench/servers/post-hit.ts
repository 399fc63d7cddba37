// POST responses keyed by their body: every request sends the same 2 KB JSON search, so after the
// first each one is parsed, hashed into the key and answered from the memory store.
import Fastify from 'fastify'
import responseCache from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
await app.register(responseCache, { ttl: 3600 })
app.post('/search', { config: { cache: true } }, async () => await loadProduct())
await serve(app)

// POST responses keyed by their body: the scenarios send one search (2 KB or 64 KB, in one or six key orders),
// so after the first of each byte string every request is answered from its raw bytes, unparsed.
import Fastify from 'fastify'
import responseCache from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
await app.register(responseCache, { ttl: 3600 })
app.post('/search', { config: { cache: true } }, async () => await loadProduct())
await serve(app)

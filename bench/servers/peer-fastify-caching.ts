// Peer: @fastify/caching with its default (abstract-cache memory) store. It sets cache-control and
// remembers ETags to answer If-None-Match with 304; it never stores bodies, so a client without a
// validator (autocannon sends none) gets the handler every time. Measured as users would set it up.
import caching from '@fastify/caching'
import Fastify from 'fastify'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
await app.register(caching, { privacy: caching.privacy.PUBLIC, expiresIn: 3600 })
app.get('/product', async (_request, reply) => {
  reply.etag('"product-42"')
  return await loadProduct()
})
await serve(app)

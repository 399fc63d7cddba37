// The same slow route with the plugin on the memory store: after the first request, every one is a hit.
// BENCH_GUARD=preValidation or preHandler adds an app-level guard hook there (one that lets every
// request through), so the lookup runs after it, at the end of that stage (issue 24 point 1).
import Fastify from 'fastify'
import responseCache from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
await app.register(responseCache, { ttl: 3600 })
const guard = process.env.BENCH_GUARD
if (guard === 'preValidation' || guard === 'preHandler') {
  app.addHook(guard, async (request, reply) => {
    if (request.headers['x-blocked'] !== undefined) await reply.code(401).send()
  })
}
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
await serve(app)

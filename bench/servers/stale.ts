// Stale serving under load: a slow upstream (the handler takes 1 s) behind staleWhileRevalidate. The
// entry is stale 1 ms after each refresh, so one refresh runs at a time, back to back, and every
// other answer is STALE from the memory store.
import Fastify from 'fastify'
import responseCache from '../../dist/esm/index.js'
import { PRODUCT, sleep } from './payload.js'
import { serve } from './serve.js'

const app = Fastify()
await app.register(responseCache, { ttl: 0.001, staleWhileRevalidate: 3600 })
app.get('/product', { config: { cache: true } }, async () => {
  await sleep(1000)
  return PRODUCT
})
await serve(app)

// 45 KB JSON (the measurement of issue 26), memory-store hits, with @fastify/compress registered as
// its README shows. BENCH_COMPRESS: 'cache' (the cache owns compression, the default), 'off'
// (`compress: false`: every compressed answer is a miss, as before), 'none' (no plugin, @fastify/compress alone).
import Fastify from 'fastify'
import fastifyCompress from '@fastify/compress'
import responseCache from '../../dist/esm/index.js'
import { sleep } from './payload.js'
import { serve } from './serve.js'

const mode = process.env.BENCH_COMPRESS ?? 'cache'
const data = Array.from({ length: 700 }, (_, id) => ({ id, sku: `SKU-${100000 + id}`, name: `Product number ${id}`, price: (id * 7) % 1000 / 10, tags: ['a', 'b'] }))
const app = Fastify()
await app.register(fastifyCompress)
if (mode !== 'none') await app.register(responseCache, { ttl: 3600, compress: mode === 'off' ? false : undefined })
app.get('/list', { config: { cache: mode !== 'none' } }, async () => {
  await sleep(20)
  return data
})
await serve(app)

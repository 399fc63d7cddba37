// 60 KB JSON (61,169 bytes; the measurement of issue 26), memory-store hits, with @fastify/compress registered as
// its README shows. BENCH_COMPRESS: 'cache' (the cache owns compression, the default), 'off'
// (`compress: false`: every compressed answer is a miss, as before), 'none' (no plugin, @fastify/compress alone).
// BENCH_CORS=1 also registers @fastify/cors as its README shows, with `origin: true` (every answer
// `Vary: Origin`, so the cache keeps one variant per Origin). GET /bench/stats answers the plugin's
// own counters (`app.cache.stats().total`), which the runner reads around the load for the hit share.
import Fastify from 'fastify'
import fastifyCompress from '@fastify/compress'
import fastifyCors from '@fastify/cors'
import responseCache from '../../dist/esm/index.js'
import { loadList } from './payload.js'
import { serve } from './serve.js'

const mode = process.env.BENCH_COMPRESS ?? 'cache'
const app = Fastify()
await app.register(fastifyCompress)
if (process.env.BENCH_CORS === '1') await app.register(fastifyCors, { origin: true })
if (mode !== 'none') await app.register(responseCache, { ttl: 3600, compress: mode === 'off' ? false : undefined })
app.get('/list', { config: { cache: mode !== 'none' } }, async () => await loadList())
app.get('/bench/stats', { config: { cache: false } }, async () => mode === 'none' ? {} : app.cache.stats().total)
await serve(app)

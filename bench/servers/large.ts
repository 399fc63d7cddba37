// 1 MB JSON answers. BENCH_STORE 'none' is the ceiling (a constant 1 MB Buffer, no handler work);
// 'memory' and 'redis' put the 20 ms handler, which serialises the whole catalogue, behind the plugin.
import Fastify from 'fastify'
import responseCache from '../../dist/esm/index.js'
import { catalogue, sleep } from './payload.js'
import { benchRedis } from './redis-client.js'
import { serve } from './serve.js'

const store = process.env.BENCH_STORE ?? 'memory'
const data = catalogue()
const app = Fastify()
if (store === 'none') {
  const bytes = Buffer.from(JSON.stringify(data))
  app.get('/catalogue', async (_request, reply) => reply.type('application/json; charset=utf-8').send(bytes))
} else {
  const redis = store === 'redis' ? await benchRedis() : undefined
  if (redis !== undefined) app.addHook('onClose', async () => { redis.disconnect() })
  await app.register(responseCache, { store: store as 'memory' | 'redis', redis, ttl: 3600, namespace: `large${process.pid}` })
  app.get('/catalogue', { config: { cache: true } }, async () => {
    await sleep(20)
    return data
  })
}
await serve(app)

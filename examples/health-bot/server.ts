// `npm run example health-bot`: the health bot's data layer, cached.
// Memory by default; REDIS_URL=redis://127.0.0.1:6379 for memory over Redis (store: 'tiered').
import { Redis } from 'ioredis'
import { build } from './app.js'

const url = process.env.REDIS_URL
const redis = url === undefined || url === '' ? undefined : new Redis(url)
// The plugin logs Redis trouble itself (rate-limited); this keeps ioredis from printing every reconnect.
redis?.on('error', () => {})
const app = await build({ redis, logger: { level: 'warn' } })
const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`health bot on ${address} (cache: ${redis === undefined ? 'memory' : 'tiered, memory over redis'})
  curl ${address}/users/u1/memory                 # 200 ms from the files, then from the cache (1 h)
  curl -X PUT ${address}/users/u1/preferences -H 'content-type: application/json' -d '{"units":"imperial"}'
  curl -X POST ${address}/users/u1/messages -H 'content-type: application/json' -d '{"text":"I ate an apple"}'
  curl '${address}/users/u1/history?limit=10'     # the new messages: each one dropped every cached limit
  curl '${address}/nutrition?food=banana'          # 1 s from the USDA API once, then a day from the cache
  curl ${address}/health                          # the cache's health, and hits and misses`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(() => redis?.disconnect(), () => process.exit(1))
  })
}

// `npm run example story-repositories`: heroes, children and stories behind cached repositories.
// Memory by default; REDIS_URL=redis://127.0.0.1:6379 to share the cache in Redis.
import { Redis } from 'ioredis'
import { build } from './app.js'

const url = process.env.REDIS_URL
const redis = url === undefined || url === '' ? undefined : new Redis(url)
// The plugin logs Redis trouble itself (rate-limited); this keeps ioredis from printing every reconnect.
redis?.on('error', () => {})
const app = await build({ redis, logger: { level: 'warn' } })
const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`story repositories on ${address} (cache: ${redis === undefined ? 'memory' : 'redis'})
  curl ${address}/heroes/h1                       # 80 ms from the "database", then from the cache (1 h)
  curl '${address}/heroes?language=en'            # a list, cached whole
  curl -X PUT ${address}/heroes/h1 -H 'content-type: application/json' -d '{"language":"ru"}'
  curl '${address}/heroes?language=ru'            # the update dropped both language lists
  curl '${address}/stories?childId=c1'            # stories (10 min); children at /children (30 min)
  curl ${address}/cache/stats                     # hits and misses of the repositories under "values"`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(() => redis?.disconnect(), () => process.exit(1))
  })
}

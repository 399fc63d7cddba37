// `npm run example patient-generator` (memory store), or with REDIS_URL=redis://127.0.0.1:6379 for Redis.
import { build } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const publicHost = process.env.PUBLIC_HOST ?? `127.0.0.1:${port}`
const app = await build({ redisUrl: process.env.REDIS_URL || undefined, publicHost, logger: true })
await app.listen({ port, host: '127.0.0.1' })
const address = `http://${publicHost}`
console.log(`
Try:
  curl -i ${address}/reference/demographics   # HIT: warmed before the app took traffic
  curl ${address}/patients?count=3            # new patients every time, from the cached reference data
  curl ${address}/health                      # includes app.cache.health()`)

// `npm run example story-repositories`: heroes, children and stories behind cached repositories.
// Memory by default; REDIS_URL=redis://127.0.0.1:6379 to share the cache in Redis. ADMIN_TOKEN
// opens the operations routes (/cache/stats, /cache/invalidate); CACHE_ENABLED=false turns the cache off.
import { Redis } from 'ioredis'
import { listen } from '../listen.js'
import { build } from './app.js'

const url = process.env.REDIS_URL
const redis = url === undefined || url === '' ? undefined : new Redis(url)
// The plugin logs Redis trouble itself (rate-limited); this keeps ioredis from printing every reconnect.
redis?.on('error', () => {})
const app = await build({
  redis,
  enabled: process.env.CACHE_ENABLED !== 'false',
  adminToken: process.env.ADMIN_TOKEN,
  logger: { level: process.env.LOG_LEVEL ?? 'warn' }
})
app.addHook('onClose', async () => { redis?.disconnect() })
const cache = process.env.CACHE_ENABLED === 'false' ? 'off' : redis === undefined ? 'memory' : 'redis'
app.addHook('onListen', async () => {
  const bound = app.server.address()
  const port = typeof bound === 'object' && bound !== null ? bound.port : ''
  console.log(`story repositories on http://${process.env.HOST ?? '127.0.0.1'}:${port} (cache: ${cache})`)
})
const json = "-H 'content-type: application/json'"
await listen(app, [
  'curl -i {address}/heroes/h1                         # 80 ms from the "database"; again: server-timing: cache;desc=hit',
  "curl -s '{address}/heroes?language=en'              # a list, cached whole",
  "curl -s '{address}/heroes/by-name/Captain%20Kindness'   # by name (hero:name:{name})",
  "curl -s '{address}/children/exact?name=Emma&age=7&gender=female'   # by name, age and gender",
  `curl -s -X PUT {address}/heroes/h1 ${json} -d '{"language":"ru"}'`,
  "curl -s '{address}/heroes?language=ru'              # the update dropped both language lists",
  `curl -s -X POST {address}/heroes ${json} -d '{"name":"Doctor Brave","language":"en","description":"Never gives up"}'   # cached as it is saved`,
  `curl -s -X POST {address}/heroes ${json} -d '{"name":"Doctor Brave"}'   # 400: body must have required property 'language'`,
  `curl -s -X POST {address}/cache/invalidate ${json} -H "authorization: Bearer $ADMIN_TOKEN" -d '{"kind":"hero"}'   # drops every hero entry`,
  'curl -s {address}/cache/stats -H "authorization: Bearer $ADMIN_TOKEN"   # hits and misses of the repositories under "values"'
])

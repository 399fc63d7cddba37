// `npm run example health-bot`: the health bot's data layer, cached.
// Memory by default; REDIS_URL=redis://127.0.0.1:6379 for memory over Redis (store: 'tiered').
// ENABLE_CACHE=false turns the cache off; ADMIN_TOKEN opens the operations routes (/cache/...).
import { Redis } from 'ioredis'
import { listen } from '../listen.js'
import { build } from './app.js'

const url = process.env.REDIS_URL
const redis = url === undefined || url === '' ? undefined : new Redis(url)
// The plugin logs Redis trouble itself (rate-limited); this keeps ioredis from printing every reconnect.
redis?.on('error', () => {})
const enabled = process.env.ENABLE_CACHE !== 'false'
const app = await build({ redis, enabled, adminToken: process.env.ADMIN_TOKEN, logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
app.addHook('onClose', async () => { redis?.disconnect() })
const cache = !enabled ? 'off' : redis === undefined ? 'memory' : 'tiered, memory over redis'
app.addHook('onListen', async () => {
  const bound = app.server.address()
  const port = typeof bound === 'object' && bound !== null ? bound.port : ''
  console.log(`health bot on http://${process.env.HOST ?? '127.0.0.1'}:${port} (cache: ${cache})`)
})
const json = "-H 'content-type: application/json'"
const admin = '-H "authorization: Bearer $ADMIN_TOKEN"'
await listen(app, [
  'curl -si {address}/users/u1/memory | grep server-timing   # 200 ms from the files: cache;desc=miss; again: cache;desc=hit',
  `curl -s -X PUT {address}/users/u1/preferences ${json} -d '{"units":"imperial"}'`,
  "curl -s '{address}/nutrition?food=banana'           # 1 s from the USDA API once, then a day from the cache",
  `curl -s -X POST {address}/users/u1/messages ${json} -d '{"text":"I ate a banana"}'   # the nutrition entry /nutrition stored: no API call`,
  "curl -s '{address}/users/u1/history?limit=10'      # the new messages: each one dropped every cached limit",
  `curl -s {address}/cache/entries/usda:banana ${admin}   # exists and ttl: {"key":"usda:banana","ttl":86400,...}, 404 when not cached`,
  `curl -s -X POST {address}/cache/entries/usda:banana/expire ${admin} ${json} -d '{"ttl":60}'`,
  `curl -s -X DELETE {address}/cache ${admin} -o /dev/null -w '%{http_code}\\n'   # clear_all: 204`,
  'curl -s {address}/health                           # the cache\'s health, and hits and misses'
])

// `npm run example medinsight` (memory store), or with REDIS_URL=redis://127.0.0.1:6379 for Redis.
// MEDINSIGHT_OPS_TOKEN guards /api/v1/cache/*; LOG_LEVEL, HOST and PORT: see the README.
import { Redis } from 'ioredis'
import { listen } from '../listen.js'
import { build } from './app.js'

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace']
const level = process.env.LOG_LEVEL || 'info'
if (!LEVELS.includes(level)) {
  console.error(`LOG_LEVEL must be one of ${LEVELS.join(', ')}, not ${JSON.stringify(level)}`)
  process.exit(1)
}
// As the plugin's docs recommend: fail fast while Redis is away instead of queueing.
const url = process.env.REDIS_URL
const redis = url === undefined || url === '' ? undefined : new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
// The log goes through process.stdout, like console.log (pino's own writer is asynchronous): the
// "Try:" lines that listen() prints come after the listen line, as written.
const app = await build({ redis, logger: { level, stream: process.stdout } })
// ioredis reports each failed reconnect; the plugin already logs store trouble, rate-limited.
redis?.on('error', (error) => { app.log.debug({ err: error }, 'redis client error') })
app.addHook('onClose', () => { redis?.disconnect() })
const ops = '-H "authorization: Bearer $MEDINSIGHT_OPS_TOKEN"'
await listen(app, [
  'curl -i {address}/api/v1/drug/analyze -H "content-type: application/json" -d \'{"drug":"Aspirin "}\'   # run it twice: x-cache MISS, then HIT',
  'curl -i {address}/api/v1/analyze-health -H "content-type: application/json" -H "x-session-id: demo-session-1" -d \'{"symptoms":["headache"],"medications":["aspirin","warfarin"]}\'',
  'curl {address}/api/v1/summaries/demo-session-1                # the AI summary of the session, cached 2 h',
  'curl -i {address}/api/v1/drug/info/aspirin                    # basic drug info, 30 days; etag and 304',
  `curl {address}/api/v1/cache/session/demo-session-1 ${ops}`,
  `curl {address}/api/v1/cache/stats ${ops}`,
  `curl {address}/api/v1/cache/entries/drug-analysis ${ops}`
])

// `npm run example patient-generator` (memory store), or with REDIS_URL=redis://127.0.0.1:6379 for Redis.
// CACHE_TTL, CACHE_ENABLED, PATIENT_GENERATOR_OPS_TOKEN, PUBLIC_HOST, LOG_LEVEL, HOST and PORT: see the README.
import { listen, listenOptions } from '../listen.js'
import { build } from './app.js'
import { ConfigError, readConfig } from './config.js'

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace']
let config
try {
  config = readConfig()
  if (process.env.LOG_LEVEL !== undefined && !LEVELS.includes(process.env.LOG_LEVEL)) throw new ConfigError(`LOG_LEVEL must be one of ${LEVELS.join(', ')}, not ${JSON.stringify(process.env.LOG_LEVEL)}`)
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  console.error(error.message)
  process.exit(1)
}
const { port } = listenOptions()
const publicHost = process.env.PUBLIC_HOST ?? `127.0.0.1:${port}`
// The log goes through process.stdout, like console.log (pino's own writer is asynchronous): the
// "Try:" lines that listen() prints come after the listen line, as written.
const app = await build({ ...config, publicHost, logger: { level: process.env.LOG_LEVEL ?? 'info', stream: process.stdout } })
await listen(app, [
  `curl -i {address}/reference/demographics   # x-cache: HIT, warmed before the app took traffic (for ${publicHost})`,
  'curl -i {address}/patients?count=3         # new patients every time; server-timing: cache;desc=hit',
  'curl {address}/health                      # the cache\'s health and what warming did',
  'curl -i -X DELETE {address}/cache/reference/conditions -H "authorization: Bearer $PATIENT_GENERATOR_OPS_TOKEN"   # drop and warm again'
])

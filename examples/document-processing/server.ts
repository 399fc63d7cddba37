// `npm run example document-processing` (memory store), or with REDIS_URL=redis://127.0.0.1:6379 for
// Redis. APP_ENV (development, staging, production), CACHE_ENCRYPTION_KEY, ADMIN_TOKEN: see README.md.
import { listen, listenOptions } from '../listen.js'
import { build } from './app.js'
import { ENVIRONMENTS, environmentOf } from './config.js'

let environment
try {
  environment = environmentOf(process.env.APP_ENV)
} catch (error) {
  console.error((error as Error).message)
  process.exit(1)
}
const { port } = listenOptions()
const publicHost = process.env.PUBLIC_HOST ?? `127.0.0.1:${port}`
const redisUrl = process.env.REDIS_URL === undefined || process.env.REDIS_URL === '' ? undefined : process.env.REDIS_URL
const cache = redisUrl === undefined ? 'memory' : 'redis, sealed'
let app
try {
  app = await build({
    redisUrl,
    publicHost,
    environment,
    encryptionKey: process.env.CACHE_ENCRYPTION_KEY,
    encryptionKeyId: process.env.CACHE_ENCRYPTION_KEY_ID,
    adminToken: process.env.ADMIN_TOKEN,
    logger: { level: process.env.LOG_LEVEL ?? ENVIRONMENTS[environment].logLevel },
    onListen: (actual) => { console.log(`document processing on http://${process.env.HOST ?? '127.0.0.1'}:${actual} (cache: ${cache}, ${String(environment)})`) }
  })
} catch (error) {
  // A missing key in production, a key that is not 32 bytes: one line, no stack.
  console.error(`document-processing cannot start: ${(error as Error).message}`)
  process.exit(1)
}
const started = app
const upload = "curl -s {address}/documents -H 'content-type: application/pdf' --data-binary @-"
const invoice = "printf 'Invoice number: INV-7\\nTotal: 99.00\\n'"
const admin = '-H "authorization: Bearer $ADMIN_TOKEN"'
await listen(started, [
  `${invoice} | ${upload} -H 'x-tenant-id: acme' -H 'x-file-name: a.pdf' -i | grep x-cache   # MISS (0.5 s)`,
  `${invoice} | ${upload} -H 'x-tenant-id: acme' -H 'x-file-name: b.pdf' -i | grep x-cache   # HIT: same bytes, other name`,
  `${invoice} | curl -s {address}/documents -H 'content-type: text/plain' --data-binary @- -H 'x-tenant-id: acme' -i | grep x-cache   # HIT: same bytes as text`,
  `${invoice} | ${upload} -H 'x-tenant-id: globex' -i | grep x-cache   # MISS: globex gets its own`,
  "curl -s {address}/documents -H 'x-tenant-id: acme' -H 'content-type: application/json' -d '{\"text\":\"x\"}'   # 400, before any OCR",
  "curl -s {address}/session -H 'x-tenant-id: acme' -H 'x-user-id: u1' -i | grep server-timing   # cache;desc=miss, then hit",
  "curl -s {address}/dashboard -H 'x-tenant-id: acme' -H 'x-user-id: u1'",
  `curl -s -X POST {address}/cache/rules/extraction-changed ${admin} -H 'content-type: application/json' -d '{"tenant":"acme"}'`,
  'curl -s {address}/health',
  "curl -s {address}/metrics | grep -E 'document_pipeline|response_cache_requests'"
])

// `npm run example reverse-proxy`: a caching reverse proxy on PORT in front of UPSTREAM
// (UPSTREAM=http://127.0.0.1:8080 npm run example reverse-proxy). Without UPSTREAM it starts a small
// demo origin of its own (origin.ts). Memory by default; REDIS_URL=redis://127.0.0.1:6379 for one
// cache shared by several proxies. PURGE_TOKEN=<secret> turns on PURGE and POST /cache/purge for
// requests with `Authorization: Bearer <secret>`.
import { Redis } from 'ioredis'
import { build } from './app.js'
import { startDemoOrigin } from './origin.js'

const demo = process.env.UPSTREAM === undefined || process.env.UPSTREAM === '' ? await startDemoOrigin() : undefined
const upstream = demo?.url ?? process.env.UPSTREAM as string
const url = process.env.REDIS_URL
const redis = url === undefined || url === '' ? undefined : new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
// The plugin logs Redis trouble itself (rate-limited); this keeps ioredis from printing every reconnect.
redis?.on('error', () => {})
const purgeToken = process.env.PURGE_TOKEN === undefined || process.env.PURGE_TOKEN === '' ? undefined : process.env.PURGE_TOKEN
const app = await build({ upstream, redis, purgeToken, logger: { level: 'warn' } })
app.addHook('onClose', () => {
  redis?.disconnect()
  demo?.server.close()
})
const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
console.log(`reverse proxy on ${address} in front of ${upstream} (cache: ${redis === undefined ? 'memory' : 'redis'}; purge: ${purgeToken === undefined ? 'off, set PURGE_TOKEN' : 'on'})`)
if (demo !== undefined) {
  console.log(`UPSTREAM is not set: that is a demo origin of this process. Try:
  curl -i ${address}/            # the demo origin's paths
  curl -i ${address}/max-age     # MISS, then HIT until the origin's max-age runs out
  curl -i ${address}/stream      # a chunked body: passed on as it comes, stored once it has ended
  curl -i ${address}/plain       # no freshness from the origin: always MISS
  curl -i -X POST ${address}/max-age -d x   # forwarded; the next GET /max-age is a MISS again${purgeToken === undefined
    ? ''
    : `
  curl -i -X PURGE -H "authorization: Bearer $PURGE_TOKEN" ${address}/max-age    # drops /max-age
  curl -i -X POST -H "authorization: Bearer $PURGE_TOKEN" -H 'content-type: application/json' \\
    -d '{"tags":["demo"]}' ${address}/cache/purge                              # drops what the origin tagged demo`}`)
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}

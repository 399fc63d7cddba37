// Starts MedInsight on the memory store, or on Redis when REDIS_URL is set:
//   MEDINSIGHT_OPS_TOKEN=secret REDIS_URL=redis://127.0.0.1:6379 tsx examples/medinsight/server.ts
import { Redis } from 'ioredis'
import { build } from './app.js'

// As the README says: fail fast while Redis is away instead of queueing.
const url = process.env.REDIS_URL
const redis = url === undefined || url === '' ? undefined : new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
const app = await build({ redis, logger: true })
if (process.env.MEDINSIGHT_OPS_TOKEN === undefined) app.log.warn('MEDINSIGHT_OPS_TOKEN is not set: every /api/v1/cache request answers 401')
app.addHook('onClose', () => { redis?.disconnect() })
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}

// `npm run example document-processing` (memory store), or with REDIS_URL=redis://127.0.0.1:6379 for Redis.
import { build } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const publicHost = process.env.PUBLIC_HOST ?? `127.0.0.1:${port}`
const app = await build({ redisUrl: process.env.REDIS_URL || undefined, publicHost, logger: true })
await app.listen({ port, host: '127.0.0.1' })
const upload = `curl -s http://${publicHost}/documents -H 'content-type: application/pdf' --data-binary @-`
console.log(`
Try:
  printf 'Invoice number: INV-7\\nTotal: 99.00\\n' | ${upload} -H 'x-tenant-id: acme' -H 'x-file-name: a.pdf' -i   # MISS (0.5 s)
  printf 'Invoice number: INV-7\\nTotal: 99.00\\n' | ${upload} -H 'x-tenant-id: acme' -H 'x-file-name: b.pdf' -i   # HIT: same bytes, other name
  printf 'Invoice number: INV-7\\nTotal: 99.00\\n' | ${upload} -H 'x-tenant-id: globex' -i                          # MISS: globex gets its own
  curl -s http://${publicHost}/metrics | grep -E 'document_pipeline|response_cache_requests'`)

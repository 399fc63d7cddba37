// `npm run demo`: starts the demo on the memory store, shows a MISS then a HIT, and keeps serving.
// With --once it exits after showing them (the example's test runs it that way).
import { request } from 'undici'
import { buildDemo } from './app.js'

const once = process.argv.includes('--once')
const app = await buildDemo()
const address = await app.listen({ port: once ? 0 : Number(process.env.PORT ?? 3000), host: '127.0.0.1' })

console.log(`fastify-response-cache demo on ${address}\n`)
for (const path of ['/products/42', '/products/42']) {
  const started = performance.now()
  const response = await request(address + path)
  await response.body.text()
  const ms = (performance.now() - started).toFixed(1)
  console.log(`GET ${path} -> ${response.statusCode} x-cache: ${String(response.headers['x-cache'])} in ${ms} ms`)
}

const stats = await request(address + '/cache/stats')
const { total } = await stats.body.json() as { total: { hits: number, misses: number } }
console.log(`GET /cache/stats -> ${stats.statusCode} hits: ${total.hits}, misses: ${total.misses}`)

if (once) {
  await app.close()
} else {
  console.log(`
Try:
  curl -i ${address}/products/7          # MISS (300 ms), then HIT
  curl -I ${address}/products/7          # HEAD from the GET entry
  curl -i -X POST ${address}/search -H 'content-type: application/json' -d '{"q":"tea","page":1}'
  curl -i -X POST ${address}/search -H 'content-type: application/json' -d '{"page":1,"q":"tea"}'   # HIT: key order does not matter
  curl -i ${address}/products/7 -H 'authorization: Bearer x'                                    # BYPASS
  curl -X PUT ${address}/products/7      # a write: the next GET /products/7 is a MISS again
  curl ${address}/products/7/summary     # app.cache.wrap: 200 ms once, then from the cache
  curl ${address}/cache/stats            # counters per route, as JSON
  curl ${address}/cache/stats -H 'accept: text/plain'   # the same as Prometheus text
Ctrl-C to stop.`)
}

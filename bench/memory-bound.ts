// One million distinct keys into a MemoryStore bounded at 64 MiB; prints one JSON line (MemoryBound)
// for store.ts. Run with --expose-gc so RSS is read after collection, not with garbage still in it.
import { MemoryStore } from '../dist/esm/stores/memory.js'
import { PRODUCT_JSON } from './servers/payload.js'

const KEYS = 1_000_000
const MAX_BYTES = 64 * 1024 * 1024

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
const settle = (): NodeJS.MemoryUsage => {
  gc()
  gc()
  return process.memoryUsage()
}

const store = new MemoryStore({ maxBytes: MAX_BYTES })
const before = settle()
const started = performance.now()
for (let i = 0; i < KEYS; i++) {
  // A body of its own per entry, as the plugin stores a copy of each response.
  store.set(`rc:-:GET:%2Fproduct:${i.toString(36).padStart(43, '0')}`, {
    status: 200,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: Buffer.from(PRODUCT_JSON),
    storedAt: Date.now(),
    ttl: 3600,
    etag: `"${i.toString(36).padStart(27, '0')}"`
  }, { ttl: 3600 })
}
const ms = Math.round(performance.now() - started)
const after = settle()
const peak = process.resourceUsage().maxRSS * 1024

console.log(JSON.stringify({
  keys: KEYS,
  bodyBytes: PRODUCT_JSON.length,
  maxBytes: MAX_BYTES,
  ms,
  stats: store.stats(),
  rssGrowth: after.rss - before.rss,
  peakRssGrowth: peak - before.rss,
  heapGrowth: after.heapUsed + after.external - before.heapUsed - before.external
}))

// Store micro-benchmarks: get/set per second on the MemoryStore and RedisStore classes themselves
// (no HTTP), the cost of the entry's binary form, and the memory bound (memory-bound.ts, in a child).
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import { decodeEntry, encodeEntry, type CacheEntry } from '../dist/esm/entry.js'
import { MemoryStore } from '../dist/esm/stores/memory.js'
import { RedisStore } from '../dist/esm/stores/redis.js'
import type { CacheStore } from '../lib/stores/store.js'
import { PRODUCT } from './servers/payload.js'

const MEASURE_MS = 700
const KEYS = 500
const IN_FLIGHT = 50

/**
 * A stored response with a body of `size` bytes of JSON records. Each record has its own ids, stock
 * and a random token, so the body compresses about as well as a real API answer (not 50 to 1, as
 * copies of one record would).
 */
export function entryOf (size: number): CacheEntry {
  let seed = 42
  const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31
  let json = ''
  for (let i = 0; json.length < size; i++) {
    const token = Array.from({ length: 24 }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(random() * 36)]).join('')
    json += JSON.stringify({ ...PRODUCT, id: i, token, stock: { warehouse: `AMS-${i % 7}`, available: Math.floor(random() * 1000), reserved: Math.floor(random() * 50) } }) + ','
  }
  return {
    status: 200,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: Buffer.from(json.slice(0, size)),
    storedAt: Date.now(),
    ttl: 3600,
    etag: '"Ojz1IhRhaKlR4f4cTFJ2mCmHTQs2jK"'
  }
}

/** Calls per second of `call`, run `inFlight` at a time for about MEASURE_MS. */
async function rate (call: (i: number) => unknown, inFlight = 1): Promise<number> {
  const started = performance.now()
  const deadline = started + MEASURE_MS
  let done = 0
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < deadline) {
      // A synchronous store answers in place: batch those so the clock is not read on every call.
      for (let n = 0; n < 64; n++) {
        const answer = call(done++)
        if (answer instanceof Promise) await answer
      }
    }
  }))
  return done / ((performance.now() - started) / 1000)
}

const perSecond = (n: number): string => Math.round(n).toLocaleString('en')
const silent = { warn () {}, error () {}, info () {}, debug () {} } as unknown as FastifyBaseLogger

/** Markdown for RESULTS.md's Stores section. */
export async function measureStores (redisPort: number): Promise<string[]> {
  const redis = new Redis({ port: redisPort })
  const stores: Array<[string, CacheStore, number[]]> = [
    ['MemoryStore', new MemoryStore({ maxBytes: 64 * 1024 * 1024 }), [1]],
    ['RedisStore', new RedisStore({ client: redis, namespace: 'storebench', log: silent }), [1, IN_FLIGHT]]
  ]
  const rows = [
    `Each store class called directly (no HTTP), ${KEYS} keys in turn, about ${MEASURE_MS} ms per figure; RedisStore`,
    'calls go to the bench\'s redis-server through ioredis (no auto-pipelining), one at a time and',
    `${IN_FLIGHT} in flight. RedisStore figures include encoding (set) and decoding (get) the entry; its`,
    'writes of one event-loop turn share a script call, so one set at a time also waits for that turn.',
    '',
    '| store | body | in flight | get / s | set / s |',
    '| --- | ---: | ---: | ---: | ---: |'
  ]
  try {
    await new Promise((resolve) => redis.once('ready', resolve))
    for (const size of [1024, 102_400]) {
      const entry = entryOf(size)
      const keys = Array.from({ length: KEYS }, (_, i) => `storebench:-:GET:%2Fproduct:${size}-${i}`)
      for (const [name, store, flights] of stores) {
        for (const inFlight of flights) {
          const sets = await rate((i) => store.set(keys[i % KEYS], entry, { ttl: 3600 }), inFlight)
          const gets = await rate((i) => store.get(keys[i % KEYS]), inFlight)
          rows.push(`| ${name} | ${size / 1024} KB | ${inFlight} | ${perSecond(gets)} | ${perSecond(sets)} |`)
          console.log(`  ${name} ${size / 1024} KB × ${inFlight}: get ${perSecond(gets)}/s, set ${perSecond(sets)}/s`)
        }
      }
    }
    await stores[1][1].clear()
  } finally {
    redis.disconnect()
  }
  rows.push('', 'The binary entry form (entry.ts) that Redis holds, per call on one core:', '',
    '| body | stored bytes | encodeEntry µs | decodeEntry µs |', '| ---: | ---: | ---: | ---: |')
  for (const size of [1024, 102_400]) {
    const entry = entryOf(size)
    const encoded = encodeEntry(entry)
    const encodes = await rate(() => encodeEntry(entry))
    const decodes = await rate(() => decodeEntry(encoded))
    rows.push(`| ${size / 1024} KB | ${encoded.length.toLocaleString('en')} | ${(1e6 / encodes).toFixed(2)} | ${(1e6 / decodes).toFixed(2)} |`)
  }
  rows.push('', 'Bodies of 1 KiB and more are lz4-compressed when that saves a tenth, hence the stored sizes.')
  return rows
}

export interface MemoryBound {
  keys: number
  bodyBytes: number
  maxBytes: number
  ms: number
  stats: { entries: number, bytes: number, evictions: number }
  rssGrowth: number
  peakRssGrowth: number
  heapGrowth: number
}

/** Runs memory-bound.ts in a child process of its own, so its RSS is the store's and nothing else's. */
export function measureMemoryBound (): MemoryBound {
  const script = fileURLToPath(new URL('./memory-bound.ts', import.meta.url))
  const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', script], {
    cwd: fileURLToPath(new URL('../', import.meta.url)),
    encoding: 'utf8'
  })
  return JSON.parse(output.trim().split('\n').at(-1) as string) as MemoryBound
}

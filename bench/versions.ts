// `npx tsx bench/versions.ts [base-commit]`: the RedisStore of this tree against the one of
// `base-commit` (default: the commit issue 16 started from), in one process on one redis-server,
// for the request path's Redis calls: a hit (getOrLock finds the entry) and a miss (getOrLock takes
// the lock, then the write of the entry with its tags releases it). Rounds alternate which store goes
// first; each round's figure is a ratio of the two, and the medians are printed as a Markdown table.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import { RedisStore } from '../lib/stores/redis.js'
import type { CacheStore } from '../lib/stores/store.js'
import { startRedis } from './harness.js'
import { entryOf } from './store.js'

const BASE = process.argv[2] ?? 'a82a8b5'
const ROUNDS = 9
const MEASURE_MS = 600
const IN_FLIGHT = [1, 50]
/** The store tags of a GET entry with one tag and no tenant (lib/tags.ts): tag, route and path. */
const TAGS = (i: number): string[] => [`g:t:item:${i}`, 'g:r:GET /items/:id', `g:p:${i}`]

/** The store of `BASE`, its imports pointed at this tree's unchanged modules. */
async function baseStore (): Promise<new (options: { client: Redis, namespace: string, log: FastifyBaseLogger }) => CacheStore> {
  const root = fileURLToPath(new URL('../', import.meta.url))
  const source = execFileSync('git', ['show', `${BASE}:lib/stores/redis.ts`], { cwd: root, encoding: 'utf8' })
    .replace(/from '\.\.\/([\w-]+)\.js'/g, "from '../../lib/$1.js'")
    .replace(/from '\.\/([\w-]+)\.js'/g, "from '../../lib/stores/$1.js'")
  mkdirSync(new URL('./.tmp/', import.meta.url), { recursive: true })
  const file = new URL('./.tmp/redis-store-base.ts', import.meta.url)
  writeFileSync(file, source)
  return (await import(file.href) as { RedisStore: new (options: { client: Redis, namespace: string, log: FastifyBaseLogger }) => CacheStore }).RedisStore
}

/** Operations per second of `op`, `inFlight` at a time, for about MEASURE_MS. */
async function rate (op: (i: number) => Promise<unknown>, inFlight: number): Promise<number> {
  const started = performance.now()
  const deadline = started + MEASURE_MS
  let n = 0
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < deadline) await op(n++)
  }))
  return n / ((performance.now() - started) / 1000)
}

const silent = { warn () {}, error () {}, info () {}, debug () {} } as unknown as FastifyBaseLogger
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

const redis = await startRedis()
const client = new Redis({ port: redis.port })
const Base = await baseStore()
const entry = entryOf(1024)
let namespaces = 0

/** Hits and misses per second of one store, `inFlight` at a time. */
async function measure (make: (namespace: string) => CacheStore, inFlight: number): Promise<{ hit: number, miss: number }> {
  const namespace = `versions${++namespaces}`
  const store = make(namespace)
  const key = (i: number): string => `${namespace}:-:GET:%2Fitems%2F%3Aid:${i}`
  const getOrLock = store.getOrLock?.bind(store) as NonNullable<CacheStore['getOrLock']>
  for (let i = 0; i < 500; i++) await store.set(key(i), entry, { ttl: 60, tags: TAGS(i) })
  const hit = await rate(async (i) => await getOrLock(key(i % 500), 5000), inFlight)
  const miss = await rate(async (i) => {
    const { token } = await getOrLock(key(1000 + i), 5000)
    await store.set(key(1000 + i), entry, { ttl: 60, tags: TAGS(i), lockToken: token })
  }, inFlight)
  await store.clear()
  return { hit, miss }
}

const stores: Array<[string, (namespace: string) => CacheStore]> = [
  ['before', (namespace) => new Base({ client, namespace, log: silent })],
  ['after', (namespace) => new RedisStore({ client, namespace, log: silent })]
]
const rows = `RedisStore of ${BASE} (before) and of this tree (after), one process, one redis-server ${redis.version}, 1 KB
entries with 3 tags; ${ROUNDS} rounds of about ${MEASURE_MS} ms per figure, alternating which store goes first;
medians. "after / before" is the median of the rounds' ratios of operations per second (1.00: no change).

| path | in flight | before / s | after / s | after / before |
| --- | ---: | ---: | ---: | ---: |`.split('\n')
try {
  await new Promise((resolve) => client.once('ready', resolve))
  for (const inFlight of IN_FLIGHT) {
    const figures = { before: { hit: [] as number[], miss: [] as number[] }, after: { hit: [] as number[], miss: [] as number[] } }
    const ratios = { hit: [] as number[], miss: [] as number[] }
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? stores : [...stores].reverse()
      const measured: Record<string, { hit: number, miss: number }> = {}
      for (const [name, make] of order) measured[name] = await measure(make, inFlight)
      for (const path of ['hit', 'miss'] as const) {
        figures.before[path].push(measured.before[path])
        figures.after[path].push(measured.after[path])
        ratios[path].push(measured.after[path] / measured.before[path])
      }
    }
    for (const path of ['hit', 'miss'] as const) {
      const row = `| ${path === 'hit' ? 'hit (getOrLock finds the entry)' : 'miss (getOrLock takes the lock, set releases it)'} | ${inFlight} | ${Math.round(median(figures.before[path])).toLocaleString('en')} | ${Math.round(median(figures.after[path])).toLocaleString('en')} | ${median(ratios[path]).toFixed(3)} |`
      rows.push(row)
      console.error(row, ratios[path].map((r) => r.toFixed(2)).join(' '))
    }
  }
} finally {
  client.disconnect()
  redis.stop()
}
console.log(rows.join('\n'))

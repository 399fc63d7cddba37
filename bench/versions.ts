// `npx tsx bench/versions.ts [base-commit]`: the RedisStore of this tree against the one of
// `base-commit` (default: the commit issue 16 started from). First in one process on one redis-server
// each, for the request path's Redis calls: a hit (getOrLock finds the entry) and a miss (getOrLock
// takes the lock, then the write of the entry with its tags releases it); then through HTTP, the
// plugin around either store. Rounds alternate which store goes first; each round's figure is a
// ratio of the two, and the medians are printed as a Markdown table.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import { RedisStore } from '../lib/stores/redis.js'
import type { CacheStore } from '../lib/stores/store.js'
import { CONNECTIONS, load, startRedis, startServer } from './harness.js'
import { entryOf } from './store.js'

const BASE = process.argv[2] ?? 'a82a8b5'
const ROUNDS = 7
const MEASURE_MS = 100
const SLICES = 6
const IN_FLIGHT = [1, 50]
const HTTP_ROUNDS = 5
const HTTP_SLICES = 3
const HTTP_SLICE_SECONDS = 2
/** The store tags of a GET entry with one tag and no tenant (lib/tags.ts): tag, route and path. */
const TAGS = (i: number): string[] => [`g:t:item:${i}`, 'g:r:GET /items/:id', `g:p:${i}`]

/**
 * The store of `BASE`, its imports pointed at this tree's unchanged modules: written next to this file
 * for as long as the bench runs (the HTTP servers load it too), then removed, so that lint and
 * typecheck never read the old source.
 */
function writeBaseStore (): URL {
  const root = fileURLToPath(new URL('../', import.meta.url))
  const source = execFileSync('git', ['show', `${BASE}:lib/stores/redis.ts`], { cwd: root, encoding: 'utf8' })
    .replace(/from '\.\.\/([\w-]+)\.js'/g, "from '../../lib/$1.js'")
    .replace(/from '\.\/([\w-]+)\.js'/g, "from '../../lib/stores/$1.js'")
  mkdirSync(new URL('./.tmp/', import.meta.url), { recursive: true })
  const file = new URL('./.tmp/redis-store-base.ts', import.meta.url)
  writeFileSync(file, source)
  return file
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

/** Mean time the server spent per script call since its stats were reset. */
async function scriptMicroseconds (client: Redis): Promise<number> {
  return Number(/cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(await client.info('commandstats'))?.[1] ?? 0)
}

const silent = { warn () {}, error () {}, info () {}, debug () {} } as unknown as FastifyBaseLogger
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

// A redis-server per store, so that each server's commandstats give one store's Redis time per call.
const servers = { before: await startRedis(), after: await startRedis() }
const clients = { before: new Redis({ port: servers.before.port }), after: new Redis({ port: servers.after.port }) }
const baseFile = writeBaseStore()
const Base = (await import(baseFile.href) as { RedisStore: new (options: { client: Redis, namespace: string, log: FastifyBaseLogger }) => CacheStore }).RedisStore
const entry = entryOf(1024)
let namespaces = 0

/** One store's namespace, its 500 entries written: `hit` and `miss` run one operation each. */
async function prepare (make: (namespace: string) => CacheStore): Promise<{ store: CacheStore, hit: (i: number) => Promise<unknown>, miss: (i: number) => Promise<unknown> }> {
  const namespace = `versions${++namespaces}`
  const store = make(namespace)
  const key = (i: number): string => `${namespace}:-:GET:%2Fitems%2F%3Aid:${i}`
  const getOrLock = store.getOrLock?.bind(store) as NonNullable<CacheStore['getOrLock']>
  for (let i = 0; i < 500; i++) await store.set(key(i), entry, { ttl: 60, tags: TAGS(i) })
  let misses = 0
  return {
    store,
    hit: async (i) => await getOrLock(key(i % 500), 5000),
    miss: async () => {
      const i = 1000 + misses++
      const { token } = await getOrLock(key(i), 5000)
      await store.set(key(i), entry, { ttl: 60, tags: TAGS(i), lockToken: token })
    }
  }
}

const stores: Array<[string, (namespace: string) => CacheStore]> = [
  ['before', (namespace) => new Base({ client: clients.before, namespace, log: silent })],
  ['after', (namespace) => new RedisStore({ client: clients.after, namespace, log: silent })]
]
const rows = `RedisStore of ${BASE} (before) and of this tree (after), one process, a redis-server ${servers.after.version} each, 1 KB
entries with 3 tags; ${ROUNDS} rounds, each of ${SLICES} slices of about ${MEASURE_MS} ms per store taken in turns;
medians of the rounds. "after / before" is the median of the rounds' ratios of operations per second (1.00: no change);
"Redis µs" is the server's own time per script call (INFO commandstats; a miss is two calls, the write's shared by a turn's misses).

| path | in flight | before / s | after / s | after / before | Redis µs before | Redis µs after |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |`.split('\n')
try {
  await Promise.all(Object.values(clients).map(async (client) => { if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve)) }))
  for (const inFlight of IN_FLIGHT) {
    const figures = { before: { hit: [] as number[], miss: [] as number[] }, after: { hit: [] as number[], miss: [] as number[] } }
    const ratios = { hit: [] as number[], miss: [] as number[] }
    const usec = { before: { hit: [] as number[], miss: [] as number[] }, after: { hit: [] as number[], miss: [] as number[] } }
    for (let round = 0; round < ROUNDS; round++) {
      // The machine's speed drifts from one second to the next: the two stores take turns in short
      // slices, so that each round compares them over the same stretch of time.
      const prepared = { before: await prepare(stores[0][1]), after: await prepare(stores[1][1]) }
      const order = round % 2 === 0 ? ['before', 'after'] as const : ['after', 'before'] as const
      for (const path of ['hit', 'miss'] as const) {
        const ops = { before: 0, after: 0 }
        await Promise.all(Object.values(clients).map(async (client) => await client.config('RESETSTAT')))
        for (let slice = 0; slice < SLICES; slice++) for (const name of order) ops[name] += await rate(prepared[name][path], inFlight)
        for (const name of order) usec[name][path].push(await scriptMicroseconds(clients[name]))
        figures.before[path].push(ops.before / SLICES)
        figures.after[path].push(ops.after / SLICES)
        ratios[path].push(ops.after / ops.before)
      }
      for (const { store } of Object.values(prepared)) await store.clear()
    }
    for (const path of ['hit', 'miss'] as const) {
      const row = `| ${path === 'hit' ? 'hit (getOrLock finds the entry)' : 'miss (getOrLock takes the lock, set releases it)'} | ${inFlight} | ${Math.round(median(figures.before[path])).toLocaleString('en')} | ${Math.round(median(figures.after[path])).toLocaleString('en')} | ${median(ratios[path]).toFixed(3)} | ${median(usec.before[path]).toFixed(1)} | ${median(usec.after[path]).toFixed(1)} |`
      rows.push(row)
      console.error(row, ratios[path].map((r) => r.toFixed(2)).join(' '))
    }
  }
  rows.push(...await httpRows())
} finally {
  rmSync(baseFile)
  for (const client of Object.values(clients)) client.disconnect()
  for (const server of Object.values(servers)) server.stop()
}
console.log(rows.join('\n'))

/**
 * The same comparison through HTTP, as users meet it: the bench's slow route (a 20 ms handler) with
 * the plugin around either store, each app in its own process on its own redis-server, driven by
 * autocannon in turns of HTTP_SLICE_SECONDS; hits ask for one URL, misses for a new URL every time.
 */
async function httpRows (): Promise<string[]> {
  const started = {
    before: await startServer('versions-redis.ts', { BENCH_REDIS_PORT: String(servers.before.port), BENCH_STORE_MODULE: baseFile.href }),
    after: await startServer('versions-redis.ts', { BENCH_REDIS_PORT: String(servers.after.port), BENCH_STORE_MODULE: new URL('../lib/stores/redis.ts', import.meta.url).href })
  }
  const table = ['', `The same through HTTP: the bench's product route (a 20 ms handler, ${CONNECTIONS} connections) with the plugin around either
store, one process and one redis-server each; ${HTTP_ROUNDS} rounds, each of ${HTTP_SLICES} slices of ${HTTP_SLICE_SECONDS} s per app taken in turns.

| path | before req/s | after req/s | after / before |
| --- | ---: | ---: | ---: |`]
  try {
    for (const server of Object.values(started)) await load(server.address + '/product', { seconds: 1 })
    for (const path of ['hit', 'miss'] as const) {
      const perRound = { before: [] as number[], after: [] as number[], ratio: [] as number[] }
      for (let round = 0; round < HTTP_ROUNDS; round++) {
        const order = round % 2 === 0 ? ['before', 'after'] as const : ['after', 'before'] as const
        const total = { before: 0, after: 0 }
        for (let slice = 0; slice < HTTP_SLICES; slice++) {
          for (const name of order) total[name] += (await load(started[name].address + '/product', { seconds: HTTP_SLICE_SECONDS, unique: path === 'miss' })).requests.average
        }
        perRound.before.push(total.before / HTTP_SLICES)
        perRound.after.push(total.after / HTTP_SLICES)
        perRound.ratio.push(total.after / total.before)
      }
      const row = `| ${path === 'hit' ? 'hit (GET, x-cache HIT)' : 'miss (a new URL each request: looked up, handled, stored)'} | ${Math.round(median(perRound.before)).toLocaleString('en')} | ${Math.round(median(perRound.after)).toLocaleString('en')} | ${median(perRound.ratio).toFixed(3)} |`
      console.error(row, perRound.ratio.map((r) => r.toFixed(2)).join(' '))
      table.push(row)
    }
  } finally {
    for (const server of Object.values(started)) await server.stop()
  }
  return table
}

// `npx tsx bench/values.ts` (writes its section of bench/RESULTS.md), `BENCH_ONLY=values npm run bench`
// (prints it), and part of a full `npm run bench`: the value cache's hits per second against its peers,
// in one process and one run. Every subject holds the same ~0.7 KB object (bench/servers/payload.ts)
// under each of KEYS keys, is warmed first, then each round runs HITS sequential awaited calls per
// subject, the subjects in a rotated order; the figures are medians of the rounds, and a ratio is the
// median of the rounds' ratios (both sides measured in the same round).
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { createCache as dedupeCache } from 'async-cache-dedupe'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'
import { createCache as cacheManager } from 'cache-manager'
import KeyvRedis from '@keyv/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { Keyv } from 'keyv'
import responseCache from '../lib/index.js'
import { startRedis } from './harness.js'
import { PRODUCT } from './servers/payload.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const HITS = Number(process.env.BENCH_VALUE_HITS ?? 50_000)
const KEYS = 100
const SLICES = 10
const KEY_NAMES = Array.from({ length: KEYS }, (_, i) => `product:${i}`)
const TTL_SECONDS = 3600

type Call = (i: number) => Promise<unknown>
/** `fill` stores every key's value before the warm-up: get subjects start with a set; the others fill themselves. */
interface Subject { name: string, call: Call, fill?: Call }

export interface ValueFigures {
  rounds: number
  hits: number
  /** Median hits per second of each subject. */
  rates: Record<string, number>
  /** Every round's hits per second of each subject. */
  roundRates: Record<string, number[]>
  redisVersion: string
  /** The machine's one-minute load average as the rounds ended (other work shares it). */
  loadAverage: number
  versions: Record<string, string>
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function ours (store: 'memory' | 'tiered', port: number, closers: Array<() => Promise<unknown>>): Promise<FastifyInstance> {
  const app = Fastify()
  const redis = store === 'tiered' ? new Redis({ port }) : undefined
  // Its own namespace: nothing of another run or subject shares a key.
  await app.register(responseCache, { store, redis, namespace: `bench-values-${store}-${process.pid}`, ttl: TTL_SECONDS })
  await app.ready()
  closers.push(async () => { await app.close(); redis?.disconnect() })
  return app
}

async function subjects (port: number, closers: Array<() => Promise<unknown>>): Promise<Subject[]> {
  const list: Subject[] = []
  for (const store of ['memory', 'tiered'] as const) {
    const { cache } = await ours(store, port, closers)
    const load = (): typeof PRODUCT => PRODUCT
    const fill: Call = async (i) => await cache.set(KEY_NAMES[i], PRODUCT)
    list.push(
      { name: `ours ${store} get copy`, call: async (i) => await cache.get(KEY_NAMES[i]), fill },
      { name: `ours ${store} get shared`, call: async (i) => await cache.get(KEY_NAMES[i], { shared: true }), fill },
      { name: `ours ${store} wrap copy`, call: async (i) => await cache.wrap(KEY_NAMES[i], load) },
      { name: `ours ${store} wrap shared`, call: async (i) => await cache.wrap(KEY_NAMES[i], load, { shared: true }) }
    )
  }
  for (const l2 of [false, true]) {
    const store = bentostore().useL1Layer(memoryDriver({ maxSize: '64mb' }))
    if (l2) store.useL2Layer(redisDriver({ connection: { port } }))
    const bento = new BentoCache({ default: 'values', stores: { values: store }, prefix: `bench-values-bento-${l2 ? 'l2' : 'l1'}-${process.pid}` })
    closers.push(async () => { await bento.disconnectAll() })
    const name = l2 ? 'bentocache memory+redis' : 'bentocache memory'
    list.push(
      { name: `${name} get`, call: async (i) => await bento.get({ key: KEY_NAMES[i] }), fill: async (i) => await bento.set({ key: KEY_NAMES[i], value: PRODUCT, ttl: '1h' }) },
      { name: `${name} getOrSet`, call: async (i) => await bento.getOrSet({ key: KEY_NAMES[i], ttl: '1h', factory: () => PRODUCT }) }
    )
  }
  for (const l2 of [false, true]) {
    const stores = [new Keyv()]
    if (l2) stores.push(new Keyv({ store: new KeyvRedis(`redis://127.0.0.1:${port}`), namespace: `bench-values-cm-${process.pid}` }))
    const cm = cacheManager({ stores })
    closers.push(async () => { await cm.disconnect() })
    const name = l2 ? 'cache-manager memory+redis' : 'cache-manager memory'
    list.push(
      { name: `${name} get`, call: async (i) => await cm.get(KEY_NAMES[i]), fill: async (i) => await cm.set(KEY_NAMES[i], PRODUCT, TTL_SECONDS * 1000) },
      { name: `${name} wrap`, call: async (i) => await cm.wrap(KEY_NAMES[i], () => PRODUCT, TTL_SECONDS * 1000) }
    )
  }
  const dedupe = dedupeCache({ ttl: TTL_SECONDS, storage: { type: 'memory' } }).define('product', async (i: number) => ({ ...PRODUCT, id: i }))
  list.push({ name: 'async-cache-dedupe memory', call: async (i) => await dedupe.product(i) })
  return list
}

/** Fills every key through the subject (its first calls are misses or sets) and checks that calls hit. */
async function warm (subject: Subject): Promise<void> {
  for (let i = 0; i < KEYS; i++) await (subject.fill ?? subject.call)(i)
  for (let i = 0; i < KEYS; i++) {
    if (await subject.call(i) === undefined) throw new Error(`bench: ${subject.name} missed key ${i} after warming`)
  }
  for (let i = 0; i < HITS / 5; i++) await subject.call(i % KEYS)
}

/**
 * One round: every subject's HITS calls cut into SLICES, the subjects taking turns slice by slice (in
 * an order rotated each slice), so that a busy minute of the shared machine falls on all of them alike.
 * Answers each subject's hits per second over its slices.
 */
async function round (list: Subject[], offset: number): Promise<number[]> {
  const per = Math.ceil(HITS / SLICES)
  const ms = list.map(() => 0)
  for (let slice = 0; slice < SLICES; slice++) {
    for (let turn = 0; turn < list.length; turn++) {
      const index = (turn + slice + offset) % list.length
      const { call } = list[index]
      const started = performance.now()
      for (let i = 0; i < per; i++) await call(i % KEYS)
      ms[index] += performance.now() - started
    }
  }
  return ms.map((spent) => per * SLICES / (spent / 1000))
}

function versionOf (name: string): string {
  const file = new URL(`../node_modules/${name}/package.json`, import.meta.url)
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

export async function measureValues (port: number, redisVersion: string): Promise<ValueFigures> {
  const closers: Array<() => Promise<unknown>> = []
  try {
    const list = await subjects(port, closers)
    for (const subject of list) await warm(subject)
    const roundRates: Record<string, number[]> = Object.fromEntries(list.map((s) => [s.name, []]))
    for (let index = 0; index < ROUNDS; index++) {
      const rates = await round(list, index)
      list.forEach((subject, i) => roundRates[subject.name].push(rates[i]))
      console.log(`  values round ${index + 1} of ${ROUNDS}: ` + list.map((s) => `${s.name} ${k(roundRates[s.name][index])}`).join(', '))
    }
    return {
      rounds: ROUNDS,
      hits: HITS,
      rates: Object.fromEntries(list.map((s) => [s.name, median(roundRates[s.name])])),
      roundRates,
      redisVersion,
      loadAverage: os.loadavg()[0],
      versions: Object.fromEntries(['bentocache', 'cache-manager', 'keyv', '@keyv/redis', 'async-cache-dedupe', 'msgpackr', 'lru-cache'].map((name) => [name, versionOf(name)]))
    }
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {})
  }
}

/** Median over the rounds of ours / peer, each round's two figures measured in that round. */
function ratio (figures: ValueFigures, ours: string, peer: string): number {
  const a = figures.roundRates[ours]
  const b = figures.roundRates[peer]
  return median(a.map((rate, i) => rate / b[i]))
}

const k = (rate: number): string => `${Math.round(rate / 1000)}k`
const x = (value: number): string => `${value.toFixed(2)}x`

export function valuesSection (figures: ValueFigures): string {
  const r = (name: string): string => k(figures.rates[name])
  const rows: string[] = []
  for (const store of ['memory', 'tiered'] as const) {
    const peer = store === 'memory' ? 'memory' : 'memory+redis'
    for (const [call, bento, cm] of [['get', 'get', 'get'], ['wrap', 'getOrSet', 'wrap']] as const) {
      const copy = `ours ${store} ${call} copy`
      const shared = `ours ${store} ${call} shared`
      const bentoName = `bentocache ${peer} ${bento}`
      const cmName = `cache-manager ${peer} ${cm}`
      rows.push(`| ${store} \`${call}\` | ${r(copy)} | ${r(shared)} | ${r(bentoName)} (\`${bento}\`) | ${x(ratio(figures, copy, bentoName))} | ${x(ratio(figures, shared, bentoName))} | ${r(cmName)} | ${x(ratio(figures, copy, cmName))} | ${x(ratio(figures, shared, cmName))} |`)
    }
  }
  const dedupe = 'async-cache-dedupe memory'
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  return [
    '',
    '## Value cache: `app.cache.get` and `wrap` against peers',
    '',
    'Hits per second in one process, one run (`npx tsx bench/values.ts`, or `BENCH_ONLY=values npm run bench` to print them;',
    `\`BENCH_ROUNDS\` rounds, ${figures.rounds} here): ${figures.hits.toLocaleString('en')} sequential awaited calls per subject and round over ${KEYS} keys, in`,
    `${SLICES} slices that the subjects take turns at (so that the shared machine's busy moments fall on all of them), each`,
    'holding the same ~0.7 KB object (bench/servers/payload.ts), after a warm-up that checks every call hits. Figures are medians',
    'of the rounds; a ratio is the median of the rounds\' ratios (both sides measured in the same round). "copy": a fresh',
    'object per call (the default), cloned from the decoded value kept beside the entry (it is made of plain objects, arrays',
    'and primitives); "shared": `{ shared: true }` (or the plugin\'s `sharedValues`), one deep-frozen object per stored value.',
    'Tiered rows hit the memory tier of `store: \'tiered\'` (with its invalidation bus) and are set against the peers\' memory +',
    'Redis L2 (bentocache\'s redis driver without its bus, cache-manager with `@keyv/redis`), whose hits come from memory too.',
    `Load average over the last minute of the run: ${figures.loadAverage.toFixed(1)} on ${os.cpus().length} cores; on a busy machine absolute figures swing, ratios less.`,
    '',
    '| Store, call | ours copy | ours shared | bentocache | copy / bentocache | shared / bentocache | cache-manager | copy / cache-manager | shared / cache-manager |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    `async-cache-dedupe (memory, hands every caller the same object): ${r(dedupe)}; ours memory \`wrap\` shared is`,
    `**${x(ratio(figures, 'ours memory wrap shared', dedupe))}** of it, \`get\` shared **${x(ratio(figures, 'ours memory get shared', dedupe))}**`,
    `(copies: \`wrap\` ${x(ratio(figures, 'ours memory wrap copy', dedupe))}, \`get\` ${x(ratio(figures, 'ours memory get copy', dedupe))}).`,
    '',
    `Every round (hits/s): ${Object.entries(figures.roundRates).map(([name, rates]) => `${name} ${rates.map(k).join(' ')}`).join('; ')}.`,
    '',
    `Machine: ${os.cpus().length} × ${cpu}, Node ${process.version}, redis-server ${figures.redisVersion}; ` +
      Object.entries(figures.versions).map(([name, version]) => `${name} ${version}`).join(', ') + '.',
    ''
  ].join('\n')
}

const SECTION = /\n## Value cache: [^]*?(?=\n## |$)/

/** RESULTS.md with this section in place of the one it had (a full run renders the rest anew and keeps this one). */
export function withValuesSection (results: string, section: string): string {
  return SECTION.test(results) ? results.replace(SECTION, () => section.replace(/\n$/, '')) : results.replace(/\n*$/, '\n') + section
}

export async function runValueBench ({ write }: { write: boolean }): Promise<void> {
  const redis = await startRedis()
  let figures: ValueFigures
  try {
    console.log(`values: ${ROUNDS} rounds of ${HITS} hits per subject, redis-server ${redis.version} on port ${redis.port}`)
    figures = await measureValues(redis.port, redis.version)
  } finally {
    redis.stop()
  }
  const section = valuesSection(figures)
  console.log(section)
  if (!write) return
  const file = new URL('./RESULTS.md', import.meta.url)
  writeFileSync(file, withValuesSection(readFileSync(file, 'utf8'), section))
  console.log('written to bench/RESULTS.md')
}

if (import.meta.url === `file://${process.argv[1]}`) await runValueBench({ write: !process.argv.includes('--print') })

// The tiered store across instances. Propagation: three tiered-hit servers (bench/servers/), each a
// process of its own, on one redis-server; per sample an item is cached in all three memories, two of
// them watch for it to leave their memory, and the third invalidates it: the figure is the time from
// invalidate() resolving there to the entry being gone from a watcher's memory (wall clock, loopback).
// Outage: fetch loops on a tiered-hit and a redis-hit server whose entries are cached, while their
// redis-server is stopped: the share of answers that are still hits.
// `tsx bench/tiered.ts` prints the section alone.
import { fileURLToPath } from 'node:url'
import { fetchLoops, startRedis, startServer, type Server } from './harness.js'

const OUTAGE_WORKERS = 8
const OUTAGE_KEYS = 10
const BEFORE_MS = 1000

export interface TieredFigures {
  /** Milliseconds from invalidate() resolving on one instance to the entry gone from another's memory. */
  propagation: { samples: number, p50: number, p99: number, max: number, lost: number }
  outage: { downMs: number, tiered: { answers: number, hitShare: number, failed: number }, redis: { answers: number, hitShare: number, failed: number } }
}

async function call (server: Server, path: string, method = 'GET'): Promise<{ cache: string | null, json: { at?: number } }> {
  const response = await fetch(server.address + path, { method })
  const text = await response.text()
  return { cache: response.headers.get('x-cache'), json: method === 'HEAD' || text === '' ? {} : JSON.parse(text) as { at?: number } }
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

export async function measurePropagation (samples: number): Promise<TieredFigures['propagation']> {
  const redis = await startRedis()
  const env = { BENCH_REDIS_PORT: String(redis.port), BENCH_NAMESPACE: 'propagation' }
  const servers = await Promise.all([0, 1, 2].map(async () => await startServer('tiered-hit.ts', env)))
  const [sender, ...watchers] = servers
  const times: number[] = []
  let lost = 0
  try {
    for (let i = 0; i < samples; i++) {
      const path = `/item?id=${i}`
      await call(sender, path)
      // A watcher that asks before the sender's write has landed waits on its lock, then reads it.
      for (const server of watchers) await call(server, path)
      for (const server of servers) {
        if ((await call(server, path, 'HEAD')).cache !== 'HIT') throw new Error('bench: an item is not in every memory')
      }
      for (const server of watchers) await call(server, `/watch?id=${i}`)
      const { json: { at: invalidated } } = await call(sender, `/invalidate?id=${i}`)
      for (const server of watchers) {
        const { json: { at: gone } } = await call(server, `/watched?id=${i}`)
        if (typeof gone !== 'number' || typeof invalidated !== 'number' || Number.isNaN(gone)) lost++
        // A drop can land before the sender's invalidate() has resolved: that counts as 0 ms.
        else times.push(Math.max(0, gone - invalidated))
      }
    }
  } finally {
    await Promise.all(servers.map(async (server) => { await server.stop() }))
    redis.stop()
  }
  const sorted = [...times].sort((a, b) => a - b)
  return { samples: times.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1], lost }
}

export async function measureOutage (downMs: number): Promise<TieredFigures['outage']> {
  const redis = await startRedis()
  const env = { BENCH_REDIS_PORT: String(redis.port) }
  const figures: Partial<TieredFigures['outage']> = { downMs }
  const servers = { tiered: await startServer('tiered-hit.ts', env), redis: await startServer('redis-hit.ts', env) }
  const loops = Object.entries(servers).map(([name, server]) => {
    const urls = Array.from({ length: OUTAGE_KEYS }, (_, id) => `${server.address}/product?id=${id}`)
    return { name: name as 'tiered' | 'redis', urls, loop: undefined as ReturnType<typeof fetchLoops> | undefined }
  })
  try {
    for (const { urls } of loops) for (const url of urls) for (let n = 0; n < 2; n++) await (await fetch(url)).arrayBuffer()
    for (const entry of loops) entry.loop = fetchLoops(entry.urls, OUTAGE_WORKERS)
    await new Promise((resolve) => setTimeout(resolve, BEFORE_MS))
    redis.stop()
    const stoppedAt = performance.now()
    await new Promise((resolve) => setTimeout(resolve, downMs))
    for (const { name, loop } of loops) {
      if (loop === undefined) continue
      await loop.stop()
      const during = loop.answers.filter((a) => a.at >= stoppedAt)
      figures[name] = { answers: during.length, hitShare: during.filter((a) => a.hit).length / Math.max(1, during.length), failed: loop.failed() }
    }
  } finally {
    for (const { loop } of loops) await loop?.stop()
    await servers.tiered.stop()
    await servers.redis.stop()
    redis.stop()
  }
  return figures as TieredFigures['outage']
}

export async function measureTiered (quick: boolean): Promise<TieredFigures> {
  return { propagation: await measurePropagation(quick ? 50 : 500), outage: await measureOutage(quick ? 1000 : 3000) }
}

const ms = (value: number): string => value < 10 ? value.toFixed(2) : value.toFixed(0)
const pct = (share: number): string => (100 * share).toFixed(1) + '%'

/** Console lines, and the figures of the RESULTS.md section. */
export function tieredLines (figures: TieredFigures | undefined): string[] {
  if (figures === undefined) return ['Not measured in this run.']
  const { propagation: p, outage: o } = figures
  return [
    '- Invalidation across three instances (separate processes, one redis-server): from invalidate() resolving on one to the entry ' +
      `gone from another's memory, p50 **${ms(p.p50)} ms**, p99 **${ms(p.p99)} ms**, max ${ms(p.max)} ms over ${p.samples} drops ` +
      `(target p99 100 ms or less: ${p.p99 <= 100 && p.lost === 0 ? 'met' : 'missed'}${p.lost > 0 ? `; ${p.lost} drops not seen within 5 s` : ''}).`,
    `- Redis stopped for ${o.downMs / 1000} s under load (${OUTAGE_WORKERS} fetch loops on ${OUTAGE_KEYS} cached URLs): tiered **${pct(o.tiered.hitShare)}** ` +
      `of ${o.tiered.answers.toLocaleString('en')} answers were hits from memory, against ${pct(o.redis.hitShare)} of ${o.redis.answers.toLocaleString('en')} ` +
      `for the Redis store (target: what memory held keeps hitting: ${o.tiered.hitShare >= 0.99 ? 'met' : 'missed'}); ` +
      `${o.tiered.failed + o.redis.failed} failed or non-200.`
  ]
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(tieredLines(await measureTiered(process.argv.includes('--quick'))).join('\n'))

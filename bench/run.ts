// `npm run bench`: every scenario's server runs in its own process; autocannon drives it from here
// with fixed connections, warm-up and duration; results go to bench/RESULTS.md and bench/results.svg
// as ratios to the bare route measured in the same run. `npm run bench -- --quick` is the CI smoke
// run (the core scenarios, one short round, a short tiered measure; no peers, stampede, store figures, recovery, failover or profile): it and
// partial runs (BENCH_ONLY=a,b) print their figures and write nothing. `--profile` adds the CPU
// profile to a quick or partial run; a full run always takes it. The value cache against its peers
// (bench/values.ts) runs in a full run, and alone with BENCH_ONLY=values.
import { readFileSync, writeFileSync } from 'node:fs'
import { renderChart } from './chart.js'
import { measureCodecs } from './codecs.js'
import { measureEncryption } from './encryption.js'
import { measureFailover, type Failover } from './failover.js'
import { CONNECTIONS, load, probe, startRedis, startServer, which, type Server } from './harness.js'
import { profileMemoryHit, type ProfileSummary } from './profile.js'
import { measureRecovery, type Recovery } from './recovery.js'
import { measureTiered, tieredLines, type TieredFigures } from './tiered.js'
import { renderReport, summarise, type HitShare, type Measured, type Stampede } from './report.js'
import { SCENARIOS, type Scenario } from './scenarios.js'
import { measureValues, runValueBench, valuesSection, type ValueFigures } from './values.js'
import { measureMemoryBound, measureStores, type MemoryBound } from './store.js'

const quick = process.argv.includes('--quick')
const only = process.env.BENCH_ONLY?.split(',')
const full = !quick && only === undefined
const profile = full || process.argv.includes('--profile')
const WARMUP_SECONDS = quick ? 1 : 2
const DURATION_SECONDS = quick ? 2 : 4
// The VM this runs on swings between speeds from one minute to the next (the bare route alone has
// measured 27k and 50k req/s in one run): the bare route runs between every two scenarios, each
// scenario is taken as a ratio to the mean of the bare runs just before and just after it, and the
// round with the median ratio is reported (5 rounds: with 3, one slow minute could swap two close rows).
const ROUNDS = quick ? 1 : 5

const skipped: string[] = []
const scenarios = SCENARIOS.filter((s) => {
  if (only !== undefined) return s.name === 'bare' || only.includes(s.name)
  return !quick || s.quick === true
}).filter((s) => {
  if (s.needs === undefined || which(s.needs) !== undefined) return true
  console.log(`bench: ${s.needs} is not on PATH; skipping the ${s.name} scenario`)
  skipped.push(s.name)
  return false
})

if (only?.join(',') === 'values') {
  // No HTTP scenario: the value cache's figures only, printed.
  await runValueBench({ write: false })
  process.exit(0)
}

const redis = await startRedis()
const env = { BENCH_REDIS_PORT: String(redis.port) }

interface Counters { hits: number, misses: number, stale: number, bypasses: number }

async function counters (url: string): Promise<Counters> {
  return await (await fetch(url)).json() as Counters
}

async function measure (scenario: Scenario, running?: Server): Promise<Measured> {
  const server = running ?? await startServer(scenario.server, { ...env, ...scenario.env })
  try {
    const url = server.address + scenario.path
    const lookups = (c: Counters): number => c.hits + c.stale + c.misses + c.bypasses
    process.stdout.write(`  ${scenario.name.padEnd(18)} warm-up ${WARMUP_SECONDS}s, `)
    await load(url, { ...scenario.request, seconds: WARMUP_SECONDS })
    process.stdout.write(`measuring ${DURATION_SECONDS}s ... `)
    // The plugin's counters around the measured load: every variant has had its first request in the warm-up.
    const before = scenario.statsPath === undefined ? undefined : await counters(server.address + scenario.statsPath)
    const result = await load(url, { ...scenario.request, seconds: DURATION_SECONDS })
    let hitShare: HitShare | undefined
    if (before !== undefined && scenario.statsPath !== undefined) {
      const after = await counters(server.address + scenario.statsPath)
      const window = lookups(after) - lookups(before)
      hitShare = { share: (after.hits - before.hits) / window, hits: after.hits - before.hits, lookups: window, missesSinceStart: after.misses, lookupsSinceStart: lookups(after) }
    }
    const answer = scenario.probe === true
      ? await probe(url, { ...scenario.request?.headers, ...scenario.request?.headerSets?.[0] })
      : undefined
    const measured = {
      scenario,
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      errors: result.errors + result.timeouts,
      non2xx: result.non2xx,
      ratio: 1,
      bytes: result.throughput.total / Math.max(1, result.requests.total),
      answer,
      hitShare
    }
    console.log(`${Math.round(measured.rps)} req/s, p50 ${measured.p50} ms, p99 ${measured.p99} ms, ${Math.round(measured.bytes)} B/answer` +
      (answer === undefined ? '' : ` (${answer.encoding} ${answer.bodyBytes} B + ${answer.headerBytes} B of headers, ${answer.xCache ?? 'no x-cache'})`) +
      (hitShare === undefined ? '' : `, hits ${(100 * hitShare.share).toFixed(2)}% of ${hitShare.lookups} lookups (misses since start ${hitShare.missesSinceStart} of ${hitShare.lookupsSinceStart})`))
    return measured
  } finally {
    if (running === undefined) await server.stop()
  }
}

const STAMPEDE_REQUESTS = 1000

/** 1,000 concurrent requests on a cold key with a 50 ms handler: how often did the handler run? */
async function stampede (store: string): Promise<Stampede> {
  const server = await startServer('stampede.ts', { ...env, BENCH_STORE: store })
  try {
    const started = performance.now()
    const responses = await Promise.all(Array.from({ length: STAMPEDE_REQUESTS }, async () => {
      const response = await fetch(server.address + '/product')
      await response.arrayBuffer()
      return response.headers.get('x-cache') ?? 'none'
    }))
    const ms = performance.now() - started
    const statuses: Record<string, number> = {}
    for (const status of responses) statuses[status] = (statuses[status] ?? 0) + 1
    const { runs } = await (await fetch(server.address + '/runs')).json() as { runs: number }
    console.log(`  stampede ${store.padEnd(6)} ${STAMPEDE_REQUESTS} requests, handler ran ${runs}x, ${JSON.stringify(statuses)}, ${Math.round(ms)} ms`)
    return { store, requests: STAMPEDE_REQUESTS, runs, statuses, ms }
  } finally {
    await server.stop()
  }
}

const results: Measured[] = []
const stampedes: Stampede[] = []
let stores: string[] = []
let memoryBound: MemoryBound | undefined
let recovery: Recovery | undefined
let tiered: TieredFigures | undefined
let failover: Failover | undefined
let failoverFullCoverage: Failover | undefined
let profiled: ProfileSummary | undefined
let values: ValueFigures | undefined
const startedAt = performance.now()
console.log(`bench: ${scenarios.length} scenarios × ${ROUNDS} rounds, ${CONNECTIONS} connections, ${WARMUP_SECONDS}s warm-up + ${DURATION_SECONDS}s each${quick ? ' (quick)' : ''}`)
try {
  const rounds = new Map<Scenario, Measured[]>(scenarios.map((scenario) => [scenario, []]))
  // The bare server stays up (idle between its runs): half the runs, and half the process starts.
  const bare = await startServer(scenarios[0].server, env)
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`)
      // bare, s1, bare, s2, bare, ...: each scenario against the mean of the bare runs on either side.
      let before = await measure(scenarios[0], bare)
      rounds.get(scenarios[0])?.push(before)
      for (const scenario of scenarios.slice(1)) {
        const measured = await measure(scenario)
        const after = await measure(scenarios[0], bare)
        rounds.get(scenario)?.push({ ...measured, ratio: measured.rps / ((before.rps + after.rps) / 2) })
        before = after
      }
    }
  } finally {
    await bare.stop()
  }
  for (const [scenario, measured] of rounds) {
    const sorted = [...measured].sort((a, b) => a.ratio - b.ratio)
    const hitShares = measured.flatMap((m) => m.hitShare === undefined ? [] : [m.hitShare])
    results.push({
      ...sorted[Math.floor(sorted.length / 2)],
      rounds: measured.map((m) => m.ratio),
      roundRps: measured.map((m) => m.rps),
      roundBytes: measured.map((m) => m.bytes),
      roundHitShare: hitShares.length > 0 ? hitShares : undefined
    })
    if (ROUNDS > 1) {
      console.log(`  ${scenario.name.padEnd(18)} ratios ${sorted.map((m) => m.ratio.toFixed(2)).join(' ')}; B/answer ${measured.map((m) => Math.round(m.bytes)).join(' ')}` +
        (hitShares.length > 0 ? `; hit share ${hitShares.map((h) => (100 * h.share).toFixed(2) + '%').join(' ')}` : ''))
    }
  }
  // The tiered store across three instances: a short round in --quick, and alone with BENCH_ONLY=tiered.
  if (full || quick || only?.includes('tiered') === true) {
    console.log('tiered: invalidation propagation across three instances, hits while Redis is stopped')
    tiered = await measureTiered(quick)
    for (const line of tieredLines(tiered)) console.log(`  ${line}`)
  }
  if (full) {
    for (const store of ['none', 'memory', 'redis']) stampedes.push(await stampede(store))
    console.log('stores: get/set per second, entry encoding')
    stores = await measureStores(redis.port)
    console.log('memory bound: 1,000,000 keys into a 64 MiB memory store (child process)')
    memoryBound = measureMemoryBound()
    console.log(`  ${JSON.stringify(memoryBound)}`)
    console.log('recovery: Redis killed and restarted under load')
    recovery = await measureRecovery()
    console.log('failover: a Redis Cluster master killed under load, its replica taking over')
    failover = await measureFailover()
    failoverFullCoverage = await measureFailover(true)
  }
  if (full || only?.includes('values') === true) {
    console.log('values: app.cache.get and wrap against bentocache, cache-manager and async-cache-dedupe, in this process')
    values = await measureValues(redis.port, redis.version)
    if (!full) console.log(valuesSection(values))
  }
  if (profile) {
    console.log('profile: memory-hit server under load with --cpu-prof')
    profiled = await profileMemoryHit(env)
    console.log(`  plugin (dist/esm/) self ${profiled.pluginSelfShare.toFixed(1)}% of busy samples, inclusive ${profiled.pluginTotalShare.toFixed(1)}%`)
  }
} finally {
  redis.stop()
}

const summary = summarise(results)
for (const line of summary.targetLines) console.log(line)
const failures = results.reduce((n, m) => n + m.errors + m.non2xx, 0)
console.log(`bench: ${Math.round((performance.now() - startedAt) / 1000)} s; errors or non-2xx answers: ${failures}`)
if (failures > 0) process.exitCode = 1
if (full) {
  // Sections measured by other scripts (bench/versions.ts) are kept from the file as it was.
  const kept = /\n## Versioned tags[^]*?(?=\n## )/.exec(readFileSync(new URL('./RESULTS.md', import.meta.url), 'utf8'))?.[0] ?? ''
  writeFileSync(new URL('./RESULTS.md', import.meta.url), renderReport({
    quick,
    connections: CONNECTIONS,
    warmupSeconds: WARMUP_SECONDS,
    durationSeconds: DURATION_SECONDS,
    rounds: ROUNDS,
    redisVersion: redis.version,
    results,
    skipped,
    stampedes,
    codecs: measureCodecs(),
    encryption: measureEncryption(),
    recovery,
    tiered,
    failover,
    failoverFullCoverage,
    stores,
    memoryBound,
    profile: profiled
  }) + (values === undefined ? '' : valuesSection(values)) + kept)
  writeFileSync(new URL('./results.svg', import.meta.url), renderChart(results, summary))
  console.log('written to bench/RESULTS.md and bench/results.svg')
}

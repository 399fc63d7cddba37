// A Redis Cluster master dies under load and its replica takes over: what share of the answers for
// keys on the live masters are hits meanwhile, and how soon after the failover do the dead master's
// keys hit again? Six nodes (three masters, a replica each, cluster-node-timeout 2000,
// cluster-require-full-coverage no), the cluster-hit server, 16 fetch loops over 48 URLs; one master
// is SIGKILLed 2 s into the load. `tsx bench/failover.ts` prints the section alone.
import { Cluster, type Redis } from 'ioredis'
import { fileURLToPath } from 'node:url'
import { decodeEntry } from '../lib/entry.js'
import { SHARD_SLOTS } from '../lib/stores/redis.js'
import { entryBytes } from '../lib/stores/versions.js'
import { startClusterNodes } from '../test/helpers/cluster.js'
import { fetchLoops, startServer } from './harness.js'

const WORKERS = 16
const KEYS = 48
const BEFORE_MS = 2000
const AFTER_MS = 3000
const ROUNDS = 3

export interface Failover {
  /** Per round: hit share of answers for keys on the live masters, from the kill to the failover's end. */
  liveHitShare: number[]
  /** Per round: ms from the kill to the cluster naming a new master for the dead one's slots. */
  failoverMs: number[]
  /** Per round: ms from then to the first HIT on a key of the dead master. */
  firstHitMs: number[]
  answers: number
  failed: number
}

async function round (fullCoverage: boolean): Promise<{ liveHitShare: number, failoverMs: number, firstHitMs: number, answers: number, failed: number }> {
  const teardowns: Array<() => unknown> = []
  const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }
  try {
    const { ports, nodes } = await startClusterNodes(t, { replicas: 1, nodeTimeout: 2000, args: fullCoverage ? [] : ['--cluster-require-full-coverage', 'no'] })
    const masters = ports.slice(0, 3)
    const server = await startServer('cluster-hit.ts', { BENCH_CLUSTER_PORTS: masters.join(',') })
    t.teardown(async () => { await server.stop() })
    const watcher = new Cluster(masters.map((port) => ({ host: '127.0.0.1', port })))
    watcher.on('error', () => {})
    t.teardown(() => { watcher.disconnect() })
    await new Promise((resolve) => watcher.once('ready', resolve))
    const url = (id: number): string => `${server.address}/product?id=${id}`
    for (let id = 0; id < KEYS; id++) await (await fetch(url(id))).arrayBuffer()
    for (let id = 0; id < KEYS; id++) await (await fetch(url(id))).arrayBuffer()
    // Which URLs the master to kill holds, from the x-product-id header stored in each entry.
    const victim = watcher.nodes('master')[0].options.port as number
    const onVictim = new Set<number>()
    for (const node of watcher.nodes('master').filter((master) => master.options.port === victim)) {
      for (const key of await node.keys('failover:*')) {
        if (await node.type(key) !== 'string' || /:(lock|ver):|:gen$/.test(key)) continue
        const { headers } = decodeEntry(entryBytes(await node.getBuffer(key) as Buffer))
        const id = Number(headers['x-product-id'])
        if (!Number.isNaN(id)) onVictim.add(id)
      }
    }
    const load = fetchLoops(Array.from({ length: KEYS }, (_, id) => url(id)), WORKERS)
    await new Promise((resolve) => setTimeout(resolve, BEFORE_MS))
    const victimSlots = SHARD_SLOTS.filter((slot) => watcher.slots[slot]?.[0] === `127.0.0.1:${victim}`)
    const killedAt = performance.now()
    await nodes.get(victim)?.kill()
    // Over when a live master's CLUSTER SLOTS names another master for every slot the dead one held.
    const live = watcher.nodes('master').find((master) => master.options.port !== victim) as Redis
    for (;;) {
      const ranges = await live.cluster('SLOTS')
      const masterOf = (slot: number): number | undefined => ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1]
      if (victimSlots.every((slot) => masterOf(slot) !== undefined && masterOf(slot) !== victim)) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const failedOverAt = performance.now()
    await new Promise((resolve) => setTimeout(resolve, AFTER_MS))
    await load.stop()
    const during = load.answers.filter((a) => a.at >= killedAt && a.at < failedOverAt && !onVictim.has(a.url))
    const firstHit = load.answers.find((a) => a.at >= failedOverAt && a.hit && onVictim.has(a.url))
    return {
      liveHitShare: during.filter((a) => a.hit).length / Math.max(1, during.length),
      failoverMs: failedOverAt - killedAt,
      firstHitMs: firstHit === undefined ? Infinity : firstHit.at - failedOverAt,
      answers: load.answers.length,
      failed: load.failed()
    }
  } finally {
    for (const fn of teardowns.reverse()) await fn()
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** With `fullCoverage` (Redis's default), every node refuses every key while a slot has no master. */
export async function measureFailover (fullCoverage = false): Promise<Failover> {
  const rounds: Array<Awaited<ReturnType<typeof round>>> = []
  for (let i = 0; i < ROUNDS; i++) {
    rounds.push(await round(fullCoverage))
    const r = rounds[i]
    console.log(`  failover round ${i + 1}${fullCoverage ? ' (full coverage)' : ''}: live-master hits ${(100 * r.liveHitShare).toFixed(1)}%, failover ${Math.round(r.failoverMs)} ms, first hit ${Math.round(r.firstHitMs)} ms after it`)
  }
  return {
    liveHitShare: rounds.map((r) => r.liveHitShare),
    failoverMs: rounds.map((r) => r.failoverMs),
    firstHitMs: rounds.map((r) => r.firstHitMs),
    answers: rounds.reduce((n, r) => n + r.answers, 0),
    failed: rounds.reduce((n, r) => n + r.failed, 0)
  }
}

/** Markdown for bench/RESULTS.md: the run as the issue sets it, then with Redis's default full coverage. */
export function failoverSection (failover: Failover | undefined, fullCoverage?: Failover): string[] {
  if (failover === undefined) return ['Not measured in this run.']
  const share = median(failover.liveHitShare)
  const firstHit = median(failover.firstHitMs)
  const pct = (values: number[]): string => values.map((v) => (100 * v).toFixed(1) + '%').join(', ')
  return [
    'Six nodes (three masters with a replica each, `cluster-node-timeout 2000`, `cluster-require-full-coverage no`); the cluster-hit',
    `server (\`new Cluster(nodes)\`, no options); ${WORKERS} fetch loops over ${KEYS} URLs; one master SIGKILLed ${BEFORE_MS / 1000} s into the load;`,
    `${ROUNDS} rounds, medians. ${failover.answers.toLocaleString('en')} answers, ${failover.failed} failed or non-200.`,
    '',
    `- Hits among the answers for keys on the live masters, from the kill until the cluster names a new master for the dead one's slots: **${(100 * share).toFixed(1)}%** ` +
      `(target 90%: ${share >= 0.9 ? 'met' : 'missed'}; rounds ${failover.liveHitShare.map((s) => (100 * s).toFixed(1) + '%').join(', ')}; the failover took ${failover.failoverMs.map((ms) => Math.round(ms)).join(', ')} ms).`,
    `- First hit on a key of the dead master after that: **${Math.round(firstHit)} ms** (target 1,000 ms: ${firstHit <= 1000 ? 'met' : 'missed'}; rounds ${failover.firstHitMs.map((ms) => Math.round(ms)).join(', ')} ms).`,
    '',
    'Each shard of the namespace has a circuit breaker of its own, so the dead master pauses only its keys; the client\'s',
    'slot refresh that names a new master for them closes their breakers at once.',
    ...(fullCoverage === undefined
      ? []
      : ['', `With Redis's default \`cluster-require-full-coverage yes\` (same run otherwise): live-master hits **${(100 * median(fullCoverage.liveHitShare)).toFixed(1)}%** ` +
        `(rounds ${pct(fullCoverage.liveHitShare)}), first hit on the dead master's keys ${Math.round(median(fullCoverage.firstHitMs))} ms after the failover. ` +
        'Between the master being marked failed and its replica\'s promotion (about a second) every node answers CLUSTERDOWN for every key, and no client can read a live key either.'])
  ]
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(failoverSection(await measureFailover(), await measureFailover(true)).join('\n'))

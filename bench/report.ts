// bench/RESULTS.md from one run's figures: the table, the targets (met or missed, by how much), and
// the sections of the micro-benchmarks and the profile.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { ENTRY_OVERHEAD_BYTES } from '../lib/entry.js'
import type { Probe } from './harness.js'
import type { ProfileSummary } from './profile.js'
import { IN_PROCESS_PEERS, type Scenario } from './scenarios.js'
import { failoverSection, type Failover } from './failover.js'
import { recoverySection, type Recovery } from './recovery.js'
import { tieredLines, type TieredFigures } from './tiered.js'
import type { MemoryBound } from './store.js'

export interface Measured {
  scenario: Scenario
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx: number
  /** To the mean of the bare runs just before and after. */
  ratio: number
  /** Every round's ratio, in the order they ran. */
  rounds?: number[]
  /** Every round's requests per second, in the same order. */
  roundRps?: number[]
  /** Bytes read per answer (autocannon's total bytes over its requests: status line, headers and body). */
  bytes: number
  /** Every round's bytes per answer. */
  roundBytes?: number[]
  /** One answer read after the load (scenarios with `probe`). */
  answer?: Probe
  /** Share of the plugin's lookups during the measured load that were hits (scenarios with `statsPath`). */
  hitShare?: HitShare
  /** Every round's hit share. */
  roundHitShare?: HitShare[]
}

/** The plugin's counters (`app.cache.stats().total`) around the measured load, which comes after the warm-up. */
export interface HitShare {
  /** hits / (hits + stale + misses + bypasses) during the measured load. */
  share: number
  hits: number
  lookups: number
  /** Misses from the server's start (the warm-up's first request of each variant included). */
  missesSinceStart: number
  lookupsSinceStart: number
}

export interface Stampede { store: string, requests: number, runs: number, statuses: Record<string, number>, ms: number }

export interface Target {
  id: 'memory-hit' | 'redis-hit' | 'tiered-hit' | 'memory-miss' | 'redis-miss' | 'peers' | 'nginx' | 'sealed-hit' | 'post-hit' | 'post-bare' | 'reverse-proxy' |
  'compressed-identity' | 'compressed-alone' | 'compressed-bytes' | 'hit-share'
  text: string
  met: boolean | undefined
  /** Why it was missed, when it was. */
  missedBy?: string
}

export interface Summary {
  ratioOf: (name: string) => number | undefined
  /**
   * What a handler-bound scenario costs against its no-plugin baseline (no-cache-unique unless said),
   * req/s to req/s within each round: the median of the rounds, and each round's.
   */
  costOf: (name: string, baseline?: string) => { median: number, rounds: number[] } | undefined
  /** One scenario's req/s over another's, through the bare runs around each, within each round: the median and each round's. */
  relative: (name: string, baseline: string) => { median: number, rounds: number[] } | undefined
  /** Median of the rounds' bytes per answer. */
  bytesOf: (name: string) => number | undefined
  /** Median of the rounds' hit shares (scenarios with `statsPath`). */
  hitShareOf: (name: string) => HitShare | undefined
  targets: Target[]
  targetLines: string[]
  /** Ratio lines for the chart: where the hit scenarios have to be. */
  lines: Array<{ at: number, label: string }>
}

const x = (ratio: number): string => ratio.toFixed(2) + 'x'
const pct = (share: number): string => (100 * share).toFixed(1) + '%'
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const bytes = (n: number): string => Math.round(n).toLocaleString('en')
const verdict = (met: boolean | undefined): string => met === undefined ? 'not measured in this run' : met ? 'met' : 'missed'

/** The targets of issue #6, worked out from whichever scenarios ran. */
export function summarise (results: Measured[]): Summary {
  const ratioOf = (name: string): number | undefined => results.find((m) => m.scenario.name === name)?.ratio
  const targets: Target[] = []
  const hit = ratioOf('memory-hit')
  const redisHit = ratioOf('redis-hit')
  if (hit !== undefined) {
    targets.push({ id: 'memory-hit', text: `Memory hits at 0.9x or more of the bare route: **${x(hit)}**`, met: hit >= 0.9, missedBy: `${x(0.9 - hit)} short, ${pct(1 - hit / 0.9)} below the line` })
  }
  if (redisHit !== undefined) {
    targets.push({ id: 'redis-hit', text: `Redis hits at 0.6x or more of the bare route: **${x(redisHit)}**`, met: redisHit >= 0.6, missedBy: `${x(0.6 - redisHit)} short` })
  }
  // Tiered hits come from the instance's own memory (issue 12): against memory-store hits of the same run.
  const tieredHit = ratioOf('tiered-hit')
  if (tieredHit !== undefined && hit !== undefined) {
    targets.push({
      id: 'tiered-hit',
      text: `Tiered-store hits at 0.95x or more of memory-store hits: **${x(tieredHit / hit)}** (${x(tieredHit)} of bare; Redis hits ${redisHit === undefined ? 'not measured' : x(redisHit)})`,
      met: tieredHit / hit >= 0.95,
      missedBy: `${x(0.95 - tieredHit / hit)} short`
    })
  }
  // POST hits answered from their raw bytes (issue 14): against the bare route, and against a bare POST
  // route that only parses the same body, in the same run.
  const postHit = ratioOf('post-hit')
  const barePost = ratioOf('bare-post')
  if (postHit !== undefined) {
    targets.push({ id: 'post-hit', text: `POST hits keyed by a 2 KB body at 0.7x or more of the bare route: **${x(postHit)}**`, met: postHit >= 0.7, missedBy: `${x(0.7 - postHit)} short` })
  }
  if (postHit !== undefined && barePost !== undefined) {
    targets.push({
      id: 'post-bare',
      text: `POST hits faster than a bare POST route that parses the same 2 KB body: **${x(postHit)}** against **${x(barePost)}** of bare`,
      met: postHit > barePost,
      missedBy: `${x(barePost - postHit)} behind`
    })
  }
  // Miss runs are compared with the no-plugin run of their own round, not through the bare route: both
  // are bound by the 20 ms handler, while the bare runs between them swing with the machine's speed.
  const costOf = (name: string, baselineName = 'no-cache-unique'): { median: number, rounds: number[] } | undefined => {
    const measured = results.find((m) => m.scenario.name === name)?.roundRps
    const baseline = results.find((m) => m.scenario.name === baselineName)?.roundRps
    if (measured === undefined || baseline === undefined) return undefined
    const rounds = measured.map((rps, i) => 1 - rps / baseline[i])
    return { median: [...rounds].sort((a, b) => a - b)[Math.floor(rounds.length / 2)], rounds }
  }
  for (const [name, store, limit] of [['memory-miss', 'the memory store', 0.05], ['redis-miss', 'Redis', 0.1]] as const) {
    const cost = costOf(name)
    if (cost === undefined) continue
    targets.push({
      id: name,
      text: `Miss path on ${store} costs ${pct(limit)} or less against the same route without the plugin: **${pct(cost.median)}** ` +
        `(rounds ${cost.rounds.map(pct).join(', ')})`,
      met: cost.median <= limit,
      missedBy: `${pct(cost.median - limit)} over`
    })
  }
  // Encryption at rest against the same store without it, req/s to req/s within each round.
  const sealed = costOf('redis-hit-sealed', 'redis-hit')
  if (sealed !== undefined) {
    targets.push({
      id: 'sealed-hit',
      text: `Redis hits with encryption at rest cost 10% or less against Redis hits without it: **${pct(sealed.median)}** (rounds ${sealed.rounds.map(pct).join(', ')})`,
      met: sealed.median <= 0.1,
      missedBy: `${pct(sealed.median - 0.1)} over`
    })
  }
  const peers = IN_PROCESS_PEERS.flatMap((name) => {
    const ratio = ratioOf(name)
    return ratio === undefined ? [] : [{ name, ratio }]
  }).sort((a, b) => b.ratio - a.ratio)
  if (hit !== undefined && peers.length > 0) {
    const best = peers[0]
    targets.push({
      id: 'peers',
      text: `Hits ahead of every peer: memory hits **${x(hit)}** against the best in-process peer, ${best.name}, at **${x(best.ratio)}**` +
        (redisHit === undefined ? '' : ` (Redis hits ${x(redisHit)})`),
      met: hit > best.ratio,
      missedBy: `${x(best.ratio - hit)} behind ${best.name}`
    })
  }
  const nginx = ratioOf('nginx')
  if (hit !== undefined && nginx !== undefined) {
    const share = hit / nginx
    targets.push({
      id: 'nginx',
      text: `Memory hits at 0.8x or more of nginx proxy_cache: **${x(share)}** (${x(hit)} against nginx's ${x(nginx)} of bare)`,
      met: share >= 0.8,
      missedBy: `${x(0.8 - share)} short`
    })
  }
  // examples/reverse-proxy and nginx proxy_cache in front of the same origin (issue 15): the same line
  // as memory hits against nginx.
  const proxyHit = ratioOf('reverse-proxy-hit')
  const nginxOrigin = ratioOf('nginx-origin')
  if (proxyHit !== undefined && nginxOrigin !== undefined) {
    const share = proxyHit / nginxOrigin
    targets.push({
      id: 'reverse-proxy',
      text: `Reverse-proxy hits (examples/reverse-proxy) at 0.8x or more of nginx proxy_cache in front of the same origin: **${x(share)}** (${x(proxyHit)} against nginx's ${x(nginxOrigin)} of bare)`,
      met: share >= 0.8,
      missedBy: `${x(0.8 - share)} short`
    })
  }
  // Issue 26: compressed hits with a browser's headers, against identity hits of the same route and
  // against @fastify/compress with no cache, in the same run; bytes per answer; hit share with @fastify/cors.
  const relative = (name: string, baselineName: string): { median: number, rounds: number[] } | undefined => {
    const measured = results.find((m) => m.scenario.name === name)?.rounds
    const baseline = results.find((m) => m.scenario.name === baselineName)?.rounds
    if (measured === undefined || baseline === undefined) return undefined
    const rounds = measured.map((ratio, i) => ratio / baseline[i])
    return { median: median(rounds), rounds }
  }
  const bytesOf = (name: string): number | undefined => {
    const measured = results.find((m) => m.scenario.name === name)
    return measured === undefined ? undefined : median(measured.roundBytes ?? [measured.bytes])
  }
  const hitShareOf = (name: string): HitShare | undefined => {
    const shares = results.find((m) => m.scenario.name === name)?.roundHitShare
    return shares === undefined ? undefined : [...shares].sort((a, b) => a.share - b.share)[Math.floor(shares.length / 2)]
  }
  const roundsOf = (r: { rounds: number[] }): string => `rounds ${r.rounds.map((n) => n.toFixed(2)).join(', ')}`
  for (const coding of ['br', 'gzip']) {
    const name = `compressed-hit-${coding}`
    const toIdentity = relative(name, 'compressed-hit-identity')
    if (toIdentity !== undefined) {
      targets.push({
        id: 'compressed-identity',
        text: `${coding} hits (${name}) at 0.8x or more of identity hits of the same route: **${x(toIdentity.median)}** (${roundsOf(toIdentity)})`,
        met: toIdentity.median >= 0.8,
        missedBy: `${x(0.8 - toIdentity.median)} short`
      })
    }
    const toAlone = relative(name, 'compress-alone')
    if (toAlone !== undefined) {
      targets.push({
        id: 'compressed-alone',
        text: `${coding} hits at 5x or more of the same app with @fastify/compress and no cache: **${toAlone.median.toFixed(1)}x** (${roundsOf(toAlone)})`,
        met: toAlone.median >= 5,
        missedBy: `${(5 - toAlone.median).toFixed(1)}x short`
      })
    }
    const answer = results.find((m) => m.scenario.name === name)?.answer
    const perAnswer = bytesOf(name)
    if (answer !== undefined && perAnswer !== undefined) {
      const identity = results.find((m) => m.scenario.name === 'compressed-hit-identity')?.answer
      const one = answer.bodyBytes + answer.headerBytes
      targets.push({
        id: 'compressed-bytes',
        text: `Bytes on the wire per ${coding} hit the compressed size: **${bytes(perAnswer)} B** per answer (autocannon), one answer being ` +
          `${answer.encoding} ${bytes(answer.bodyBytes)} B + ${bytes(answer.headerBytes)} B of status line and headers` +
          (identity === undefined ? '' : `; identity ${bytes(identity.bodyBytes)} B`),
        met: answer.encoding === coding && perAnswer <= one * 1.01,
        missedBy: answer.encoding === coding ? `${bytes(perAnswer - one)} B over one answer` : `answered ${answer.encoding}`
      })
    }
  }
  const share = hitShareOf('compressed-hit-cors')
  if (share !== undefined) {
    const shares = results.find((m) => m.scenario.name === 'compressed-hit-cors')?.roundHitShare ?? []
    targets.push({
      id: 'hit-share',
      text: 'Hit share with @fastify/compress and @fastify/cors (origin: true), a browser\'s headers from two origins, after each variant\'s first request: ' +
        `**${(100 * share.share).toFixed(2)}%** of ${share.lookups.toLocaleString('en')} lookups in the measured load (rounds ${shares.map((h) => (100 * h.share).toFixed(2) + '%').join(', ')}; ` +
        `${share.missesSinceStart} misses since the server started, of ${share.lookupsSinceStart.toLocaleString('en')} lookups)`,
      met: share.share >= 0.99,
      missedBy: `${pct(0.99 - share.share)} short`
    })
  }
  const targetLines = targets.map((t) => `- ${t.text} (${verdict(t.met)}${t.met === false && t.missedBy !== undefined ? ', ' + t.missedBy : ''}).`)
  const lines = [{ at: 0.9, label: 'memory-hit target 0.9x' }, { at: 0.6, label: 'Redis-hit target 0.6x' }]
  if (nginx !== undefined) lines.push({ at: 0.8 * nginx, label: `0.8x of nginx (${x(0.8 * nginx)})` })
  if (postHit !== undefined) lines.push({ at: 0.7, label: 'POST-hit target 0.7x' })
  if (tieredHit !== undefined && hit !== undefined) lines.push({ at: 0.95 * hit, label: `tiered-hit target: 0.95x of memory hits (${x(0.95 * hit)})` })
  return { ratioOf, costOf, relative, bytesOf, hitShareOf, targets, targetLines, lines }
}

function versionOf (pkg: string): string {
  const json = JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }
  return json.version
}

function nginxVersion (): string | undefined {
  const answer = spawnSync('nginx', ['-v'], { encoding: 'utf8' })
  return /nginx\/(\S+)/.exec(answer.stderr ?? '')?.[1]
}

export interface ReportInput {
  quick: boolean
  connections: number
  warmupSeconds: number
  durationSeconds: number
  rounds: number
  redisVersion: string
  results: Measured[]
  skipped: string[]
  stampedes: Stampede[]
  codecs: string[]
  encryption: string[]
  recovery: Recovery | undefined
  tiered: TieredFigures | undefined
  failover: Failover | undefined
  failoverFullCoverage: Failover | undefined
  stores: string[]
  memoryBound: MemoryBound | undefined
  profile: ProfileSummary | undefined
}

function profileSection (profile: ProfileSummary | undefined): string[] {
  if (profile === undefined) return ['Not profiled in this run (`--profile`).']
  return [
    `\`node --cpu-prof\` on the memory-hit server while autocannon drove it (${profile.seconds} s, ${profile.connections} connections; ` +
      `${profile.samples} samples in the load window, ${profile.idleShare.toFixed(1)}% of them idle).`,
    `The plugin's own files (the built dist/esm/) hold **${profile.pluginSelfShare.toFixed(1)}%** of busy samples as self time, and`,
    `**${profile.pluginTotalShare.toFixed(1)}%** with what they call (key hashing, the LRU lookup, setting headers), not counting`,
    'reply.send, Fastify\'s hook runner and the socket writes below them, which every route pays.',
    '',
    'Top frames by self time (share of busy samples):',
    '',
    '| frame | where | self |',
    '| --- | --- | ---: |',
    ...profile.top.map((f) => `| ${f.name} | ${f.where} | ${f.share.toFixed(1)}% |`),
    '',
    'The plugin\'s own frames, by self time:',
    '',
    '| frame | where | self |',
    '| --- | --- | ---: |',
    ...profile.plugin.map((f) => `| ${f.name} | ${f.where} | ${f.share.toFixed(2)}% |`)
  ]
}

function memorySection (bound: MemoryBound | undefined): string[] {
  if (bound === undefined) return ['Not measured in this run.']
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1) + ' MiB'
  const perEntry = (bytes: number): string => Math.round(bytes / Math.max(1, bound.stats.entries)).toLocaleString('en')
  return [
    `${bound.keys.toLocaleString('en')} distinct keys, each a ${bound.bodyBytes}-byte body with its headers and etag (as the plugin stores a`,
    `response), set into a MemoryStore with maxBytes ${mib(bound.maxBytes)}, in a child process of its own (${bound.ms} ms,`,
    `${Math.round(bound.keys / bound.ms * 1000).toLocaleString('en')} sets per second):`,
    '',
    '| measure | value |',
    '| --- | ---: |',
    `| stats().entries | ${bound.stats.entries.toLocaleString('en')} |`,
    `| stats().bytes | ${bound.stats.bytes.toLocaleString('en')} (${mib(bound.stats.bytes)}) |`,
    `| stats().evictions | ${bound.stats.evictions.toLocaleString('en')} |`,
    `| RSS growth after GC | ${mib(bound.rssGrowth)} (${x(bound.rssGrowth / bound.maxBytes)} of maxBytes) |`,
    `| peak RSS growth | ${mib(bound.peakRssGrowth)} |`,
    `| heap + external growth after GC | ${mib(bound.heapGrowth)} |`,
    '',
    `stats().bytes is the store's own estimate (body, headers, key, etag and a fixed ${ENTRY_OVERHEAD_BYTES} bytes per entry);`,
    'the RSS line is what the process actually grew by with the store full, which is the figure to size',
    'maxBytes against. The peak is higher because evicted entries wait for the garbage collector.',
    `Per entry held: ${perEntry(bound.stats.bytes)} bytes counted, ${perEntry(bound.heapGrowth)} bytes of heap and external memory, ` +
      `${perEntry(bound.rssGrowth)} bytes of RSS.`
  ]
}

function nginxNote (summary: Summary): string {
  const bare = 1 / (summary.ratioOf('nginx') ?? NaN)
  return ' nginx (C, its own process) answers from the core Node does not use; the bare Fastify route, with no work at all, ' +
    `runs at ${x(bare)} of it in this run` + (bare < 0.8 ? ', so no Fastify route can reach 0.8x of nginx on this machine.' : '.')
}

/** What the run and the profile say about a missed target. */
function why (target: Target, summary: Summary, profile: ProfileSummary | undefined): string {
  const name = target.text.replace(/:.*$/, '')
  const seen = profile === undefined
    ? ''
    : ` The profile of memory hits (below) has the plugin's own frames at ${profile.pluginSelfShare.toFixed(1)}% of busy samples ` +
      `and ${profile.pluginTotalShare.toFixed(1)}% with what they call; the top frames are ${profile.top.slice(0, 3).map((f) => `${f.name} (${f.share.toFixed(1)}%)`).join(', ')}.`
  switch (target.id) {
    case 'memory-hit':
    case 'nginx':
      return `${name}: ${target.missedBy ?? ''}. A hit does the bare route's work plus a key (JSON of the request parts, SHA-256), ` +
        `an LRU lookup and four headers.${seen}` + (target.id === 'nginx' ? nginxNote(summary) : '')
    case 'redis-hit':
      return `${name}: ${target.missedBy ?? ''}. Each batch of concurrent hits waits for one GET, and redis-server takes CPU from the same two cores.`
    case 'memory-miss':
    case 'redis-miss': {
      const rounds = ' Both rows are bound by the 20 ms handler and swing by several percent from round to round (the table\'s rounds column).'
      const floor = summary.costOf('next-turn-miss')
      const floorCost = floor === undefined ? '' : ` (${pct(floor.median)} in this run)`
      const redis = target.id !== 'redis-miss'
        ? ''
        : ' A Redis miss cannot start its handler before Redis has answered, and with 100 connections and one 20 ms handler the ' +
          'requests arrive in bursts: the reply is read in a later turn of the event loop, after the requests that came with it, ' +
          'while without a store (or with the memory store) each handler starts as its request is parsed. The next-turn-miss row ' +
          `measures that alone, a store with no I/O that answers one turn later${floorCost}. Measured apart from this run on the same ` +
          'machine and harness (2026-11-22): a plain Redis GET before the handler, with no lock and no write, cost 15% to 20%, about ' +
          'what the whole miss path costs now that writes are batched; the server spent 130 to 160 µs of CPU per Redis miss against ' +
          '90 to 100 µs on memory and 65 to 75 µs without the plugin; at 30 connections the Redis miss path cost 10%. A Redis round ' +
          'trip from an idle process takes 0.45 ms on this VM against 0.09 ms back to back (the cost of waking a vCPU).'
      return `${name}: ${target.missedBy ?? ''}. A miss adds a key, a store lookup (for Redis one round trip that also takes ` +
        `the coalescing lock) before the handler, and a store write after it.${redis}${rounds}`
    }
    case 'tiered-hit':
      return `${name}: ${target.missedBy ?? ''}. A tiered hit takes the memory store's path; the two rows run as separate processes, minutes apart, and swing with the machine.`
    case 'sealed-hit':
      return `${name}: ${target.missedBy ?? ''}. A sealed hit opens the entry (AES-256-GCM) before decoding it; see "Encryption at rest".`
    case 'peers':
      return `${name}: ${target.missedBy ?? ''}.${seen}`
    case 'reverse-proxy': {
      const bare = 1 / (summary.ratioOf('nginx-origin') ?? NaN)
      return `${name}: ${target.missedBy ?? ''}. A proxy hit is a memory hit that also sends the origin's headers ` +
        `(memory hits of the plain route: ${x(summary.ratioOf('memory-hit') ?? NaN)} of bare in this run). nginx answers from the core ` +
        `Node does not use; the bare Fastify route, with no work at all, runs at ${x(bare)} of it in this run` +
        (bare < 0.8 ? ', so no Fastify route can reach 0.8x of nginx on this machine.' : '.')
    }
    case 'compressed-identity':
    case 'compressed-alone':
    case 'compressed-bytes':
    case 'hit-share':
      return `${name}: ${target.missedBy ?? ''}. See "Compression with a browser's headers".`
    case 'post-hit':
    case 'post-bare':
      return `${name}: ${target.missedBy ?? ''}. A POST hit reads the whole body and hashes it (SHA-256) with the other key parts ` +
        'before its lookup; a bare POST route reads it too, and parses it.'
  }
}

/** Issue 26: the compression rows, sent a browser's headers, side by side with their bytes. */
function compressionSection (results: Measured[], summary: Summary, skipped: string[]): string[] {
  const names = ['compressed-hit-br', 'compressed-hit-gzip', 'compressed-hit-identity', 'compressed-hit-cors', 'compressed-miss-before', 'compress-alone', 'nginx-gzip']
  const rows = names.flatMap((name) => {
    const m = results.find((r) => r.scenario.name === name)
    if (m === undefined) return skipped.includes(name) ? [`| ${name} | skipped: not installed on this machine | | | | | |`] : []
    const toIdentity = summary.relative(name, 'compressed-hit-identity')
    const toAlone = summary.relative(name, 'compress-alone')
    const answer = m.answer === undefined ? '' : `${m.answer.encoding}, ${bytes(m.answer.bodyBytes)} B + ${bytes(m.answer.headerBytes)} B`
    return [`| ${name} | ${Math.round(m.rps)} | ${x(m.ratio)} | ${toIdentity === undefined ? '' : x(toIdentity.median)} | ` +
      `${toAlone === undefined ? '' : toAlone.median.toFixed(1) + 'x'} | ${bytes(summary.bytesOf(name) ?? m.bytes)} | ${answer} |`]
  })
  const share = summary.hitShareOf('compressed-hit-cors')
  const nginxBr = summary.relative('compressed-hit-br', 'nginx-gzip')
  const nginxGzip = summary.relative('compressed-hit-gzip', 'nginx-gzip')
  return [
    '## Compression with a browser\'s headers',
    '',
    'bench/servers/compressed-hit.ts: 60 KB of JSON (61,169 bytes) from the 20 ms handler, @fastify/compress registered as its README',
    'shows, memory store; the requests carry what Chrome 131 sends with a fetch() (accept, accept-language, user-agent, sec-ch-ua,',
    'sec-fetch-*, referer; no cookies) with the Accept-Encoding of the client each row stands for: `gzip, deflate, br, zstd` (br on',
    'Node 20), `gzip, deflate` (gzip), none (identity). compressed-hit-cors adds @fastify/cors with `origin: true` and sends in turn',
    'a br and a gzip browser on https://app.example and a br browser on https://admin.example. nginx-gzip is nginx proxy_cache with',
    '`gzip on` in front of the same route with neither the plugin nor @fastify/compress. Ratios to identity hits and to',
    '@fastify/compress alone are taken within each round (through the bare runs around each row), the median of the rounds;',
    'bytes per answer are autocannon\'s bytes read over its answers (status line, headers and body), the median of the rounds,',
    'next to one answer read after the load.',
    '',
    '| scenario | req/s | vs bare | vs identity hits | vs @fastify/compress alone | bytes per answer | one answer: coding, body + headers |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows,
    ...(share === undefined
      ? []
      : ['', `Hit share with @fastify/cors: **${(100 * share.share).toFixed(2)}%** of the plugin's lookups during the measured load were hits ` +
        '(`app.cache.stats().total` read before and after it, the warm-up having made each variant\'s first request; ' +
        `${share.missesSinceStart} misses since the server started, of ${share.lookupsSinceStart.toLocaleString('en')} lookups, for two variants).`]),
    ...(nginxBr === undefined || nginxGzip === undefined
      ? []
      : ['', `Against nginx gzip (one worker, C, compressing every answer at its default level 1): br hits at **${x(nginxBr.median)}**, ` +
        `gzip hits at **${x(nginxGzip.median)}** of its req/s; nginx's answers are ${bytes(summary.bytesOf('nginx-gzip') ?? NaN)} B ` +
        `against ${bytes(summary.bytesOf('compressed-hit-br') ?? NaN)} B for br hits and ${bytes(summary.bytesOf('compressed-hit-gzip') ?? NaN)} B for gzip hits (level 6).`])
  ]
}

export function renderReport (input: ReportInput): string {
  const { results } = input
  const summary = summarise(results)
  const ratioOf = (name: string): number => summary.ratioOf(name) ?? NaN
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  const nginx = nginxVersion()
  const missed = summary.targets.filter((t) => t.met === false)
  const stoppedCost = summary.costOf('redis-stopped', 'no-cache')?.median ?? NaN
  const sealedMiss = summary.costOf('redis-miss-sealed', 'redis-miss')
  const profile = input.profile
  return [
    '# Benchmark results',
    '',
    `Command: \`npm run bench\` (autocannon, ${input.connections} connections, pipelining 1, ` +
      `${input.warmupSeconds} s warm-up then ${input.durationSeconds} s measured per scenario; each server in its own process; ` +
      `${input.rounds} interleaved rounds, the median round reported).`,
    '',
    `Machine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; ${os.type()} ${os.release()}.`,
    `Node ${process.version}, Fastify ${versionOf('fastify')}, ioredis ${versionOf('ioredis')}, Redis ${input.redisVersion}, ` +
      `autocannon ${versionOf('autocannon')}; peers async-cache-dedupe ${versionOf('async-cache-dedupe')}, bentocache ${versionOf('bentocache')}, ` +
      `@fastify/caching ${versionOf('@fastify/caching')}, nginx ${nginx ?? 'not installed'}; the reverse proxy on @fastify/reply-from ${versionOf('@fastify/reply-from')}; run ${new Date().toISOString()}.`,
    'The load generator shares the machine with the server, so absolute figures are low; the ratios are what to compare.',
    '',
    'The bare route runs between every two scenarios; each row is a scenario\'s round whose ratio to the bare',
    'runs just before and after it is the median of the rounds; the rounds column has every round\'s ratio.',
    '',
    '![Requests per second as a ratio to the bare route, per scenario, with the target lines](results.svg)',
    '',
    '| scenario | what | req/s | p50 ms | p99 ms | bytes per answer | vs bare | rounds |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...results.map((m) => `| ${m.scenario.name} | ${m.scenario.what} | ${Math.round(m.rps)} | ${m.p50} | ${m.p99} | ${bytes(summary.bytesOf(m.scenario.name) ?? m.bytes)} | ${x(m.ratio)} | ${(m.rounds ?? []).map((r) => r.toFixed(2)).join(' ')} |`),
    ...input.skipped.map((name) => `| ${name} | skipped: not installed on this machine | | | | | | |`),
    '',
    '## Targets',
    '',
    ...summary.targetLines,
    '',
    'The miss scenarios send a new query string with every request, so every request is looked up, handled',
    '(20 ms) and stored; the baseline is the same route with the same URLs and no plugin. A miss run is',
    'compared with the baseline run of its own round (req/s to req/s), not through the bare route: both are',
    'bound by the 20 ms handler, while the bare runs between them swing with the machine\'s speed.',
    ...(missed.length === 0 ? [] : ['', '### Where targets were missed', '', ...missed.map((t) => `- ${why(t, summary, profile)}`)]),
    '',
    '## Peers',
    '',
    'Same app, same 0.7 KB product, same 20 ms data call, same connections; each peer as its documentation sets',
    'it up. The in-process peers cache the handler\'s data, so Fastify still runs the handler and serialises',
    'the object on every hit; this plugin stores the final bytes and answers from an onRequest hook.',
    '',
    `- async-cache-dedupe: **${x(ratioOf('async-cache-dedupe'))}**; bentocache memory only: **${x(ratioOf('bentocache'))}**, ` +
      `with a Redis L2: **${x(ratioOf('bentocache-l2'))}** (its memory tier keeps values serialised: a JSON.parse per hit).`,
    `- @fastify/caching: **${x(ratioOf('fastify-caching'))}**, the same as no cache (${x(ratioOf('no-cache'))}): with its default store it only`,
    '  sets cache-control and remembers ETags to answer If-None-Match with 304; it never stores bodies, and',
    '  autocannon sends no validators, so every request runs the handler. Measured as is.',
    input.skipped.includes('nginx')
      ? '- nginx: not installed on this machine, skipped.'
      : `- nginx proxy_cache, one worker, in front of the no-plugin app: **${x(ratioOf('nginx'))}**; memory hits are ` +
        `**${x(ratioOf('memory-hit') / ratioOf('nginx'))}** of it.`,
    input.skipped.includes('nginx-origin')
      ? `- examples/reverse-proxy (Fastify, @fastify/reply-from, the plugin with \`ttl: 'origin'\`) in front of an origin that sends \`max-age\`: hits **${x(ratioOf('reverse-proxy-hit'))}** of bare; nginx not installed, so no comparison.`
      : '- examples/reverse-proxy (Fastify, @fastify/reply-from, the plugin with `ttl: \'origin\'`) and nginx proxy_cache, each in front of the same origin ' +
        `(a plain node:http server sending \`max-age\`, whose freshness both follow): proxy hits **${x(ratioOf('reverse-proxy-hit'))}** of bare, ` +
        `nginx **${x(ratioOf('nginx-origin'))}**: the proxy at **${x(ratioOf('reverse-proxy-hit') / ratioOf('nginx-origin'))}** of nginx.`,
    '',
    ...compressionSection(results, summary, input.skipped),
    '',
    '## Other paths',
    '',
    `- Where a route is looked up: memory hits of a route with an app-level guard hook, looked up after it, at **${x(ratioOf('memory-hit-prevalidation') / ratioOf('memory-hit'))}** ` +
      `(preValidation) and **${x(ratioOf('memory-hit-prehandler') / ratioOf('memory-hit'))}** (preHandler) of the plain route's onRequest hits; ` +
      'a guard that runs on every hit, as it must, and the stages before it are what the later lookup costs.',
    `- POST keyed by a 2 KB JSON body: **${x(ratioOf('post-hit'))}** of bare, ${x(ratioOf('post-hit') / ratioOf('memory-hit'))} of GET hits, ` +
      `against ${x(ratioOf('bare-post'))} for a bare POST route that parses the same body; in six key orders ${x(ratioOf('post-hit-shuffled'))}; ` +
      `64 KB bodies ${x(ratioOf('post-hit-64kb'))} (six key orders ${x(ratioOf('post-hit-64kb-shuffled'))}). A body seen before is answered ` +
      'from its raw bytes (read and hashed, never parsed); other bytes are parsed and keyed as before, then remembered.',
    `- 1 MB bodies: memory hits at **${x(ratioOf('memory-hit-1mb') / ratioOf('bare-1mb'))}** and Redis hits at ` +
      `**${x(ratioOf('redis-hit-1mb') / ratioOf('bare-1mb'))}** of a constant 1 MB Buffer route (bare-1mb, itself ${x(ratioOf('bare-1mb'))} of bare); ` +
      'at this size the socket copies dominate.',
    `- Redis stopped: **${x(ratioOf('redis-stopped'))}** of bare against ${x(ratioOf('no-cache'))} for the same route without the plugin ` +
      `(${pct(stoppedCost)} slower, req/s to req/s within each round, the median). Store calls fail at once (offline queue off), and after five failures`,
    '  the circuit breaker stops asking for a while, so a dead Redis costs a request next to nothing.',
    '',
    '## Tiered store: many instances, one cache',
    '',
    `- Hits from the instance's own memory (tiered-hit): **${x(ratioOf('tiered-hit'))}** of bare, ` +
      `**${x(ratioOf('tiered-hit') / ratioOf('memory-hit'))}** of memory-store hits (${x(ratioOf('memory-hit'))}) and ` +
      `${x(ratioOf('tiered-hit') / ratioOf('redis-hit'))} of Redis-store hits (${x(ratioOf('redis-hit'))}) in the same run.`,
    ...tieredLines(input.tiered),
    '- The propagation is timed with Date.now() in each process (1 ms resolution; performance.timeOrigin differs by',
    '  milliseconds between processes), each watcher probing its memory every millisecond with a HEAD request',
    '  (read, never stored); a drop that landed before the sender\'s invalidate() had resolved counts as 0 ms.',
    '',
    '## Recovery after a Redis restart',
    '',
    ...recoverySection(input.recovery),
    '',
    '## A Redis Cluster master failing over',
    '',
    ...failoverSection(input.failover, input.failoverFullCoverage),
    '',
    '## Encryption at rest',
    '',
    `Through HTTP, against the same Redis store without the option in the same round: hits ${x(ratioOf('redis-hit-sealed') / ratioOf('redis-hit'))} ` +
      `of plain Redis hits; misses cost ${sealedMiss === undefined ? 'not measured' : `**${pct(sealedMiss.median)}** more (rounds ${sealedMiss.rounds.map(pct).join(', ')})`}. ` +
      'The 0.7 KB product below 1 KiB is stored uncompressed, so its sealed bytes are the whole entry.',
    '',
    ...(input.encryption.length > 0 ? input.encryption : ['Sealing per call: not measured in this run.']),
    '',
    '## Reading these figures',
    '',
    '- On this 2-core VM the load generator, the server and (for the Redis scenarios) redis-server share two',
    '  cores, and the machine itself swings between speeds from minute to minute; hence ratios to the bare',
    '  runs on either side, and the median of rounds. A target close to its line (memory hits near 0.9x)',
    '  can land on either side of it from run to run.',
    '- Redis misses: a miss waits for one Redis round trip before the handler runs (a Lua call that reads',
    '  the entry or, on a miss, takes the cross-process lock); at 100 connections each reply waits its',
    '  turn in a busy event loop. The write after the handler is not waited for, and the writes of one',
    '  event-loop turn go to Redis as one script call. Concurrent reads of one hot key share a single',
    '  call, which is what keeps Redis hits close to memory hits. The client has ioredis auto-pipelining',
    '  off, as docs/API.md advises.',
    '- nginx runs in a process of its own on the second core, next to autocannon; the Node servers run on',
    '  one thread. Its ratio is a reference for what a dedicated proxy does on the same machine.',
    '',
    '## Profile of memory hits',
    '',
    ...profileSection(profile),
    '',
    '## Stores',
    '',
    ...(input.stores.length > 0 ? input.stores : ['Not measured in this run.']),
    '',
    '## Memory bound',
    '',
    ...memorySection(input.memoryBound),
    '',
    '## Stampede',
    '',
    `${input.stampedes[0]?.requests ?? 1000} concurrent requests (fetch, one connection each) on a cold key whose handler takes 50 ms:`,
    '',
    '| store | handler runs | x-cache | all answered in |',
    '| --- | ---: | --- | ---: |',
    ...input.stampedes.map((s) => `| ${s.store === 'none' ? 'no plugin' : s.store} | ${s.runs} | ${Object.entries(s.statuses).map(([k, v]) => `${k} ${v}`).join(', ')} | ${Math.round(s.ms)} ms |`),
    '',
    'Coalescing is per process: the first request runs the handler, the others wait for its entry.',
    '',
    '## Stale serving under load',
    '',
    `memory-stale runs at **${x(ratioOf('memory-stale') / ratioOf('memory-hit'))}** memory hits. Its upstream takes 1 s ` +
      'and its entry is stale 1 ms after each refresh, so one refresh',
    'is always running and every other answer is STALE, by the same path as a hit. Each refresh is an injected',
    'request; with a fast handler refreshing back to back (every 20 ms) stale serving measured 0.7x to 0.85x',
    'of hits, because injected request objects make Fastify\'s request path polymorphic while they run.',
    '',
    '## Compression of Redis entries',
    '',
    'Bodies of 1 KiB and more are stored lz4-compressed when that saves a tenth or more. Measured in this run',
    '(JSON records, one core, µs per call):',
    '',
    ...input.codecs,
    '',
    'lz4 decompresses an order of magnitude faster than gzip or brotli at every size, and decompression is on',
    'the hit path; it compresses less tightly, which costs Redis memory, not request time. Hence lz4-napi.',
    '',
    `Errors or non-2xx answers in any scenario: ${results.reduce((n, m) => n + m.errors + m.non2xx, 0)}.`,
    ''
  ].join('\n')
}

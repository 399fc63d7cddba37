// `npx tsx bench/trees.ts <base-commit> [scenario ...]`: the plugin of this tree against the one of
// `base-commit`, through HTTP, in one run: for a change that must leave hits (or misses) within noise
// of before. The base is checked out into bench/.tmp/ (a git worktree) and built there with its own
// dependencies; each scenario's server (bench/servers/, of each tree) runs once per tree, and autocannon
// drives them in turns, slice by slice, alternating which goes first each round. Each round's figure
// is this tree's req/s over the base's (the mean of its slices); the medians are printed as Markdown.
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { load, startRedis, type Load } from './harness.js'
import { SEARCH_BODY } from './servers/payload.js'

const [BASE, ...named] = process.argv.slice(2)
if (BASE === undefined) {
  console.error('usage: npx tsx bench/trees.ts <base-commit> [memory-hit|redis-hit|memory-miss|post-hit ...]')
  process.exit(2)
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SLICES = 3
const SLICE_SECONDS = 3

interface TreeScenario { server: string, path: string, request?: Omit<Load, 'seconds'>, env?: Record<string, string> }
const SCENARIOS: Record<string, TreeScenario> = {
  'memory-hit': { server: 'memory-hit.ts', path: '/product' },
  'redis-hit': { server: 'redis-hit.ts', path: '/product' },
  'memory-miss': { server: 'memory-hit.ts', path: '/product', request: { unique: true } },
  'post-hit': { server: 'post-hit.ts', path: '/search', request: { method: 'POST', body: SEARCH_BODY, headers: { 'content-type': 'application/json' } } }
}
const chosen = named.length === 0 ? ['memory-hit', 'redis-hit'] : named

const root = fileURLToPath(new URL('../', import.meta.url))
const baseRoot = fileURLToPath(new URL('./.tmp/base-tree/', import.meta.url))

function checkoutBase (): void {
  if (existsSync(baseRoot)) execFileSync('git', ['worktree', 'remove', '--force', baseRoot], { cwd: root })
  execFileSync('git', ['worktree', 'add', '--detach', baseRoot, BASE], { cwd: root, stdio: 'ignore' })
  // The base's own dependencies (its lock file may name others than this tree's), from npm's cache.
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: baseRoot, stdio: 'ignore' })
  execFileSync('npm', ['run', 'build'], { cwd: baseRoot, stdio: 'ignore' })
}

interface Running { child: ChildProcess, address: string }

async function start (tree: string, scenario: TreeScenario, env: Record<string, string>): Promise<Running> {
  const child = fork(tree + 'bench/servers/' + scenario.server, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env, ...scenario.env }
  })
  const [message] = await once(child, 'message') as [{ address: string }]
  return { child, address: message.address }
}

async function stop ({ child }: Running): Promise<void> {
  const exited = once(child, 'exit')
  child.disconnect()
  await exited
}

async function rps (server: Running, scenario: TreeScenario, seconds: number): Promise<number> {
  return (await load(server.address + scenario.path, { ...scenario.request, seconds })).requests.average
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

checkoutBase()
const redis = await startRedis()
const env = { BENCH_REDIS_PORT: String(redis.port) }
const rows: string[] = []
try {
  for (const name of chosen) {
    const scenario = SCENARIOS[name]
    if (scenario === undefined) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`)
    const ratios: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const here = await start(root, scenario, env)
      const base = await start(baseRoot, scenario, env)
      await rps(here, scenario, 2)
      await rps(base, scenario, 2)
      const totals = { here: 0, base: 0 }
      for (let slice = 0; slice < SLICES; slice++) {
        // Which tree goes first alternates by round and slice, so a machine that slows down over a
        // round weighs on both alike.
        const order: Array<'here' | 'base'> = (round + slice) % 2 === 0 ? ['here', 'base'] : ['base', 'here']
        for (const which of order) totals[which] += await rps(which === 'here' ? here : base, scenario, SLICE_SECONDS)
      }
      await Promise.all([stop(here), stop(base)])
      ratios.push(totals.here / totals.base)
      console.log(`  ${name} round ${round + 1}: ${(totals.here / SLICES).toFixed(0)} / ${(totals.base / SLICES).toFixed(0)} req/s = ${(totals.here / totals.base).toFixed(3)}`)
    }
    rows.push(`| ${name} | **${median(ratios).toFixed(3)}** | ${ratios.map((r) => r.toFixed(3)).join(' ')} |`)
  }
} finally {
  redis.stop()
  execFileSync('git', ['worktree', 'remove', '--force', baseRoot], { cwd: root })
  rmSync(baseRoot, { recursive: true, force: true })
}

const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
console.log(`\nThis tree (${head}, with uncommitted changes if any) against ${BASE}: req/s ratio, median of ${ROUNDS} rounds (${SLICES} x ${SLICE_SECONDS} s slices each, turns alternating)\n`)
console.log('| scenario | this / base | rounds |')
console.log('| --- | ---: | --- |')
for (const row of rows) console.log(row)

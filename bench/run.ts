// `npm run bench`: every scenario's server runs in its own process; autocannon drives it from here
// with fixed connections, warm-up and duration; results go to bench/RESULTS.md as ratios to the
// bare route measured in the same run. `npm run bench -- --quick` is a short smoke run.
import autocannon from 'autocannon'
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync, readFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

const quick = process.argv.includes('--quick')
const CONNECTIONS = 100
const WARMUP_SECONDS = quick ? 1 : 3
const DURATION_SECONDS = quick ? 3 : 10

interface Scenario {
  name: string
  server: string
  path: string
  what: string
}

const scenarios: Scenario[] = [
  { name: 'bare', server: 'bare.ts', path: '/product', what: 'constant Buffer, no handler work (the ceiling)' },
  { name: 'no-cache', server: 'no-cache.ts', path: '/product', what: 'same JSON through a 20 ms handler, no plugin' },
  { name: 'memory-hit', server: 'memory-hit.ts', path: '/product', what: 'the 20 ms handler behind the plugin, memory-store hits' }
]

interface Measured { scenario: Scenario, rps: number, p50: number, p99: number, errors: number, non2xx: number }

async function start (scenario: Scenario): Promise<{ child: ChildProcess, address: string }> {
  const child = fork(fileURLToPath(new URL(`./servers/${scenario.server}`, import.meta.url)), {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const [message] = await once(child, 'message') as [{ address: string }]
  return { child, address: message.address }
}

async function load (url: string, seconds: number): Promise<autocannon.Result> {
  return await autocannon({ url, connections: CONNECTIONS, duration: seconds, pipelining: 1 })
}

async function measure (scenario: Scenario): Promise<Measured> {
  const { child, address } = await start(scenario)
  try {
    process.stdout.write(`  ${scenario.name.padEnd(12)} warm-up ${WARMUP_SECONDS}s, `)
    await load(address + scenario.path, WARMUP_SECONDS)
    process.stdout.write(`measuring ${DURATION_SECONDS}s ... `)
    const result = await load(address + scenario.path, DURATION_SECONDS)
    const measured = {
      scenario,
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      errors: result.errors + result.timeouts,
      non2xx: result.non2xx
    }
    console.log(`${Math.round(measured.rps)} req/s, p50 ${measured.p50} ms, p99 ${measured.p99} ms`)
    return measured
  } finally {
    child.disconnect()
    await once(child, 'exit')
  }
}

function versionOf (pkg: string): string {
  const json = JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }
  return json.version
}

const results: Measured[] = []
console.log(`bench: ${scenarios.length} scenarios, ${CONNECTIONS} connections, ${WARMUP_SECONDS}s warm-up + ${DURATION_SECONDS}s each${quick ? ' (quick)' : ''}`)
for (const scenario of scenarios) results.push(await measure(scenario))

const bare = results[0].rps
const ratio = (m: Measured): string => (m.rps / bare).toFixed(2) + 'x'
const byName = (name: string): Measured => results.find((m) => m.scenario.name === name) as Measured
const hitRatio = byName('memory-hit').rps / bare

const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
const lines = [
  '# Benchmark results',
  '',
  `Command: \`npm run bench${quick ? ' -- --quick' : ''}\` (autocannon, ${CONNECTIONS} connections, pipelining 1, ` +
    `${WARMUP_SECONDS} s warm-up then ${DURATION_SECONDS} s measured per scenario; each server in its own process).`,
  '',
  `Machine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; ${os.type()} ${os.release()}.`,
  `Node ${process.version}, Fastify ${versionOf('fastify')}, autocannon ${versionOf('autocannon')}; run ${new Date().toISOString()}.`,
  'The load generator shares the machine with the server, so absolute figures are low; the ratios are what to compare.',
  '',
  '| scenario | what | req/s | p50 ms | p99 ms | vs bare |',
  '| --- | --- | ---: | ---: | ---: | ---: |',
  ...results.map((m) => `| ${m.scenario.name} | ${m.scenario.what} | ${Math.round(m.rps)} | ${m.p50} | ${m.p99} | ${ratio(m)} |`),
  '',
  '## Targets',
  '',
  `- Memory hits at 0.9x or more of the bare route: **${hitRatio.toFixed(2)}x** (${hitRatio >= 0.9 ? 'met' : 'missed'}).`,
  '',
  `Errors or non-2xx answers in any scenario: ${results.reduce((n, m) => n + m.errors + m.non2xx, 0)}.`,
  ''
]
writeFileSync(new URL('./RESULTS.md', import.meta.url), lines.join('\n'))
console.log(`\nmemory hits ${hitRatio.toFixed(2)}x of bare; written to bench/RESULTS.md`)

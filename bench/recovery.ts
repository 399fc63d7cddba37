// A Redis restart under load: how soon after redis-server is back does the plugin answer hits again,
// and what share of answers are hits in each second after? The redis-hit server runs on a
// redis-server of this measure's own, with its client made as the README advises; 16 concurrent
// fetch loops ask for 10 product URLs throughout; redis-server is killed (SIGKILL), left down for
// DOWN_MS, and started again on the same port, empty (no persistence, as a restarted cache often is).
// `tsx bench/recovery.ts` prints the section alone.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { fetchLoops, freePort, startServer, which } from './harness.js'

const WORKERS = 16
const KEYS = 10
const BEFORE_MS = 2000
const DOWN_MS = 3000
const AFTER_MS = 6000
const ROUNDS = 3

export interface Recovery {
  /** Per round: ms from redis-server ready to the first HIT answer. */
  firstHitMs: number[]
  /** Per second after the restart (0-1 s, 1-2 s, ...): the hit share of answers, median of rounds. */
  hitShare: number[]
  answers: number
  failed: number
}

async function redisServer (port: number): Promise<ChildProcess> {
  const child = spawn(which('redis-server') as string, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve) => {
    child.stdout?.on('data', (chunk: Buffer) => { if (chunk.toString().includes('Ready to accept connections')) resolve() })
  })
  return child
}

async function round (): Promise<{ firstHitMs: number, shares: number[], answers: number, failed: number }> {
  const port = await freePort()
  let redis = await redisServer(port)
  const server = await startServer('redis-hit.ts', { BENCH_REDIS_PORT: String(port) })
  const load = fetchLoops(Array.from({ length: KEYS }, (_, id) => `${server.address}/product?id=${id}`), WORKERS)
  try {
    await new Promise((resolve) => setTimeout(resolve, BEFORE_MS))
    const exited = once(redis, 'exit')
    redis.kill('SIGKILL')
    await exited
    await new Promise((resolve) => setTimeout(resolve, DOWN_MS))
    redis = await redisServer(port)
    const restartedAt = performance.now()
    await new Promise((resolve) => setTimeout(resolve, AFTER_MS))
    await load.stop()
    const after = load.answers.filter((a) => a.at >= restartedAt)
    const firstHit = after.find((a) => a.hit)
    const shares = Array.from({ length: AFTER_MS / 1000 }, (_, second) => {
      const inSecond = after.filter((a) => a.at - restartedAt >= second * 1000 && a.at - restartedAt < (second + 1) * 1000)
      return inSecond.length === 0 ? 0 : inSecond.filter((a) => a.hit).length / inSecond.length
    })
    return { firstHitMs: firstHit === undefined ? Infinity : firstHit.at - restartedAt, shares, answers: load.answers.length, failed: load.failed() }
  } finally {
    await load.stop()
    await server.stop()
    redis.kill('SIGKILL')
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

export async function measureRecovery (): Promise<Recovery> {
  const rounds: Array<Awaited<ReturnType<typeof round>>> = []
  for (let i = 0; i < ROUNDS; i++) {
    rounds.push(await round())
    console.log(`  recovery round ${i + 1}: first hit ${Math.round(rounds[i].firstHitMs)} ms after the restart, hit share per second ${rounds[i].shares.map((s) => (100 * s).toFixed(0) + '%').join(' ')}`)
  }
  return {
    firstHitMs: rounds.map((r) => r.firstHitMs),
    hitShare: rounds[0].shares.map((_, second) => median(rounds.map((r) => r.shares[second]))),
    answers: rounds.reduce((n, r) => n + r.answers, 0),
    failed: rounds.reduce((n, r) => n + r.failed, 0)
  }
}

/** Markdown for bench/RESULTS.md. */
export function recoverySection (recovery: Recovery | undefined): string[] {
  if (recovery === undefined) return ['Not measured in this run.']
  const firstHit = median(recovery.firstHitMs)
  const fromTwo = recovery.hitShare.slice(2)
  return [
    `${WORKERS} concurrent fetch loops on ${KEYS} URLs of the redis-hit server (client as the README advises: offline queue off,`,
    `no retries per request, ioredis's default reconnect strategy); redis-server SIGKILLed after ${BEFORE_MS / 1000} s, started again`,
    `empty ${DOWN_MS / 1000} s later; ${ROUNDS} rounds, medians. ${recovery.answers.toLocaleString('en')} answers, ${recovery.failed} failed or non-200.`,
    '',
    `- First hit **${Math.round(firstHit)} ms** after redis-server was ready again (target 1,000 ms; rounds ${recovery.firstHitMs.map((ms) => Math.round(ms)).join(', ')} ms): ` +
      'the client reconnects at its next retry, its \'ready\' closes the circuit breaker at once, the first request of each URL is a MISS that stores.',
    `- Hit share of answers per second after the restart: ${recovery.hitShare.map((share, second) => `${second}-${second + 1} s **${(100 * share).toFixed(1)}%**`).join(', ')} ` +
      `(target 90% or more from 2 s on: ${fromTwo.every((share) => share >= 0.9) ? 'met' : 'missed'}).`
  ]
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(recoverySection(await measureRecovery()).join('\n'))

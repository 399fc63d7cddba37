// What run.ts, profile.ts and store.ts share: a redis-server of the bench's own, forked scenario
// servers, and autocannon driven from code.
import autocannon from 'autocannon'
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Agent, request } from 'node:http'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

export const CONNECTIONS = 100

export async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const probe = createServer()
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => { resolve(port) })
    })
  })
}

/** Found on PATH, or undefined: the nginx peer is skipped where nginx is not installed. */
export function which (binary: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${binary}`]).toString().trim() || undefined
  } catch {
    return undefined
  }
}

export interface BenchRedis { port: number, version: string, stop: () => void }

/** A redis-server of the machine's own for the Redis scenarios (never a shared 6379), stopped at the end. */
export async function startRedis (): Promise<BenchRedis> {
  const binary = which('redis-server')
  if (binary === undefined) throw new Error('bench: redis-server is not on PATH')
  const port = await freePort()
  const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => { if (chunk.toString().includes('Ready to accept connections')) resolve() })
  })
  const version = /v=(\S+)/.exec(execFileSync(binary, ['--version']).toString())?.[1] ?? 'unknown'
  return { port, version, stop: () => { child.kill() } }
}

export interface Server { child: ChildProcess, address: string, stop: () => Promise<void> }

/** Forks bench/servers/<file> and waits for the address it listens on. */
export async function startServer (file: string, env: Record<string, string>, execArgv: string[] = []): Promise<Server> {
  const child = fork(fileURLToPath(new URL(`./servers/${file}`, import.meta.url)), {
    execArgv: [...execArgv, '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env }
  })
  const [message] = await once(child, 'message') as [{ address: string }]
  return {
    child,
    address: message.address,
    stop: async () => {
      const exited = once(child, 'exit')
      child.disconnect()
      await exited
    }
  }
}

export interface Load {
  seconds: number
  method?: 'GET' | 'POST'
  body?: string
  headers?: Record<string, string>
  /** Every request asks for a URL no earlier request asked for. */
  unique?: boolean
  /** Request bodies sent in turn (instead of `body`). */
  bodies?: string[]
  /** Header sets sent in turn, each laid over `headers` (one browser, then another). */
  headerSets?: Array<Record<string, string>>
}

let uniqueCounter = 0

export async function load (url: string, options: Load): Promise<autocannon.Result> {
  const path = new URL(url).pathname
  return await autocannon({
    url,
    connections: CONNECTIONS,
    duration: options.seconds,
    pipelining: 1,
    method: options.method ?? 'GET',
    body: options.body,
    headers: options.headers,
    requests: options.unique === true
      ? [{ setupRequest: (request) => ({ ...request, path: `${path}?u=${++uniqueCounter}` }) }]
      : options.bodies?.map((body) => ({ body })) ?? options.headerSets?.map((headers) => ({ headers }))
  })
}

/** One answer as it crossed the socket: its status line and headers, its body as sent (never decoded). */
export interface Probe {
  status: number
  /** The status line and header block, CRLFs included (as Node parsed them: exact for these servers). */
  headerBytes: number
  bodyBytes: number
  encoding: string
  xCache: string | undefined
}

/**
 * One GET with the given headers over a keep-alive connection of its own (as autocannon's, so the
 * answer carries the same connection headers), closed after; the body is counted, not decompressed.
 */
export async function probe (url: string, headers: Record<string, string> = {}): Promise<Probe> {
  const agent = new Agent({ keepAlive: true })
  return await new Promise<Probe>((resolve, reject) => {
    request(url, { headers, agent }, (response) => {
      let bodyBytes = 0
      response.on('data', (chunk: Buffer) => { bodyBytes += chunk.length })
      response.on('end', () => {
        const raw = response.rawHeaders
        let headerBytes = `HTTP/1.1 ${response.statusCode ?? 0} ${response.statusMessage ?? ''}\r\n`.length + 2
        for (let i = 0; i < raw.length; i += 2) headerBytes += raw[i].length + 2 + raw[i + 1].length + 2
        const xCache = response.headers['x-cache']
        resolve({
          status: response.statusCode ?? 0,
          headerBytes,
          bodyBytes,
          encoding: response.headers['content-encoding'] ?? 'identity',
          xCache: Array.isArray(xCache) ? xCache[0] : xCache
        })
      })
      response.on('error', reject)
    }).on('error', reject).end()
  }).finally(() => { agent.destroy() })
}

export interface Answer {
  /** performance.now() when the answer was read. */
  at: number
  /** Index of the URL asked for. */
  url: number
  hit: boolean
}

/**
 * `workers` fetch loops, each going round `urls` from its own place, recording every answer (and
 * counting failures and non-200s) until `stop()`; for the measures that watch hits over time.
 */
export function fetchLoops (urls: string[], workers: number): { answers: Answer[], failed: () => number, stop: () => Promise<void> } {
  const answers: Answer[] = []
  let failed = 0
  const state = { running: true }
  const loops = Array.from({ length: workers }, async (_, worker) => {
    for (let i = worker; state.running; i++) {
      const url = i % urls.length
      try {
        const response = await fetch(urls[url])
        await response.arrayBuffer()
        if (response.status !== 200) failed++
        answers.push({ at: performance.now(), url, hit: response.headers.get('x-cache') === 'HIT' })
      } catch {
        failed++
      }
    }
  })
  return {
    answers,
    failed: () => failed,
    stop: async () => {
      state.running = false
      await Promise.all(loops)
    }
  }
}

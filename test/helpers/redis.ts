import { execFileSync, type ChildProcess } from 'node:child_process'
import { Redis, type RedisOptions } from 'ioredis'
import { RedisMemoryServer } from 'redis-memory-server'

// redis-memory-server runs the machine's own redis-server (no download, which CI cannot do).
process.env.REDISMS_SYSTEM_BINARY ??= execFileSync('sh', ['-c', 'command -v redis-server']).toString().trim()

interface Teardown { teardown: (fn: () => unknown) => void }

/** Client options the plugin's docs recommend: fail fast instead of queueing while Redis is away. */
export const CLIENT_OPTIONS: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  retryStrategy: () => 50,
  lazyConnect: false
}

/** A real redis-server for one test file, stopped when the file's tests end. */
export async function startRedis (t: Teardown): Promise<RedisMemoryServer> {
  const server = await RedisMemoryServer.create()
  t.teardown(async () => { await server.stop() })
  return server
}

/** A connected client to `server`, closed at teardown. */
export async function connect (t: Teardown, server: RedisMemoryServer, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis({ host: await server.getHost(), port: await server.getPort(), ...CLIENT_OPTIONS, ...options })
  t.teardown(() => { client.disconnect() })
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
  return client
}

/** A free loopback port, for a redis-server the test starts and kills itself. */
export async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  return await new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => { resolve(port) })
    })
  })
}

/** A redis-server on `port` that the test can SIGKILL and start again on the same port. */
export async function spawnRedis (port: number, args: string[] = []): Promise<{ kill: () => Promise<void> }> {
  const child = await redisProcess(port, args)
  return { kill: async () => { await killProcess(child) } }
}

/**
 * A redis-server that the test can also pause with SIGSTOP (its connections stay open and it answers
 * nothing: a slow Redis, for real) and resume with SIGCONT, which answers everything sent meanwhile.
 */
export async function spawnPausableRedis (port: number, args: string[] = []): Promise<{ kill: () => Promise<void>, pause: () => void, resume: () => void }> {
  const child = await redisProcess(port, args)
  return {
    kill: async () => { await killProcess(child) },
    pause: () => { child.kill('SIGSTOP') },
    resume: () => { child.kill('SIGCONT') }
  }
}

async function redisProcess (port: number, args: string[]): Promise<ChildProcess> {
  const { spawn } = await import('node:child_process')
  const child = spawn(process.env.REDISMS_SYSTEM_BINARY as string, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args
  ], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`redis-server exited with ${String(code)}`)) })
    child.stdout?.on('data', (chunk: Buffer) => { if (chunk.toString().includes('Ready to accept connections')) resolve() })
  })
  child.removeAllListeners('exit')
  return child
}

async function killProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

/**
 * The Redis store sends the writes of one turn of the event loop together, from a setImmediate queued
 * when the response went out: after this, they are on the wire ahead of any later command on the
 * same client, so a test that reads Redis next sees them.
 */
export async function writesSent (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

/** The server's own count of keys it evicted under maxmemory. */
export async function evictedKeys (redis: Redis): Promise<number> {
  return Number(/evicted_keys:(\d+)/.exec(await redis.info('stats'))?.[1])
}

/** Lets `redis` evict (allkeys-lru) once it holds `headroom` bytes more than it does now. */
export async function limitMemory (redis: Redis, headroom: number): Promise<void> {
  await redis.config('SET', 'maxmemory-policy', 'allkeys-lru')
  await redis.config('SET', 'maxmemory', String(Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]) + headroom))
}

/**
 * What allkeys-lru does to a namespace whose entries are read and whose index is not: every tag set
 * of the namespace goes, and the versions of the tags matching `versions` too (see
 * lib/stores/versions.ts). `nodes`: the one server, or every master of a Cluster.
 */
export async function evictIndexRecords (nodes: Redis[], namespace: string, versions: RegExp): Promise<void> {
  for (const node of nodes) {
    for (const key of await node.keys(`${namespace}:*`)) {
      if (key.includes(':tag:') || (key.includes(':ver:') && versions.test(key))) await node.del(key)
    }
  }
}

/**
 * A redis-server of the test's own, not started yet, on a port that stays its own: `start()` it,
 * `stop()` it (SIGKILL) and start it again (empty). Stopped at teardown. `url` is for `new Redis(url)`.
 */
export async function restartableRedis (t: Teardown): Promise<{ url: string, start: () => Promise<void>, stop: () => Promise<void> }> {
  const port = await freePort()
  let server: { kill: () => Promise<void> } | undefined
  const stop = async (): Promise<void> => {
    await server?.kill()
    server = undefined
  }
  t.teardown(stop)
  return { url: `redis://127.0.0.1:${port}`, start: async () => { server = await spawnRedis(port) }, stop }
}

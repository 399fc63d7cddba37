import { spawn } from 'node:child_process'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { freePort, spawnRedis } from './redis.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** A redis-server of the test's own, which it may kill. */
export async function redisServer (t: Teardown): Promise<{ url: string, kill: () => Promise<void> }> {
  const port = await freePort()
  const server = await spawnRedis(port)
  t.teardown(server.kill)
  return { url: `redis://127.0.0.1:${port}`, kill: server.kill }
}

/**
 * An example's app as its server.ts starts it: with `url`, a client straight from `new Redis(url)`,
 * as the README tells users. Ready, with the cache emptied (a file's tests share one redis-server),
 * and closed with its client when the test ends.
 */
export async function exampleApp (t: Teardown, url: string | undefined, build: (redis: Redis | undefined) => Promise<FastifyInstance>): Promise<FastifyInstance> {
  const redis = url === undefined ? undefined : new Redis(url)
  redis?.on('error', () => {})
  t.teardown(() => redis?.disconnect())
  const app = await build(redis)
  t.teardown(async () => { await app.close() })
  await app.ready()
  await app.cache.clear()
  return app
}

/** The status and parsed JSON body of one request to an example app. */
export async function call (app: FastifyInstance, url: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE' = 'GET', payload?: object): Promise<{ status: number, body: any }> {
  const response = await app.inject({ method, url, payload })
  return { status: response.statusCode, body: response.body === '' ? undefined : response.json() }
}

/**
 * Runs an example's server.ts as a user would (`tsx examples/x/server.ts`) on a free port, until the
 * test ends; answers the address it printed and what it printed up to there.
 */
export async function startServer (t: Teardown, file: string, env: Record<string, string> = {}): Promise<{ address: string, output: string }> {
  // A test file that calls this has no coverage (test/coverage-map.mjs): tap follows the child,
  // whose lib/ is transformed by tsx, and its figures would blur those of the in-process tests.
  const environment = { ...process.env, ...env, PORT: '0' }
  const child = spawn(process.execPath, ['--import', 'tsx', file], { env: environment, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  let output = ''
  const address = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`${file} exited with ${String(code)}: ${output}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const found = / on (http:\/\/[^\s]+)/.exec(output)
      if (found !== null) resolve(found[1])
    })
  })
  return { address, output }
}

import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Writable } from 'node:stream'
import responseCache, { type ResponseCacheOptions } from '../../lib/index.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** A Fastify app with the plugin registered and closed when the test ends. */
export async function cachedApp (t: Teardown, options: ResponseCacheOptions = {}, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(server)
  t.teardown(async () => { await app.close() })
  await app.register(responseCache, options)
  return app
}

/** Log lines as objects, for asserting what the plugin logs (and what it must never log). */
export function logCapture (level = 'debug'): { lines: Array<Record<string, unknown>>, logger: FastifyServerOptions['logger'] } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      callback()
    }
  })
  return { lines, logger: { level, stream } }
}

/** Counts handler runs, so tests can tell a hit (no run) from a miss. */
export function counter (): { runs: number, next: () => number } {
  const c = { runs: 0, next: () => ++c.runs }
  return c
}

import zlib from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { ENCODED_FORMAT_VERSION } from '../lib/entry.js'
import { counter } from './helpers/app.js'
import { CLIENT_OPTIONS, startRedis } from './helpers/redis.js'

// Encodings made on one instance's miss are stored in Redis with the entry (its version 3 form) and
// served by another instance as they are, through the Redis and tiered stores.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
const body = Buffer.from(JSON.stringify(Array.from({ length: 1200 }, (_, id) => ({ id, name: `item number ${id} of the list` }))))

async function instance (t: Tap.Test, options: ResponseCacheOptions, runs: ReturnType<typeof counter>): Promise<(headers: Record<string, string>) => Promise<{ headers: Record<string, string | string[] | undefined>, body: Buffer }>> {
  const redis = new Redis(url, CLIENT_OPTIONS)
  const app: FastifyInstance = Fastify()
  t.teardown(async () => { await app.close(); redis.disconnect() })
  await app.register(responseCache, { redis, ...options })
  app.get('/data', { config: { cache: true } }, async (_request, reply) => { runs.next(); return reply.type('application/json').send(body) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return async (headers) => {
    // One host for both instances: the key holds it, and each listens on a port of its own.
    const answer = await request(`http://127.0.0.1:${port}/data`, { headers: { host: 'cache.test', ...headers } })
    return { headers: answer.headers, body: Buffer.from(await answer.body.arrayBuffer()) }
  }
}
declare namespace Tap { type Test = import('tap').Test }

for (const store of ['redis', 'tiered'] as const) {
  t.test(`${store}: another instance serves the encodings the first one made, from Redis`, async (t) => {
    const runs = counter()
    const namespace = `compress-${store}`
    const first = await instance(t, { store, namespace }, runs)
    const miss = await first({ 'accept-encoding': 'br' })
    t.equal(miss.headers['x-cache'], 'MISS')
    t.equal(miss.headers['content-encoding'], 'br')
    // A plain client (its offline queue on) to look at what was written.
    const redis = new Redis(url)
    t.teardown(() => { redis.disconnect() })
    // Written after the answer has gone out.
    let keys: string[] = []
    for (let i = 0; i < 100 && keys.length === 0; i++) {
      keys = (await redis.keys(`${namespace}:*:-:GET:*`))
      if (keys.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    t.equal(keys.length, 1)
    // After the versions header the store puts first, the entry in its version 3 form, the miss's br bytes in it.
    const value = await redis.getBuffer(keys[0]) as Buffer
    const at = value.indexOf(miss.body)
    t.ok(at > 0, 'the br encoding is stored with the entry')
    t.ok(value.includes(Buffer.from([ENCODED_FORMAT_VERSION, 1, 0, 200])), 'as version 3, its identity body lz4-packed as before')
    const second = await instance(t, { store, namespace }, runs)
    for (const [accept, coding] of [['gzip, deflate, br, zstd', 'br'], ['gzip', 'gzip'], ['identity', undefined]] as const) {
      const hit = await second({ 'accept-encoding': accept })
      t.equal(hit.headers['x-cache'], 'HIT', accept)
      t.equal(hit.headers['content-encoding'], coding, accept)
      t.equal(hit.headers.vary, 'accept-encoding')
      const bytes = coding === 'br' ? zlib.brotliDecompressSync(hit.body) : coding === 'gzip' ? zlib.gunzipSync(hit.body) : hit.body
      t.ok(bytes.equals(body), accept)
    }
    t.equal(runs.runs, 1)
  })
}

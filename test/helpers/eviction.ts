import Fastify, { type FastifyInstance } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import responseCache from '../../lib/index.js'

interface Teardown { teardown: (fn: () => unknown) => void }

export const ITEMS = 150
const TENANT = { 'x-tenant': 'acme' }
const FILLER = 'f'.repeat(2048)

export type Invalidation = 'tag' | 'route' | 'tenant' | 'put'

/**
 * An app as users write one: items whose bodies change only in the app's own "database" (`versions`);
 * GETs are cached by tag and tenant, and a PUT changes an item (its 2xx answer drops the GET entries
 * of its path).
 */
export async function itemsApp (t: Teardown, redis: Redis | Cluster, namespace: string): Promise<{ app: FastifyInstance, versions: number[] }> {
  const versions = Array.from({ length: ITEMS + 10 }, () => 0)
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache, {
    store: 'redis',
    redis,
    namespace,
    timeout: 2000,
    tenant: (request) => request.headers['x-tenant'] as string | undefined
  })
  const idOf = (request: { params: unknown }): number => Number((request.params as { id: string }).id)
  app.get('/items/:id', { config: { cache: { ttl: 300, tags: (request) => [`item:${idOf(request)}`] } } }, async (request) => {
    const id = idOf(request)
    return { id, version: versions[id], text: 'x'.repeat(1000) }
  })
  app.put('/items/:id', async (request) => {
    versions[idOf(request)]++
    return { ok: true }
  })
  await app.ready()
  return { app, versions }
}

/**
 * Under LFU, sets written to on every write of a route count far more accesses in a test than after a
 * day in which that route's writes stopped and its reads went on: RESTORE ... FREQ 0 gives the tag
 * sets the count such a day leaves them (entries and versions keep theirs: hits keep reading them).
 */
export async function ageTagSets (nodes: Redis[], namespace: string): Promise<void> {
  for (const node of nodes) {
    for (const key of await node.keys(`${namespace}:*:tag:*`)) {
      const [value, ttl] = await Promise.all([node.dumpBuffer(key), node.pttl(key)])
      await node.restore(key, ttl, value, 'REPLACE', 'FREQ', 0)
    }
  }
}

/** Every item cached and read a few times. */
export async function populate (app: FastifyInstance): Promise<void> {
  for (let id = 0; id < ITEMS; id++) for (let n = 0; n < 3; n++) await read(app, id)
}

async function read (app: FastifyInstance, id: number): Promise<{ cache: string, version: number }> {
  const response = await app.inject({ url: `/items/${id}`, headers: TENANT })
  return { cache: String(response.headers['x-cache']), version: (response.json() as { version: number }).version }
}

/**
 * What the issue measured: once the items are cached (populate), other keys written (by another
 * client, as another app would) until `enough()` says so, or until Redis refuses a write
 * (noeviction), the items being read all the while, as hits would. Answers the hits among those reads
 * and why it stopped.
 */
export async function cacheUnderPressure (app: FastifyInstance, other: Redis | Cluster, enough: () => Promise<boolean>): Promise<{ hits: number, stopped: 'enough' | 'full' | 'limit' }> {
  let hits = 0
  for (let i = 0; i < 30_000; i++) {
    // The other app reads its keys too: under LFU a key read once is worth keeping over one never read.
    const key = `other-app:${i}`
    const [[error]] = await other.pipeline().set(key, FILLER, 'EX', 3600).get(key).get(key).get(key).get(key).exec() as Array<[Error | null, unknown]>
    if (error !== null) {
      if (/OOM/.test(String(error))) return { hits, stopped: 'full' }
      throw error
    }
    if (i % 10 === 0) {
      const { cache } = await read(app, i % ITEMS)
      if (cache === 'HIT') hits++
      if (await enough()) return { hits, stopped: 'enough' }
    }
  }
  return { hits, stopped: 'limit' }
}

/**
 * Changes every item behind the cache's back and invalidates the way `kind` says (a PUT changes the
 * item itself), then reads every item: answers how many were still the old version.
 */
export async function staleAfter (app: FastifyInstance, versions: number[], kind: Invalidation): Promise<number> {
  if (kind !== 'put') for (let id = 0; id < ITEMS; id++) versions[id]++
  if (kind === 'tag') for (let id = 0; id < ITEMS; id++) await app.cache.invalidate({ tags: [`item:${id}`] })
  if (kind === 'route') await app.cache.invalidate({ route: 'GET /items/:id' })
  if (kind === 'tenant') await app.cache.invalidate({ tenant: 'acme' })
  if (kind === 'put') {
    for (let id = 0; id < ITEMS; id++) {
      const response = await app.inject({ method: 'PUT', url: `/items/${id}`, headers: TENANT })
      if (response.statusCode !== 200) throw new Error(`PUT answered ${response.statusCode}`)
    }
  }
  let stale = 0
  for (let id = 0; id < ITEMS; id++) if ((await read(app, id)).version !== versions[id]) stale++
  return stale
}

/** The tag sets (lib/tags.ts) that invalidation by `kind` reads: `g:` and `s:<tenant>:` alike. */
const SETS_OF: Record<Invalidation, string> = { tag: '*t%3Aitem%3A*', route: '*r%3AGET*', tenant: '*%3Aall', put: '*p%3A*' }

/** How many of the tag sets that invalidation by `kind` reads are in Redis, on every node. */
export async function setsOf (nodes: Redis[], namespace: string, kind: Invalidation): Promise<number> {
  const pattern = `${namespace}:*:tag:${SETS_OF[kind]}`
  return (await Promise.all(nodes.map(async (node) => (await node.keys(pattern)).length))).reduce((sum, n) => sum + n, 0)
}

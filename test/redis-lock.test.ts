import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { RedisStore } from '../lib/stores/redis.js'
import { counter } from './helpers/app.js'
import { deferred, eventually } from './helpers/events.js'
import { connect, startRedis, writesSent } from './helpers/redis.js'

const server = await startRedis(t)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function instance (t: Tap, options: ResponseCacheOptions, handler: () => Promise<unknown>): Promise<{ app: FastifyInstance, client: Redis }> {
  // Each instance has its own client, as separate processes would.
  const client = await connect(t, server)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis: client, ...options })
  app.get('/cold', { config: { cache: true } }, handler)
  await app.ready()
  return { app, client }
}
type Tap = import('tap').Test

t.test('two instances on one Redis compute a cold key once between them', async (t) => {
  const runs = counter()
  const handler = async (): Promise<unknown> => {
    const run = runs.next()
    await sleep(100)
    return { run }
  }
  const { app: a } = await instance(t, { namespace: 'lock1' }, handler)
  const { app: b } = await instance(t, { namespace: 'lock1' }, handler)
  const responses = await Promise.all([
    ...Array.from({ length: 20 }, async () => await a.inject('/cold')),
    ...Array.from({ length: 20 }, async () => await b.inject('/cold'))
  ])
  t.equal(runs.runs, 1, 'the handler ran once across both instances')
  for (const r of responses) t.same(JSON.parse(r.body), { run: 1 })
  t.equal(responses.filter((r) => r.headers['x-cache'] === 'MISS').length, 1)
})

t.test('the lock expires by itself, is released once the entry is written, and only by its owner', async (t) => {
  const client = await connect(t, server)
  const store = new RedisStore({ client, namespace: 'lock2', log: Fastify().log })
  const key = 'lock2:-:GET:%2Fcold:h'
  const token = await store.lock(key, 5000)
  t.type(token, 'string')
  const lockKeys = await client.keys('lock2:*')
  t.equal(lockKeys.length, 1)
  t.match(lockKeys[0], /^lock2:\{[0-9a-f]{2}\}:lock:-:GET:%2Fcold:h$/, 'in the entry\'s slot')
  const pttl = await client.pttl(lockKeys[0])
  t.ok(pttl > 0 && pttl <= 5000, `expires by itself: pttl ${pttl}`)
  t.equal(await store.lock(key, 5000), undefined, 'held: a second taker is refused')
  await store.unlock(key, 'not-the-token')
  t.equal(await store.lock(key, 5000), undefined, 'a wrong token releases nothing')
  await store.unlock(key, token as string)
  t.type(await store.lock(key, 5000), 'string', 'released by its owner')

  const runs = counter()
  const { app } = await instance(t, { namespace: 'lock3' }, async () => ({ run: runs.next() }))
  await app.inject('/cold')
  t.ok(await eventually(async () => (await client.keys('lock3:*:lock:*')).length === 0), 'the plugin released its lock after storing')
  // The script lets go of the lock as it writes; the store is counted once its answer is back.
  t.ok(await eventually(() => app.cache.stats().total.stores === 1), 'one store counted')
})

t.test('a lock whose owner died expires, and another instance then computes the key', async (t) => {
  const client = await connect(t, server)
  const started = deferred()
  const never = deferred<unknown>()
  t.teardown(() => { never.resolve('late') })
  // The owner takes the lock for 300 ms (its coalesceTimeout), starts its handler, and dies.
  const { client: ownerClient, app: owner } = await instance(t, { namespace: 'lock6', coalesceTimeout: 300 }, async () => {
    started.resolve()
    return await never.promise
  })
  const dying = owner.inject('/cold')
  await started.promise
  const [lockKey] = await client.keys('lock6:*:lock:*')
  const pttl = await client.pttl(lockKey)
  t.ok(pttl > 0 && pttl <= 300, `the lock taken with the lookup expires by itself: pttl ${pttl}`)
  ownerClient.disconnect()
  t.ok(await eventually(async () => await client.exists(lockKey) === 0), 'the dead owner\'s lock expired')

  let lockWhileComputing = 0
  const { app: other } = await instance(t, { namespace: 'lock6' }, async () => {
    lockWhileComputing = await client.pttl(lockKey)
    return { computed: 'here' }
  })
  const r = await other.inject('/cold')
  t.equal(r.headers['x-cache'], 'MISS')
  t.same(r.json(), { computed: 'here' })
  t.ok(lockWhileComputing > 0 && lockWhileComputing <= 5000, `the other instance took the lock itself: pttl ${lockWhileComputing}`)
  t.equal(other.cache.stats().total.hits, 0)
  never.resolve('late')
  await dying
})

t.test('waiting on another process is bounded by coalesceTimeout', async (t) => {
  const client = await connect(t, server)
  const runs = counter()
  const { app } = await instance(t, { namespace: 'lock4', coalesceTimeout: 150 }, async () => ({ run: runs.next() }))
  // Learn the key the route uses, then drop the entry and let another "process" hold its lock forever.
  await app.inject('/cold')
  await writesSent()
  const [entryKey] = (await client.keys('lock4:*')).filter((k) => !k.includes(':lock:') && !k.includes(':tag:'))
  await client.del(entryKey)
  const other = new RedisStore({ client, namespace: 'lock4', log: Fastify().log })
  t.type(await other.lock('lock4:' + entryKey.slice(entryKey.indexOf('}') + 2), 60_000), 'string')
  const r = await app.inject('/cold')
  t.equal(r.statusCode, 200)
  t.equal(r.headers['x-cache'], 'MISS', 'it gave up on the other process and ran the handler')
  t.equal(runs.runs, 2)
})

t.test('a process waiting on another one is answered from the entry that one writes', async (t) => {
  const runs = counter()
  const started = deferred()
  const finish = deferred()
  const handler = async (): Promise<unknown> => {
    const run = runs.next()
    started.resolve()
    await finish.promise
    return { run }
  }
  const { app: slow } = await instance(t, { namespace: 'lock5' }, handler)
  const { app: fast, client: fastClient } = await instance(t, { namespace: 'lock5' }, handler)
  // The waiting instance asks for the lock (SET NX) once its lookup found it taken: then it polls.
  const refused = deferred()
  const set = fastClient.set.bind(fastClient) as (...args: unknown[]) => Promise<unknown>
  fastClient.set = ((...args: unknown[]) => {
    const answer = set(...args)
    if (args.includes('NX')) answer.finally(() => { refused.resolve() }).catch(() => {})
    return answer
  }) as typeof fastClient.set
  const first = slow.inject('/cold')
  await started.promise
  const second = fast.inject('/cold')
  await refused.promise
  finish.resolve()
  const waited = await second
  t.equal(waited.headers['x-cache'], 'HIT')
  t.same(JSON.parse(waited.body), { run: 1 })
  t.equal((await first).headers['x-cache'], 'MISS')
  t.equal(runs.runs, 1)
})

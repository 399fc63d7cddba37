import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { RedisStore } from '../lib/stores/redis.js'
import { counter } from './helpers/app.js'
import { connect, startRedis, writesSent } from './helpers/redis.js'

const server = await startRedis(t)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function instance (t: Tap, options: ResponseCacheOptions, runs: { next: () => number }, handlerMs: number): Promise<FastifyInstance> {
  // Each instance has its own client, as separate processes would.
  const client = await connect(t, server)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis: client, ...options })
  app.get('/cold', { config: { cache: true } }, async () => {
    const run = runs.next()
    await sleep(handlerMs)
    return { run }
  })
  await app.ready()
  return app
}
type Tap = import('tap').Test

t.test('two instances on one Redis compute a cold key once between them', async (t) => {
  const runs = counter()
  const a = await instance(t, { namespace: 'lock1' }, runs, 100)
  const b = await instance(t, { namespace: 'lock1' }, runs, 100)
  const responses = await Promise.all([
    ...Array.from({ length: 20 }, async () => await a.inject('/cold')),
    ...Array.from({ length: 20 }, async () => await b.inject('/cold'))
  ])
  t.equal(runs.runs, 1, 'the handler ran once across both instances')
  for (const r of responses) t.same(JSON.parse(r.body), { run: 1 })
  t.equal(responses.filter((r) => r.headers['x-cache'] === 'MISS').length, 1)
})

t.test('the lock is released once the entry is written, and only by its owner', async (t) => {
  const client = await connect(t, server)
  const store = new RedisStore({ client, namespace: 'lock2', log: Fastify().log })
  const key = 'lock2:-:GET:%2Fcold:h'
  const token = await store.lock(key, 5000)
  t.type(token, 'string')
  t.equal(await store.lock(key, 5000), undefined, 'held: a second taker is refused')
  await store.unlock(key, 'not-the-token')
  t.equal(await store.lock(key, 5000), undefined, 'a wrong token releases nothing')
  await store.unlock(key, token as string)
  const again = await store.lock(key, 5000)
  t.type(again, 'string', 'released by its owner')
  const lockKeys = await client.keys('lock2:*')
  t.equal(lockKeys.length, 1)
  t.match(lockKeys[0], /^lock2:\{[0-9a-f]{2}\}:lock:-:GET:%2Fcold:h$/, 'in the entry\'s slot')
  t.ok(await client.pttl(lockKeys[0]) <= 5000)

  const runs = counter()
  const app = await instance(t, { namespace: 'lock3' }, runs, 10)
  await app.inject('/cold')
  let left = await client.keys('lock3:*:lock:*')
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await sleep(20)
    left = await client.keys('lock3:*:lock:*')
  }
  t.same(left, [], 'the plugin released its lock after storing')
})

t.test('waiting on another process is bounded by coalesceTimeout', async (t) => {
  const client = await connect(t, server)
  const runs = counter()
  const app = await instance(t, { namespace: 'lock4', coalesceTimeout: 150 }, runs, 10)
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
  const slow = await instance(t, { namespace: 'lock5' }, runs, 300)
  const fast = await instance(t, { namespace: 'lock5' }, runs, 300)
  const first = slow.inject('/cold')
  await sleep(50)
  const second = await fast.inject('/cold')
  t.equal(second.headers['x-cache'], 'HIT')
  t.same(JSON.parse(second.body), { run: 1 })
  t.equal((await first).headers['x-cache'], 'MISS')
  t.equal(runs.runs, 1)
})

import t from 'tap'
import { cachedApp, counter } from './helpers/app.js'
import { deferred } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

for (const [kind, options] of await storeKinds(t)) {
  t.test(`${kind}: concurrent misses of one key run the handler once; the others are answered from it`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.get('/cold/:id', { config: { cache: true } }, async (request) => {
      await sleep(50)
      return { id: (request.params as { id: string }).id, run: runs.next() }
    })
    const responses = await Promise.all(Array.from({ length: 200 }, async () => await app.inject('/cold/1')))
    t.equal(runs.runs, 1)
    const statuses = responses.map((r) => r.headers['x-cache'])
    t.equal(statuses.filter((s) => s === 'MISS').length, 1)
    t.equal(statuses.filter((s) => s === 'HIT').length, 199, 'a coalesced request carries x-cache: HIT')
    for (const r of responses) t.same(JSON.parse(r.body), { id: '1', run: 1 })
    const other = await Promise.all([app.inject('/cold/2'), app.inject('/cold/3')])
    t.same(other.map((r) => r.headers['x-cache']), ['MISS', 'MISS'], 'other keys are not held up')
    const stats = app.cache.stats().routes['GET /cold/:id']
    t.equal(stats.misses, 3)
    t.equal(stats.hits, 199)
  })

  t.test(`${kind}: a response that may not be shared is not handed to the waiters`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.get('/personal', { config: { cache: true } }, async (_request, reply) => {
      const run = runs.next()
      await sleep(30)
      reply.header('set-cookie', `session=${run}`)
      return { run }
    })
    const responses = await Promise.all(Array.from({ length: 10 }, async () => await app.inject('/personal')))
    t.equal(runs.runs, 10, 'each waiter ran the handler itself')
    const cookies = new Set(responses.map((r) => r.headers['set-cookie']))
    t.equal(cookies.size, 10, 'no two clients got the same session cookie')
    for (const r of responses) t.equal(r.headers['x-cache'], 'MISS')
  })

  t.test(`${kind}: when the leader fails, the waiters run the handler themselves`, async (t) => {
    const app = await cachedApp(t, options())
    let calls = 0
    app.get('/flaky', { config: { cache: true } }, async () => {
      calls++
      await sleep(30)
      if (calls === 1) throw new Error('first call fails')
      return { ok: true }
    })
    const responses = await Promise.all(Array.from({ length: 5 }, async () => await app.inject('/flaky')))
    t.equal(responses.filter((r) => r.statusCode === 500).length, 1, 'only the leader saw its error')
    t.equal(responses.filter((r) => r.statusCode === 200).length, 4)
  })

  t.test(`${kind}: the wait is bounded by coalesceTimeout`, async (t) => {
    const app = await cachedApp(t, { ...options(), coalesceTimeout: 30 })
    const runs = counter()
    const leading = deferred()
    const finish = deferred()
    // The leader's handler answers only once the waiter has given up on it and answered.
    app.get('/slow', { config: { cache: true } }, async () => {
      const run = runs.next()
      if (run === 1) {
        leading.resolve()
        await finish.promise
      }
      return { run }
    })
    const leader = app.inject('/slow')
    await leading.promise
    const waiter = await app.inject('/slow')
    t.equal(waiter.headers['x-cache'], 'MISS', 'the waiter gave up on the leader and ran the handler')
    t.same(waiter.json(), { run: 2 })
    finish.resolve()
    t.equal((await leader).statusCode, 200)
  })
}

t.test('coalesceTimeout is validated', async (t) => {
  const { resolveOptions } = await import('../lib/options.js')
  t.throws(() => resolveOptions({ coalesceTimeout: -1 }), { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message: /"coalesceTimeout"/ })
  t.throws(() => resolveOptions({ honorClientNoCache: 'yes' }), { message: /"honorClientNoCache": expected a boolean/ })
  t.equal(resolveOptions({}).coalesceTimeoutMs, 5000)
})

t.test('redis: a read that left before the leader\'s write landed is answered from that write, not the handler', async (t) => {
  const [, [, redisOptions]] = await storeKinds(t)
  const app = await cachedApp(t, redisOptions())
  const runs = counter()
  app.get('/race', { config: { cache: true } }, async () => ({ run: runs.next() }))
  // Waves of requests: each wave's reads may cross the previous wave's write in flight.
  for (let wave = 0; wave < 5; wave++) {
    const responses = await Promise.all(Array.from({ length: 100 }, async () => await app.inject('/race')))
    for (const r of responses) t.same(JSON.parse(r.body), { run: 1 })
  }
  t.equal(runs.runs, 1)
})

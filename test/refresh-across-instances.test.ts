import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { startRedis } from './helpers/redis.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { CacheStore } from '../lib/stores/store.js'

// Three instances of one app on one redis-server, with clients as the README shows them
// (`new Redis(url)`): a stale entry is refreshed by one instance, not by each.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`

for (const store of ['redis', 'tiered'] as const) {
  t.test(`${store}: a stale entry is refreshed once across three instances; the others serve it stale meanwhile`, async (t) => {
    const runs = counter()
    const refreshing = deferred()
    const logs = logCapture()
    const apps: FastifyInstance[] = []
    for (let i = 0; i < 3; i++) {
      const redis = new Redis(url)
      t.teardown(() => { redis.disconnect() })
      const app = await cachedApp(t, { store, redis, namespace: `swr-${store}` }, { logger: logs.logger })
      app.get('/report', { config: { cache: { ttl: 1, staleWhileRevalidate: 60 } } }, async () => {
        const run = runs.next()
        if (run > 1) await refreshing.promise
        return { run }
      })
      await app.ready()
      apps.push(app)
    }
    const [a, b, c] = apps
    t.same((await a.inject('/report')).json(), { run: 1 })
    const stored = Date.now()
    t.ok(await eventually(async () => (await b.inject('/report')).headers['x-cache'] === 'HIT'), 'stored in Redis')
    await until(stored, 1000)
    for (const app of [a, b, c]) {
      const r = await app.inject('/report')
      t.same([r.headers['x-cache'], r.json()], ['STALE', { run: 1 }])
    }
    const leftToAnother = (): number => logs.lines.filter((line) => line.msg === 'response cache refresh left to another instance').length
    t.ok(await eventually(() => leftToAnother() === 2), 'two instances left the refresh to the one that took the lock')
    t.equal(runs.runs, 2, 'one refresh runs')
    for (const app of [a, b, c]) t.same((await app.inject('/report')).json(), { run: 1 }, 'the stale entry is served while it runs')
    t.equal(leftToAnother(), 2, 'an instance that left it does not ask again while the lock holds')
    refreshing.resolve()
    for (const app of [a, b, c]) t.ok(await eventually(async () => (await app.inject('/report')).json().run === 2), 'the refreshed entry reaches every instance')
    t.equal(runs.runs, 2)
  })
}

t.test('a store whose lock fails: the instance refreshes the stale entry itself', async (t) => {
  const memory = new MemoryStore({ maxBytes: 1_000_000 })
  // A custom store shared by instances, whose lock cannot be taken right now.
  const store: CacheStore = {
    name: 'no-lock',
    get: (key) => memory.get(key),
    set: (key, entry, options) => { memory.set(key, entry, options) },
    delete: (key) => memory.delete(key),
    invalidateTags: (tags) => memory.invalidateTags(tags),
    clear: () => { memory.clear() },
    lock: async () => { throw new Error('lock unavailable') },
    unlock: () => {}
  }
  const runs = counter()
  const app = await cachedApp(t, { store })
  app.get('/report', { config: { cache: { ttl: 1, staleWhileRevalidate: 60 } } }, async () => ({ run: runs.next() }))
  await app.inject('/report')
  await until(Date.now(), 1000)
  t.equal((await app.inject('/report')).headers['x-cache'], 'STALE')
  t.ok(await eventually(async () => (await app.inject('/report')).json().run === 2), 'refreshed')
})

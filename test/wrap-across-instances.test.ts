import t from 'tap'
import { cachedApp, counter } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { threeInstances } from './helpers/instances.js'
import { startRedis } from './helpers/redis.js'

// Three instances of one app on one redis-server, with clients as the README shows them
// (`new Redis(url)`), calling app.cache.wrap for one key: `fn` runs on one instance, not on each.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`

for (const store of ['redis', 'tiered'] as const) {
  t.test(`${store}: a cold key wrapped on three instances at once runs fn once; the others answer its value`, async (t) => {
    const apps = await threeInstances(t, url, store, `wrap-once-${store}`)
    const runs = counter()
    const slow = deferred()
    const fn = async (): Promise<{ run: number }> => {
      const run = runs.next()
      await slow.promise
      return { run }
    }
    const calls = apps.flatMap((app) => [app.cache.wrap('report', fn), app.cache.wrap('report', fn)])
    t.ok(await eventually(() => runs.runs > 0), 'one instance runs fn')
    slow.resolve()
    t.same(await Promise.all(calls), Array.from({ length: 6 }, () => ({ run: 1 })), 'every caller on every instance gets its value')
    t.equal(runs.runs, 1)
    t.equal(apps.reduce((sum, app) => sum + app.cache.stats().values.misses, 0), 1, 'one miss across the instances; the waiters count hits')
  })

  t.test(`${store}: a stale value is refreshed once across three instances; the others answer it stale meanwhile`, async (t) => {
    const apps = await threeInstances(t, url, store, `wrap-swr-${store}`)
    const runs = counter()
    const refreshing = deferred()
    const fn = async (): Promise<{ run: number }> => {
      const run = runs.next()
      if (run > 1) await refreshing.promise
      return { run }
    }
    const options = { ttl: 1, staleWhileRevalidate: 60 }
    t.same(await apps[0].cache.wrap('daily', fn, options), { run: 1 })
    const stored = Date.now()
    await until(stored, 1000)
    for (const app of apps) t.same(await app.cache.wrap('daily', fn, options), { run: 1 }, 'stale, answered at once')
    t.ok(await eventually(() => runs.runs === 2), 'one refresh runs')
    for (const app of apps) t.same(await app.cache.wrap('daily', fn, options), { run: 1 }, 'still stale while it runs')
    refreshing.resolve()
    t.ok(await eventually(async () => (await apps[2].cache.wrap('daily', fn, options)).run === 2), 'its value reaches the others')
    t.equal(runs.runs, 2, 'no other instance refreshed')
  })
}

t.test('a store that cannot lock (memory): wrap runs fn in this process as before', async (t) => {
  const app = await cachedApp(t)
  await app.ready()
  const runs = counter()
  t.same(await Promise.all([app.cache.wrap('k', () => runs.next()), app.cache.wrap('k', () => runs.next())]), [1, 1])
})

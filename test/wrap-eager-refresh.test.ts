import t from 'tap'
import { cachedApp, counter } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { threeInstances } from './helpers/instances.js'
import { allStoreKinds } from './helpers/stores.js'

// wrap's eagerRefresh: a fresh value read past that fraction of its ttl is answered at once and one
// background run of fn replaces it (one across the instances sharing a store that locks), so a key
// read all the time never becomes a miss.

const { kinds, url, client } = await allStoreKinds(t, 'eager')

/** A function whose runs after the first wait for `release`, numbering their values. */
function source (): { runs: number, release: () => void, fn: () => Promise<{ run: number }> } {
  const gate = deferred()
  const runs = counter()
  return {
    get runs () { return runs.runs },
    release: gate.resolve,
    fn: async () => {
      const run = runs.next()
      if (run > 1) await gate.promise
      return { run }
    }
  }
}

for (const [kind, options] of kinds) {
  t.test(`${kind}: a read past eagerRefresh answers the value and starts one background refresh`, async (t) => {
    const app = await cachedApp(t, options())
    const api = source()
    const call = async (): Promise<{ run: number }> => await app.cache.wrap('rates', api.fn, { ttl: 2, eagerRefresh: 0.25 })
    t.same(await call(), { run: 1 })
    const stored = Date.now()
    t.same(await call(), { run: 1 })
    t.equal(api.runs, 1, 'before the eager point: a plain hit')
    await until(stored, 500)
    t.same(await Promise.all([call(), call()]), [{ run: 1 }, { run: 1 }], 'answered at once, not waiting for fn')
    t.ok(await eventually(() => api.runs === 2), 'one background run')
    t.same(await call(), { run: 1 }, 'the old value while it runs')
    t.equal(api.runs, 2, 'no second refresh while one runs')
    api.release()
    t.ok(await eventually(async () => (await call()).run === 2), 'its value replaces the old one')
    t.same(await app.cache.get('rates'), { run: 2 })
    t.same(await call(), { run: 2 })
    t.equal(api.runs, 2, 'the refreshed value is not refreshed again before its own eager point')
    const { values } = app.cache.stats()
    t.equal(values.misses, 1, 'never a miss after the first call')
    t.equal(values.stale, 0, 'an eager refresh answers fresh values: counted as hits')
  })

  t.test(`${kind}: ctx.skip() in a background refresh keeps the old value`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    const fn = (ctx: { skip: () => void }): string => {
      const run = runs.next()
      if (run > 1) ctx.skip()
      return `run ${run}`
    }
    const call = async (): Promise<string> => await app.cache.wrap('flags', fn, { ttl: 2, eagerRefresh: 0.25 })
    t.equal(await call(), 'run 1')
    await until(Date.now(), 500)
    t.equal(await call(), 'run 1')
    // A second refresh starts only once the first is over (and has written whatever it writes).
    t.ok(await eventually(async () => { await call(); return runs.runs >= 3 }), 'the skipped refresh leaves the value past its eager point')
    t.equal(await call(), 'run 1', 'the skipped value was not stored')
    t.equal(app.cache.stats().values.stores, 1)
  })

  t.test(`${kind}: eagerRefresh is a fraction strictly between 0 and 1`, async (t) => {
    const app = await cachedApp(t, options())
    for (const eagerRefresh of [0, 1, -0.5, 1.5, Number.NaN, '0.8']) {
      await t.rejects(app.cache.wrap('k', () => 1, { eagerRefresh: eagerRefresh as number }),
        { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"eagerRefresh"/ }, String(eagerRefresh))
    }
    t.equal(await app.cache.wrap('k', () => 1, { eagerRefresh: 0.99 }), 1)
  })
}

for (const store of ['redis', 'tiered'] as const) {
  t.test(`${store}: three instances reading past the eager point at once run one refresh; the key is never a miss`, async (t) => {
    const apps = await threeInstances(t, url, store, `eager-three-${store}`)
    const api = source()
    const options = { ttl: 3, eagerRefresh: 0.5 }
    const round = async (): Promise<Array<{ run: number }>> =>
      await Promise.all(apps.flatMap((app) => Array.from({ length: 10 }, async () => await app.cache.wrap('prices', api.fn, options))))
    t.same(await apps[0].cache.wrap('prices', api.fn, options), { run: 1 })
    const stored = Date.now()
    await until(stored, 1500)
    for (let i = 0; i < 5; i++) t.ok((await round()).every(({ run }) => run === 1), 'the old value, at once')
    t.ok(await eventually(() => api.runs === 2), 'one refresh')
    for (let i = 0; i < 5; i++) await round()
    t.equal(api.runs, 2, 'no other instance refreshed while it ran')
    api.release()
    t.ok(await eventually(async () => (await round()).every(({ run }) => run === 2)), 'every instance answers the refreshed value')
    for (let i = 0; i < 5; i++) await round()
    t.equal(api.runs, 2, 'and no instance refreshes it again')
    const misses = apps.reduce((sum, app) => sum + app.cache.stats().values.misses, 0)
    t.equal(misses, 1, 'the first call was the only miss')
  })
}

t.test('tiered: an instance whose memory still holds the value another instance has just replaced does not refresh it again', async (t) => {
  // The replacing write reaches Redis without news on the bus (as if the news were still on its way):
  // the tiered instance's memory keeps the old value, past its eager point.
  const tiered = await cachedApp(t, { store: 'tiered', redis: client, namespace: 'eager-bus' })
  const direct = await cachedApp(t, { store: 'redis', redis: client, namespace: 'eager-bus' })
  const api = source()
  const options = { ttl: 2, eagerRefresh: 0.25 }
  t.same(await tiered.cache.wrap('prices', api.fn, options), { run: 1 })
  await until(Date.now(), 500)
  await direct.cache.set('prices', { run: 99 }, { ttl: 2 })
  t.same(await tiered.cache.wrap('prices', api.fn, options), { run: 1 }, 'its memory answers the old value and starts a refresh')
  t.ok(await eventually(async () => (await tiered.cache.wrap('prices', api.fn, options)).run === 99), 'the refresh found the newer value in Redis')
  t.equal(api.runs, 1, 'and did not run fn')
  api.release()
})

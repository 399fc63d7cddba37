import t, { type Test } from 'tap'
import type { EntryPage } from '../lib/index.js'
import { cachedApp } from './helpers/app.js'
import { storeKinds } from './helpers/stores.js'

const kinds = await storeKinds(t)
const TTL = 1000

/** The ttl (whole seconds of freshness left) of every entry carrying the tag. */
async function ttls (app: Awaited<ReturnType<typeof cachedApp>>, selector: { tag?: string, route?: string }): Promise<number[]> {
  const page = await app.cache.list({ ...selector, limit: 100 }) as EntryPage
  return page.entries.map((entry) => entry.ttl)
}

function withinJitter (t: Test, found: number[], jitter: number): void {
  t.equal(found.length, 50)
  t.ok(found.every((ttl) => ttl >= Math.floor((1 - jitter) * TTL) && ttl <= TTL), `all within [${(1 - jitter) * TTL}, ${TTL}]: ${found.join(',')}`)
  t.ok(new Set(found).size > 10, `spread out: ${new Set(found).size} different TTLs`)
}

for (const [kind, options] of kinds) {
  t.test(`${kind}: values written together with ttlJitter 0.5 get different TTLs, none longer than asked`, async (t) => {
    const app = await cachedApp(t, { ...options(), ttlJitter: 0.5 })
    await Promise.all(Array.from({ length: 50 }, async (_, i) => await app.cache.set(`v${i}`, i, { ttl: TTL, tags: ['plugin'] })))
    withinJitter(t, await ttls(app, { tag: 'plugin' }), 0.5)
    await Promise.all(Array.from({ length: 50 }, async (_, i) => await app.cache.set(`w${i}`, i, { ttl: TTL, tags: ['off'], ttlJitter: 0 })))
    t.same(await ttls(app, { tag: 'off' }), Array(50).fill(TTL), 'a call\'s ttlJitter: 0 turns the plugin\'s off')
  })

  t.test(`${kind}: ttlJitter per set and wrap call; 0 (the default) stores the TTL asked`, async (t) => {
    const app = await cachedApp(t, options())
    await Promise.all(Array.from({ length: 50 }, async (_, i) => await app.cache.set(`v${i}`, i, { ttl: TTL, tags: ['plain'] })))
    t.same(await ttls(app, { tag: 'plain' }), Array(50).fill(TTL))
    await Promise.all(Array.from({ length: 50 }, async (_, i) => await app.cache.wrap(`w${i}`, () => i, { ttl: TTL, tags: ['wrapped'], ttlJitter: 0.5 })))
    withinJitter(t, await ttls(app, { tag: 'wrapped' }), 0.5)
    await Promise.all(Array.from({ length: 50 }, async (_, i) => await app.cache.set(`s${i}`, i, { ttl: TTL, tags: ['set'], ttlJitter: 0.5 })))
    withinJitter(t, await ttls(app, { tag: 'set' }), 0.5)
  })

  t.test(`${kind}: a route's ttlJitter`, async (t) => {
    const app = await cachedApp(t, { ...options(), ttl: TTL })
    app.get('/j/:id', { config: { cache: { ttlJitter: 0.5 } } }, async () => 'x')
    app.get('/p/:id', { config: { cache: true } }, async () => 'x')
    for (let i = 0; i < 50; i++) {
      await app.inject(`/j/${i}`)
      await app.inject(`/p/${i}`)
    }
    withinJitter(t, await ttls(app, { route: 'GET /j/:id' }), 0.5)
    t.same(await ttls(app, { route: 'GET /p/:id' }), Array(50).fill(TTL), 'a route without it stores the TTL asked')
  })
}

t.test('a bad ttlJitter on set or wrap throws, naming it', async (t) => {
  const app = await cachedApp(t)
  for (const ttlJitter of [-0.1, 1.01, Number.NaN, '0.1']) {
    await t.rejects(app.cache.set('k', 1, { ttlJitter: ttlJitter as number }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /ttlJitter.*expected a fraction from 0 to 1/ })
    await t.rejects(app.cache.wrap('k', () => 1, { ttlJitter: ttlJitter as number }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /ttlJitter/ })
  }
  t.equal(await app.cache.set('k', 1, { ttlJitter: 1 }), true, '1 is allowed')
})

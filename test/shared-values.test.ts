import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import responseCache, { type CacheStore, type ResponseCacheOptions } from '../lib/index.js'
import { cachedApp } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { startRedis } from './helpers/redis.js'

// Shared values (`sharedValues`, a call's `shared`): one deep-frozen object per stored value, handed
// to every caller; copies (the default) stay fresh objects that the caller may change.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
let namespaces = 0

/** An app on `store`, its Redis client made as the README shows (`new Redis(url)`), used right after ready(). */
async function appOn (t: Tap, store: 'memory' | 'redis' | 'tiered', options: ResponseCacheOptions = {}, namespace = `shared${++namespaces}`): Promise<FastifyInstance> {
  const redis = store === 'memory' ? undefined : new Redis(url)
  if (redis !== undefined) t.teardown(() => { redis.disconnect() })
  const app = await cachedApp(t, { store, redis, namespace, timeout: 2000, ...options })
  await app.ready()
  return app
}

type Tap = import('tap').Test

interface Drug { name: string, dose: { mg: number, times: number[] }, warnings: Array<{ text: string }> }
const drug = (name: string): Drug => ({ name, dose: { mg: 500, times: [8, 20] }, warnings: [{ text: 'not with alcohol' }] })

for (const store of ['memory', 'redis', 'tiered'] as const) {
  t.test(`${store}: sharedValues answers a deep-frozen value equal to what was set; changing it throws`, async (t) => {
    const app = await appOn(t, store, { sharedValues: true })
    await app.cache.set('drug:1', drug('aspirin'))
    const back = await app.cache.get<Drug>('drug:1')
    t.same(back, drug('aspirin'))
    t.ok(Object.isFrozen(back) && Object.isFrozen(back?.dose) && Object.isFrozen(back?.dose.times) && Object.isFrozen(back?.warnings[0]), 'frozen all the way down')
    t.throws(() => { (back as Drug).name = 'changed' }, TypeError, 'a field cannot be set (strict mode)')
    t.throws(() => { back?.dose.times.push(12) }, TypeError, 'a nested array cannot grow')
    t.throws(() => { (back as Drug).warnings[0].text = '' }, TypeError, 'an object in an array cannot change')
    if (store !== 'redis') t.equal(await app.cache.get('drug:1'), back, 'the same object for every caller: no decode on a hit')
    t.same(await app.cache.get('drug:1'), drug('aspirin'))
  })

  t.test(`${store}: a shared value is replaced by set, and gone after del and invalidate`, async (t) => {
    const app = await appOn(t, store, { sharedValues: true })
    await app.cache.set('drug:1', drug('aspirin'), { tags: ['drugs'] })
    const first = await app.cache.get<Drug>('drug:1')
    await app.cache.set('drug:1', drug('ibuprofen'), { tags: ['drugs'] })
    const second = await app.cache.get<Drug>('drug:1')
    t.equal(second?.name, 'ibuprofen', 'set replaces it')
    t.equal(first?.name, 'aspirin', 'the object answered before is left as it was')
    t.ok(Object.isFrozen(second))
    await app.cache.del('drug:1')
    t.equal(await app.cache.get('drug:1'), undefined, 'del drops it')
    await app.cache.set('drug:1', drug('paracetamol'), { tags: ['drugs'] })
    t.equal((await app.cache.get<Drug>('drug:1'))?.name, 'paracetamol')
    t.equal(await app.cache.invalidate({ tags: ['drugs'] }), 1)
    t.equal(await app.cache.get('drug:1'), undefined, 'invalidate drops it')
    t.equal(await app.cache.wrap('drug:1', () => drug('naproxen')).then((value) => value.name), 'naproxen', 'and wrap computes it again')
  })

  t.test(`${store}: shared values of one key never cross tenants`, async (t) => {
    const app = await appOn(t, store, { sharedValues: true })
    await app.cache.set('prefs', { theme: 'dark' }, { tenant: 'acme' })
    await app.cache.set('prefs', { theme: 'light' }, { tenant: 42 })
    const acme = await app.cache.get('prefs', { tenant: 'acme' })
    const other = await app.cache.get('prefs', { tenant: 42 })
    t.same(acme, { theme: 'dark' })
    t.same(other, { theme: 'light' })
    t.not(acme, other)
    t.equal(await app.cache.get('prefs'), undefined, 'no tenant sees neither')
    t.equal(await app.cache.get('prefs', { tenant: '42x' }), undefined, 'nor does another tenant')
    t.same(await app.cache.wrap('prefs', () => ({ theme: 'none' }), { tenant: 'acme' }), { theme: 'dark' }, "wrap answers the tenant's own value")
  })

  t.test(`${store}: wrap with shared: true answers the frozen stored value, not fn's own object, on a miss and on hits`, async (t) => {
    const app = await appOn(t, store)
    const made = drug('aspirin')
    let runs = 0
    const fn = (): Drug => { runs++; return made }
    const missed = await app.cache.wrap('drug:1', fn, { shared: true })
    t.not(missed, made, "fn's object is the caller's own: it is neither frozen nor handed out")
    t.notOk(Object.isFrozen(made))
    t.ok(Object.isFrozen(missed?.dose.times))
    t.same(missed, made)
    const hit = await app.cache.wrap('drug:1', fn, { shared: true })
    t.equal(runs, 1, 'a hit')
    await app.cache.wrap('drug:1', fn)
    const { hits, misses } = app.cache.stats().values
    t.same({ hits, misses }, { hits: 2, misses: 1 }, 'hits answered in place are counted, shared and copied alike')
    if (store !== 'redis') t.equal(hit, missed, 'the miss answered the object later hits answer')
    t.ok(Object.isFrozen(hit))
  })

  t.test(`${store}: copies stay the default: a fresh object on every call, which the caller may change`, async (t) => {
    const app = await appOn(t, store)
    await app.cache.set('drug:1', drug('aspirin'))
    const shared = await app.cache.get<Drug>('drug:1', { shared: true })
    const copy = await app.cache.get<Drug>('drug:1')
    t.notOk(Object.isFrozen(copy) || Object.isFrozen(copy?.dose.times), 'a copy is not frozen')
    t.not(copy, await app.cache.get('drug:1'), 'each get answers its own copy')
    copy?.dose.times.push(12)
    ;(copy as Drug).name = 'changed'
    t.same(await app.cache.get('drug:1'), drug('aspirin'), 'changing a copy changes neither the cache nor later copies')
    t.same(shared, drug('aspirin'), 'nor the shared value')
    const wrapped = await app.cache.wrap<Drug>('drug:1', () => drug('other'))
    t.notOk(Object.isFrozen(wrapped))
    t.same(wrapped, drug('aspirin'))
    const plugin = await appOn(t, store, { sharedValues: true })
    await plugin.cache.set('drug:1', drug('aspirin'))
    t.notOk(Object.isFrozen(await plugin.cache.get('drug:1', { shared: false })), 'shared: false asks for a copy where the plugin shares')
  })

  t.test(`${store}: Dates, Maps, Sets and Buffers: shared ones frozen as far as they can be, copies untouched by a change to them`, async (t) => {
    const app = await appOn(t, store)
    const value = { at: new Date('2026-01-02T03:04:05.678Z'), map: new Map([['a', { n: 1 }]]), set: new Set([[1, 2]]), bytes: Buffer.from('abc') }
    await app.cache.set('mixed', value)
    const shared = await app.cache.get<typeof value>('mixed', { shared: true })
    t.same(shared, value)
    t.ok(Object.isFrozen(shared?.map.get('a')) && Object.isFrozen([...(shared?.set ?? [])][0]), 'what Maps and Sets hold is frozen')
    // What freezing cannot stop (docs/API.md): the bytes of a Buffer, a Map's set. A copy must not see it.
    shared?.bytes.write('z')
    shared?.map.set('b', { n: 2 })
    const copy = await app.cache.get<typeof value>('mixed')
    t.same(copy, value, 'a copy is decoded from the stored bytes')
    copy?.bytes.write('y')
    t.equal((await app.cache.get<typeof value>('mixed'))?.bytes.toString(), 'abc', "a copy's Buffer is bytes of its own, not the stored entry's")
  })
}

for (const store of ['memory', 'tiered'] as const) {
  t.test(`${store}: a background refresh (staleWhileRevalidate) replaces the shared value`, async (t) => {
    const app = await appOn(t, store, { sharedValues: true })
    let version = 0
    const fn = (): { version: number } => ({ version: ++version })
    const options = { ttl: 0.05, staleWhileRevalidate: 60 }
    const first = await app.cache.wrap('report', fn, options)
    const stored = Date.now()
    await until(stored, 100)
    const stale = await app.cache.wrap('report', fn, options)
    // The tiered store's memory tier keeps an entry for its freshness only: a stale one is read from Redis again.
    if (store === 'memory') t.equal(stale, first, 'the stale value answered at once is the shared one')
    t.same(stale, { version: 1 })
    t.ok(Object.isFrozen(stale))
    t.ok(await eventually(async () => (await app.cache.wrap('report', fn, options)).version === 2), 'the refresh stores version 2')
    const fresh = await app.cache.wrap('report', fn, options)
    t.ok(Object.isFrozen(fresh))
    t.equal(first.version, 1, 'the old object is left as it was')
  })
}

t.test('concurrent wraps of one key, shared and copied, each get what they asked for', async (t) => {
  const app = await appOn(t, 'memory')
  const slow = deferred()
  const fn = async (): Promise<Drug> => { await slow.promise; return drug('aspirin') }
  const calls = [app.cache.wrap('drug:1', fn, { shared: true }), app.cache.wrap('drug:1', fn), app.cache.wrap('drug:1', fn, { shared: true }), app.cache.wrap('drug:1', fn)]
  slow.resolve()
  const [sharedA, copyA, sharedB, copyB] = await Promise.all(calls)
  t.ok(Object.isFrozen(sharedA) && Object.isFrozen(sharedB), 'the shared callers get frozen values')
  t.equal(sharedA, sharedB, 'one object for the shared callers of one run')
  t.notOk(Object.isFrozen(copyA) || Object.isFrozen(copyB), 'the copy callers never get a frozen one')
  t.same([sharedA, copyA, copyB], [drug('aspirin'), drug('aspirin'), drug('aspirin')])
})

t.test('tiered: three instances share values through Redis; each freezes its own, and a set on one replaces it on the others', async (t) => {
  const namespace = `shared-tiered-${++namespaces}`
  const apps = [await appOn(t, 'tiered', { sharedValues: true }, namespace), await appOn(t, 'tiered', { sharedValues: true }, namespace), await appOn(t, 'tiered', { sharedValues: true }, namespace)]
  await apps[0].cache.set('drug:1', drug('aspirin'))
  const read = await Promise.all(apps.map(async (app) => await app.cache.get<Drug>('drug:1')))
  for (const value of read) {
    t.same(value, drug('aspirin'))
    t.ok(Object.isFrozen(value?.dose))
  }
  t.equal(await apps[1].cache.get('drug:1'), read[1], 'read from Redis once, then the same object from memory')
  await apps[2].cache.set('drug:1', drug('ibuprofen'))
  for (const app of apps.slice(0, 2)) {
    t.ok(await eventually(async () => (await app.cache.get<Drug>('drug:1'))?.name === 'ibuprofen'), 'the new value reaches the other instances')
  }
  t.equal(read[0]?.name, 'aspirin', 'what was answered before is left as it was')
})

t.test('a store that throws as it is asked: get misses and wrap runs fn, shared or copied; nothing reaches the caller', async (t) => {
  const failing: CacheStore = {
    name: 'failing',
    get () { throw new Error('down') },
    set () {},
    delete: () => true,
    invalidateTags: () => 0,
    clear () {}
  }
  const app = await cachedApp(t, { store: failing, sharedValues: true })
  t.equal(await app.cache.get('k'), undefined)
  t.equal(await app.cache.get('k', { shared: false }), undefined)
  t.same(await app.cache.wrap('k', () => ({ n: 1 })), { n: 1 })
  t.same(await app.cache.wrap('k', () => ({ n: 2 }), { shared: false }), { n: 2 })
  t.equal(app.cache.stats().values.errors, 4, 'each failed read is counted')
})

t.test('a bad shared or sharedValues is named', async (t) => {
  const app = await appOn(t, 'memory')
  for (const shared of ['yes', 1, null]) {
    await t.rejects(app.cache.get('k', { shared: shared as unknown as boolean }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"shared": expected a boolean/ })
    await t.rejects(app.cache.wrap('k', () => 1, { shared: shared as unknown as boolean }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"shared": expected a boolean/ })
  }
  const bad = Fastify()
  t.teardown(async () => { await bad.close() })
  await t.rejects(async () => { await bad.register(responseCache, { sharedValues: 'yes' as unknown as boolean }).ready() }, {
    code: 'FST_RESPONSE_CACHE_INVALID_OPTION',
    message: /invalid option "sharedValues": expected a boolean/
  })
})

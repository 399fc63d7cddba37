import type { Test } from 'tap'
import type { CacheEntry } from '../../lib/entry.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { eventually } from '../helpers/events.js'

/** An entry with a body of `size` bytes. */
export function makeEntry (body: string | Buffer = 'hello', overrides: Partial<CacheEntry> = {}): CacheEntry {
  return {
    status: 200,
    headers: { 'content-type': 'text/plain', 'x-multi': ['a', 'b'] },
    body: Buffer.isBuffer(body) ? body : Buffer.from(body),
    storedAt: Date.now(),
    ttl: 60,
    etag: '"e1"',
    ...overrides
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** How many of `keys` the store holds. */
async function present (store: CacheStore, keys: string[]): Promise<number> {
  let n = 0
  for (const key of keys) if (await store.get(key) !== undefined) n++
  return n
}

export interface ContractOptions {
  /**
   * Does to `store` what eviction under memory pressure can do to it: Redis may evict index records
   * (tag sets, versions) and leave their entries; the memory store evicts an entry with its records.
   * A store that never evicts leaves it out.
   */
  evictIndex?: (store: CacheStore) => Promise<void> | void
}

/**
 * What every store must do. `make` gives a fresh, empty store for each subtest; memory, Redis,
 * Cluster, tiered and a custom store all run this suite.
 */
export function storeContract (t: Test, make: (t: Test) => Promise<CacheStore> | CacheStore, options: ContractOptions = {}): void {
  t.test('get of an unknown key is undefined', async (t) => {
    const store = await make(t)
    t.equal(await store.get('rc:-:GET:%2F:nothing'), undefined)
  })

  t.test('set then get returns the same status, headers, body, validators and times', async (t) => {
    const store = await make(t)
    const entry = makeEntry(Buffer.from([0, 1, 2, 255, 254]), { status: 203, etag: 'W/"weak"', ttl: 30 })
    await store.set('k1', entry, { ttl: 30 })
    const got = await store.get('k1')
    t.ok(got)
    t.equal(got?.status, 203)
    t.same(got?.headers, entry.headers)
    t.ok(got?.body.equals(entry.body))
    t.equal(got?.etag, 'W/"weak"')
    t.equal(got?.storedAt, entry.storedAt)
    t.equal(got?.ttl, 30)
  })

  t.test('an empty body survives', async (t) => {
    const store = await make(t)
    await store.set('empty', makeEntry(''), { ttl: 10 })
    t.equal((await store.get('empty'))?.body.length, 0)
  })

  t.test('set replaces an earlier entry under the same key', async (t) => {
    const store = await make(t)
    await store.set('k', makeEntry('one'), { ttl: 10 })
    await store.set('k', makeEntry('two'), { ttl: 10 })
    t.equal((await store.get('k'))?.body.toString(), 'two')
  })

  t.test('delete removes one key and says whether it was there', async (t) => {
    const store = await make(t)
    await store.set('a', makeEntry('a'), { ttl: 10 })
    await store.set('b', makeEntry('b'), { ttl: 10 })
    t.equal(await store.delete('a'), true)
    t.equal(await store.delete('a'), false)
    t.equal(await store.get('a'), undefined)
    t.equal((await store.get('b'))?.body.toString(), 'b')
  })

  t.test('an entry is gone once its store TTL has passed', async (t) => {
    const store = await make(t)
    await store.set('short', makeEntry('x'), { ttl: 0.05 })
    await store.set('long', makeEntry('y'), { ttl: 60 })
    await sleep(120)
    t.equal(await store.get('short'), undefined)
    t.equal((await store.get('long'))?.body.toString(), 'y')
  })

  t.test('invalidateTags drops exactly the tagged entries and counts them', async (t) => {
    const store = await make(t)
    await store.set('i1', makeEntry('1'), { ttl: 10, tags: ['item:1', 'items'] })
    await store.set('i2', makeEntry('2'), { ttl: 10, tags: ['item:2', 'items'] })
    await store.set('other', makeEntry('o'), { ttl: 10, tags: ['users'] })
    await store.set('untagged', makeEntry('u'), { ttl: 10 })
    t.equal(await store.invalidateTags(['item:1']), 1)
    t.equal(await store.get('i1'), undefined)
    t.ok(await store.get('i2'))
    t.equal(await store.invalidateTags(['items', 'nothing-has-this']), 1)
    t.equal(await store.get('i2'), undefined)
    t.ok(await store.get('other'))
    t.ok(await store.get('untagged'))
    t.equal(await store.invalidateTags([]), 0)
    t.equal(await store.invalidateTags(['items']), 0)
  })

  t.test('tags with glob and delimiter characters are matched literally', async (t) => {
    const store = await make(t)
    await store.set('g1', makeEntry('1'), { ttl: 10, tags: ['a*'] })
    await store.set('g2', makeEntry('2'), { ttl: 10, tags: ['ab'] })
    await store.set('g3', makeEntry('3'), { ttl: 10, tags: ['a:b{x}?'] })
    t.equal(await store.invalidateTags(['a*']), 1)
    t.ok(await store.get('g2'))
    t.equal(await store.invalidateTags(['a:b{x}']), 0)
    t.ok(await store.get('g3'))
  })

  t.test('an overwritten entry answers to its new tags (its old ones may drop it too, never less)', async (t) => {
    const store = await make(t)
    await store.set('k', makeEntry('old'), { ttl: 10, tags: ['old'] })
    await store.set('k', makeEntry('new'), { ttl: 10, tags: ['new'] })
    t.equal((await store.get('k'))?.body.toString(), 'new')
    t.ok(await store.invalidateTags(['old']) <= 1)
    await store.set('k', makeEntry('new'), { ttl: 10, tags: ['new'] })
    t.equal(await store.invalidateTags(['new']), 1)
    t.equal(await store.get('k'), undefined)
  })

  t.test('clear drops everything', async (t) => {
    const store = await make(t)
    await store.set('c1', makeEntry('1'), { ttl: 10, tags: ['t'] })
    await store.set('c2', makeEntry('2'), { ttl: 10 })
    await store.clear()
    t.equal(await store.get('c1'), undefined)
    t.equal(await store.get('c2'), undefined)
    t.equal(await store.invalidateTags(['t']), 0)
  })

  t.test('a lock is held until it expires by itself, and a write given its token releases it', async (t) => {
    const store = await make(t)
    const { lock, getOrLock } = store
    if (lock === undefined) {
      t.pass('no lock: the store is not shared across processes')
      return
    }
    const token = await lock.call(store, 'locked', 100)
    t.type(token, 'string')
    t.equal(await lock.call(store, 'locked', 100), undefined, 'held')
    // No owner releases it: it lapses after its 100 ms (the bound is only for a store that never lets go).
    t.ok(await eventually(async () => await lock.call(store, 'locked', 60_000) !== undefined), 'expired, and taken again')
    t.equal(await lock.call(store, 'locked', 100), undefined, 'held by the new taker')
    if (getOrLock === undefined) return
    const first = await getOrLock.call(store, 'cold', 100)
    t.type(first.token, 'string', 'a miss takes the lock')
    t.same(await getOrLock.call(store, 'cold', 100), {}, 'held: neither entry nor lock')
    t.ok(await eventually(async () => (await getOrLock.call(store, 'cold', 100)).token !== undefined), 'the lock a lookup took expires too')
    const owned = await getOrLock.call(store, 'warm', 60_000)
    await store.set('warm', makeEntry('w'), { ttl: 10, lockToken: owned.token })
    t.type(await lock.call(store, 'warm', 100), 'string', 'the write released the lock its token held')
    t.equal((await getOrLock.call(store, 'warm', 100)).entry?.body.toString(), 'w', 'a hit answers the entry')
  })

  t.test('an invalidation while writes are in flight leaves no entry its tags cannot drop', async (t) => {
    const store = await make(t)
    const keys = Array.from({ length: 20 }, (_, i) => `flying:${i}`)
    const writes = keys.map(async (key) => { await store.set(key, makeEntry(key), { ttl: 10, tags: ['flying'] }) })
    const dropped = await store.invalidateTags(['flying'])
    await Promise.all(writes)
    const left = await present(store, keys)
    t.equal(dropped + left, keys.length, `${dropped} written before the invalidation and dropped, ${left} written after it`)
    t.equal(await store.invalidateTags(['flying']), left, 'every entry left is in its tag set')
    t.equal(await present(store, keys), 0)
  })

  t.test('clear while writes are in flight leaves no entry its tags cannot drop', async (t) => {
    const store = await make(t)
    const keys = Array.from({ length: 20 }, (_, i) => `racing:${i}`)
    await store.set('before', makeEntry('b'), { ttl: 10, tags: ['racing'] })
    const writes = keys.map(async (key) => { await store.set(key, makeEntry(key), { ttl: 10, tags: ['racing'] }) })
    await Promise.all([...writes, store.clear()])
    t.equal(await store.get('before'), undefined, 'what was written before clear is gone')
    const left = await present(store, keys)
    // Redis: clear SCANs, then UNLINKs what it saw, tag sets included; a write landing in between
    // can lose its tag set. clear() also deletes the generation every entry is written under, at
    // its end as at its start, so such an entry is never answered.
    t.ok(await store.invalidateTags(['racing']) >= left, 'every entry left is in its tag set')
    t.equal(await present(store, keys), 0, 'none is left')
    await store.set('after', makeEntry('a'), { ttl: 10 })
    t.equal((await store.get('after'))?.body.toString(), 'a', 'a write after clear is kept')
  })

  t.test('index evicted: whatever eviction took, an invalidation leaves no entry it selects', async (t) => {
    const { evictIndex } = options
    if (evictIndex === undefined) {
      t.pass('the store never evicts')
      return
    }
    const store = await make(t)
    const keys = Array.from({ length: 12 }, (_, i) => `evicted:${i}`)
    for (const key of keys) await store.set(key, makeEntry(key), { ttl: 60, tags: [key, 'evicted'] })
    await evictIndex(store)
    const before = await present(store, keys)
    t.ok(before > 0, `${before} entries still answered: the invalidations below have something to drop`)
    for (const key of keys.slice(0, 6)) await store.invalidateTags([key])
    for (const key of keys.slice(0, 6)) t.equal(await store.get(key), undefined, `${key} dropped by its own tag`)
    await store.invalidateTags(['evicted'])
    t.equal(await present(store, keys), 0, 'none left after the tag they share')
  })

  t.test('keys with odd characters are kept apart', async (t) => {
    const store = await make(t)
    const keys = ['a:b', 'a*', 'a?', 'a\nb', 'a{b}', 'é', 'x'.repeat(2000)]
    for (const [i, key] of keys.entries()) await store.set(key, makeEntry(String(i)), { ttl: 10 })
    for (const [i, key] of keys.entries()) t.equal((await store.get(key))?.body.toString(), String(i), key.slice(0, 10))
  })
}

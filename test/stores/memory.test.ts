import t from 'tap'
import { ENTRY_OVERHEAD_BYTES, entrySize } from '../../lib/entry.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { makeEntry, storeContract } from './contract.js'

t.test('memory store contract', async (t) => {
  storeContract(t, () => new MemoryStore({ maxBytes: 1_048_576 }), {
    // The memory store evicts an entry with its index records (lru-cache's dispose): least recently
    // used first, so the first entries written go, and the rest must still answer to their tags.
    evictIndex: (store) => {
      const memory = store as MemoryStore
      for (let i = 0; memory.stats().evictions < 6; i++) memory.set(`filler:${i}`, makeEntry(Buffer.alloc(500)), { ttl: 60 })
    }
  })
})

t.test('bytes are bounded by maxBytes, least recently used first out', async (t) => {
  const store = new MemoryStore({ maxBytes: 10_000 })
  const body = Buffer.alloc(1000, 1)
  for (let i = 0; i < 50; i++) {
    store.set(`k${i}`, makeEntry(body), { ttl: 60, tags: ['all'] })
    if (i === 5) store.get('k0') // keep k0 recent
  }
  const stats = store.stats()
  t.ok(stats.bytes <= 10_000, `bytes ${stats.bytes}`)
  t.ok(stats.entries < 50)
  t.equal(stats.evictions, 50 - stats.entries)
  t.equal(store.get('k1'), undefined, 'oldest evicted')
  t.ok(store.get('k49'), 'newest kept')
  // The tag index forgets evicted keys: only live entries are counted.
  t.equal(store.invalidateTags(['all']), stats.entries)
})

t.test('accounting counts body, headers, key and tags', async (t) => {
  const entry = makeEntry(Buffer.alloc(500))
  const plain = entrySize('key', entry, undefined)
  t.equal(plain, ENTRY_OVERHEAD_BYTES + 3 + 500 + entry.etag.length + 'content-type'.length + 'text/plain'.length + 'x-multi'.length + 'a, b'.length)
  t.equal(entrySize('key', entry, ['tag']), plain + 6)
  const store = new MemoryStore({ maxBytes: 1_000_000 })
  store.set('key', entry, { ttl: 60 })
  t.equal(store.stats().bytes, plain)
})

t.test('an entry larger than maxBytes is not stored and leaves no tag behind', async (t) => {
  const store = new MemoryStore({ maxBytes: 2048 })
  store.set('big', makeEntry(Buffer.alloc(4096)), { ttl: 60, tags: ['t'] })
  t.equal(store.get('big'), undefined)
  t.equal(store.stats().entries, 0)
  t.equal(store.invalidateTags(['t']), 0)
})

t.test('a hundred thousand keys stay within maxBytes', async (t) => {
  const store = new MemoryStore({ maxBytes: 4 * 1024 * 1024 })
  const entry = makeEntry('x'.repeat(100))
  for (let i = 0; i < 100_000; i++) store.set(`rc:-:GET:%2Fitems:${i}`, entry, { ttl: 60 })
  t.ok(store.stats().bytes <= 4 * 1024 * 1024)
  t.ok(store.stats().evictions > 0)
})

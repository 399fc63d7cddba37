import t from 'tap'
import type { CacheEntry } from '../../lib/entry.js'
import type { CacheStore, StoreSetOptions } from '../../lib/stores/store.js'
import { cachedApp, counter } from '../helpers/app.js'
import { deferred } from '../helpers/events.js'
import { storeContract } from './contract.js'

/** One turn of the event loop: every call of this store is answered a turn later, as over a network. */
const later = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

/**
 * A custom store as an app might write one: a Map with expiry times and a tag index, every method
 * asynchronous, plus the optional locks of a store shared by several processes (here, several apps).
 */
class MapStore implements CacheStore {
  readonly name = 'map'
  readonly #entries = new Map<string, { entry: CacheEntry, expires: number }>()
  readonly #tags = new Map<string, Set<string>>()
  readonly #locks = new Map<string, { token: string, expires: number }>()
  #tokens = 0

  async get (key: string): Promise<CacheEntry | undefined> {
    await later()
    return this.#live(key)
  }

  async set (key: string, entry: CacheEntry, options: StoreSetOptions): Promise<void> {
    await later()
    this.#entries.set(key, { entry, expires: Date.now() + options.ttl * 1000 })
    for (const tag of options.tags ?? []) {
      let keys = this.#tags.get(tag)
      if (keys === undefined) this.#tags.set(tag, keys = new Set())
      keys.add(key)
    }
    if (options.lockToken !== undefined) this.#release(key, options.lockToken)
  }

  async delete (key: string): Promise<boolean> {
    await later()
    return this.#entries.delete(key)
  }

  async invalidateTags (tags: readonly string[]): Promise<number> {
    await later()
    let dropped = 0
    for (const tag of tags) {
      for (const key of this.#tags.get(tag) ?? []) if (this.#live(key) !== undefined && this.#entries.delete(key)) dropped++
      this.#tags.delete(tag)
    }
    return dropped
  }

  async clear (): Promise<void> {
    await later()
    this.#entries.clear()
    this.#tags.clear()
  }

  async lock (key: string, ttlMs: number): Promise<string | undefined> {
    await later()
    return this.#take(key, ttlMs)
  }

  async getOrLock (key: string, ttlMs: number): Promise<{ entry?: CacheEntry, token?: string }> {
    await later()
    const entry = this.#live(key)
    if (entry !== undefined) return { entry }
    const token = this.#take(key, ttlMs)
    return token === undefined ? {} : { token }
  }

  async unlock (key: string, token: string): Promise<void> {
    await later()
    this.#release(key, token)
  }

  #live (key: string): CacheEntry | undefined {
    const slot = this.#entries.get(key)
    if (slot === undefined) return undefined
    if (slot.expires > Date.now()) return slot.entry
    this.#entries.delete(key)
    return undefined
  }

  #take (key: string, ttlMs: number): string | undefined {
    const held = this.#locks.get(key)
    if (held !== undefined && held.expires > Date.now()) return undefined
    const token = String(++this.#tokens)
    this.#locks.set(key, { token, expires: Date.now() + ttlMs })
    return token
  }

  #release (key: string, token: string): void {
    if (this.#locks.get(key)?.token === token) this.#locks.delete(key)
  }
}

t.test('custom store contract', async (t) => {
  storeContract(t, () => new MapStore())
})

t.test('two apps on one custom store with locks compute a cold key once, and see each other\'s invalidations', async (t) => {
  const store = new MapStore()
  const runs = counter()
  const started = deferred()
  const finish = deferred()
  // A lookup that finds the key locked asks for the lock again (lock()), is refused, then polls.
  const refused = deferred()
  const lock = store.lock.bind(store)
  store.lock = async (key, ttlMs) => {
    const token = await lock(key, ttlMs)
    if (token === undefined) refused.resolve()
    return token
  }
  const apps = await Promise.all([0, 1].map(async () => {
    const app = await cachedApp(t, { store, timeout: 5000 })
    app.get('/items/:id', { config: { cache: { tags: ['items'] } } }, async () => {
      const run = runs.next()
      started.resolve()
      await finish.promise
      return { run }
    })
    return app
  }))
  const first = apps[0].inject('/items/1')
  await started.promise
  const second = apps[1].inject('/items/1')
  await refused.promise
  finish.resolve()
  t.same([(await first).headers['x-cache'], (await second).headers['x-cache']], ['MISS', 'HIT'])
  t.equal(runs.runs, 1, 'the handler ran once across both apps')
  t.equal(await apps[1].cache.invalidate({ tags: ['items'] }), 1)
  t.equal((await apps[0].inject('/items/1')).headers['x-cache'], 'MISS')
  t.equal(runs.runs, 2)
})

// The slow route with the plugin on a store that holds entries in a Map and answers every call one
// event-loop turn later (setImmediate), with no I/O: what any remote store costs at the least, so
// the Redis miss path can be read against it.
import Fastify from 'fastify'
import responseCache, { type CacheEntry, type CacheStore } from '../../dist/esm/index.js'
import { loadProduct } from './payload.js'
import { serve } from './serve.js'

const entries = new Map<string, CacheEntry>()
const nextTurn = async <T>(value: T): Promise<T> => await new Promise((resolve) => { setImmediate(() => { resolve(value) }) })
const store: CacheStore = {
  name: 'next-turn',
  get: async (key) => await nextTurn(entries.get(key)),
  set: async (key, entry) => { entries.set(key, entry); await nextTurn(undefined) },
  delete: async (key) => await nextTurn(entries.delete(key)),
  invalidateTags: async () => await nextTurn(0),
  clear: async () => { entries.clear() }
}

const app = Fastify()
await app.register(responseCache, { store, ttl: 3600 })
app.get('/product', { config: { cache: true } }, async () => await loadProduct())
await serve(app)

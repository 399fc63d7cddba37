import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import t from 'tap'
import type { EncryptionOptions } from '../../lib/stores/encryption-options.js'
import { SEALED_MAGIC } from '../../lib/stores/encryption.js'
import { createStore } from '../../lib/stores/index.js'
import type { CacheStore } from '../../lib/stores/store.js'
import type { TieredStore } from '../../lib/stores/tiered.js'
import { entryBytes } from '../../lib/stores/versions.js'
import { connect, evictIndexRecords, startRedis } from '../helpers/redis.js'
import { makeEntry, storeContract } from './contract.js'

type Tap = import('tap').Test

const server = await startRedis(t)
const client = await connect(t, server)
let namespaces = 0

/**
 * A tiered store as the plugin builds it, on the shared server with a namespace (and bus channel)
 * of its own; `localTtlMs` bounds how long the memory tier keeps an entry.
 */
async function makeStore (t: Tap, localTtlMs: number, encryption?: EncryptionOptions): Promise<CacheStore> {
  const { store } = createStore({
    store: 'tiered',
    redis: client,
    namespace: `tiered${++namespaces}`,
    memoryMaxBytes: 1_048_576,
    maxEntryBytes: 1_048_576,
    timeoutMs: 2000,
    localTtlMs,
    encryption
  }, Fastify())
  t.teardown(() => store.close?.())
  t.ok(await store.connect?.(2000), 'connected, bus subscribed')
  return store
}

/** Redis evicts index records; the memory tier keeps its own index. */
const evictIndex = async (store: CacheStore): Promise<void> => {
  await evictIndexRecords([client], (store as TieredStore).redisKey('').split(':')[0], /evicted%3A[6-8]$/)
}

t.test('tiered store contract', async (t) => {
  storeContract(t, async (t) => await makeStore(t, 60_000), { evictIndex })
})

// Above, the memory tier answers what this store wrote. Here it keeps entries 1 ms, so reads go to
// Redis and copy back into memory, as on an instance that did not write them; sealed, as with the
// plugin's `encryption`.
t.test('tiered store contract, memory tier kept 1 ms, entries sealed in Redis', async (t) => {
  const encryption = { keys: [{ id: 'k', key: randomBytes(32) }] }
  storeContract(t, async (t) => await makeStore(t, 1, encryption), { evictIndex })
})

t.test('with `encryption`, what the tiered store writes to Redis is sealed', async (t) => {
  const store = await makeStore(t, 60_000, { keys: [{ id: 'k', key: randomBytes(32) }] }) as TieredStore
  await store.set('k1', makeEntry('a body of its own'), { ttl: 10 })
  const bytes = entryBytes(await client.getBuffer(store.redisKey('k1')) as Buffer)
  t.equal(bytes[0], SEALED_MAGIC)
  t.notOk(bytes.includes('a body of its own'))
})

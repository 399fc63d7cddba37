import t from 'tap'
import { decodeEntry, encodeEntry } from '../../lib/entry.js'
import responseCache from '../../lib/index.js'
import { RedisStore, SHARDS } from '../../lib/stores/redis.js'
import { entryBytes, VERSIONED_MAGIC } from '../../lib/stores/versions.js'
import { logCapture } from '../helpers/app.js'
import { connect, evictIndexRecords, startRedis, writesSent } from '../helpers/redis.js'
import { makeEntry, storeContract } from './contract.js'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const server = await startRedis(t)
const client = await connect(t, server)
let namespaces = 0

/** A store on the shared server with a namespace of its own, so subtests never see each other. */
function makeStore (): RedisStore {
  return new RedisStore({ client, namespace: `ns${++namespaces}`, log: Fastify().log })
}

t.test('redis store contract', async (t) => {
  storeContract(t, () => makeStore(), {
    evictIndex: async (store) => { await evictIndexRecords([client], (store as RedisStore).redisKey('').split(':')[0], /evicted%3A[6-8]$/) }
  })
})

t.test('one Redis value per entry, binary behind its version header, with a TTL covering the stale windows', async (t) => {
  const store = makeStore()
  const ns = `ns${namespaces}`
  const entry = makeEntry('{"a":1}')
  await store.set(`${ns}:-:GET:%2Fa:hash`, entry, { ttl: 90 })
  const key = store.redisKey(`${ns}:-:GET:%2Fa:hash`)
  t.match(key, new RegExp(`^${ns}:\\{[0-9a-f]{2}\\}:-:GET:%2Fa:hash$`))
  const raw = await client.getBuffer(key) as Buffer
  t.equal(raw[0], VERSIONED_MAGIC)
  const names = raw.subarray(9, 9 + raw.readUInt32BE(5)).toString('latin1')
  t.match(names, new RegExp(`^\\x91.${ns}:\\{[0-9a-f]{2}\\}:gen$`), 'an untagged entry is written under its shard\'s generation only')
  t.ok(entryBytes(raw).equals(encodeEntry(entry)), 'the entry\'s own bytes follow the header')
  const ttl = await client.pttl(key)
  t.ok(ttl > 89_000 && ttl <= 90_000, `pttl ${ttl}`)

  // Through the plugin: the route's TTL plus the longer of its stale windows.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis: client, namespace: `${ns}app`, timeout: 2000 })
  app.get('/windows', { config: { cache: { ttl: 30, staleWhileRevalidate: 60, staleIfError: 20 } } }, async () => 'w')
  await app.inject('/windows')
  await writesSent()
  const [entryKey] = (await client.keys(`${ns}app:*`)).filter((k) => /:GET:/.test(k) && !k.includes(':lock:'))
  const stored = await client.pttl(entryKey)
  t.ok(stored > 89_000 && stored <= 90_000, `30 s fresh + 60 s stale-while-revalidate: pttl ${stored}`)
  const written = await client.getBuffer(entryKey)
  t.equal(written === null ? undefined : decodeEntry(entryBytes(written)).ttl, 30, 'the entry itself is fresh for 30 s')
})

t.test('tag sets and versions share the hash tag of their entries and outlive them', async (t) => {
  const store = makeStore()
  const ns = `ns${namespaces}`
  await store.set(`${ns}:-:GET:%2Fx:h1`, makeEntry('x'), { ttl: 30, tags: ['item:1'] })
  const keys = await client.keys(`${ns}:*`)
  t.equal(keys.length, 4, 'the entry, its tag set, the tag\'s version and the shard\'s generation')
  t.equal(new Set(keys.map((k) => /\{..\}/.exec(k)?.[0])).size, 1, 'all in one slot')
  for (const suffix of [':tag:item%3A1', ':ver:item%3A1']) {
    const key = keys.find((k) => k.endsWith(suffix)) as string
    t.ok(key, suffix)
    t.ok(await client.pttl(key) > 29_000, `${suffix} lives as long as the entry`)
  }
  t.equal(await client.pttl(keys.find((k) => k.endsWith(':gen')) as string), -1, 'the generation never expires')
  await store.set(`${ns}:-:GET:%2Fx:h1`, makeEntry('y'), { ttl: 5, tags: ['item:1'] })
  t.ok(await client.pttl(keys.find((k) => k.endsWith(':ver:item%3A1')) as string) > 29_000, 'a shorter entry never shortens a version')
})

/** Script calls the server has run so far (EVALSHA, and EVAL for a script it did not know yet). */
async function scriptCalls (): Promise<number> {
  const info = await client.info('commandstats')
  return [...info.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((sum, [, n]) => sum + Number(n), 0)
}

t.test('the writes of one event-loop turn go to Redis as one script call', async (t) => {
  const store = makeStore()
  const ns = `ns${namespaces}`
  await store.set(`${ns}:-:GET:%2F:warm`, makeEntry('w'), { ttl: 60, tags: ['w'] })
  const before = await scriptCalls()
  await Promise.all(Array.from({ length: 50 }, async (_, i) => { await store.set(`${ns}:-:GET:%2F:${i}`, makeEntry(`e${i}`), { ttl: 60, tags: [`t${i % 4}`] }) }))
  t.equal(await scriptCalls() - before, 1)
  for (let i = 0; i < 50; i += 7) t.equal((await store.get(`${ns}:-:GET:%2F:${i}`))?.body.toString(), `e${i}`)
  t.equal(await store.invalidateTags(['t1']), 13, 'every entry is in its tag set')
  const beforeMore = await scriptCalls()
  await Promise.all(Array.from({ length: 100 }, async (_, i) => { await store.set(`${ns}:-:GET:%2Fmore:${i}`, makeEntry('m'), { ttl: 60 }) }))
  t.equal(await scriptCalls() - beforeMore, 2, 'at most 64 entries to a call')
})

t.test('a tag set holding a foreign value fails its own entry only, which is not kept unindexed', async (t) => {
  const store = makeStore()
  const ns = `ns${namespaces}`
  await store.set(`${ns}:-:GET:%2F:probe`, makeEntry('p'), { ttl: 60, tags: ['bad'] })
  const badSet = (await client.keys(`${ns}:*:tag:bad`))[0]
  await client.del(badSet)
  await client.set(badSet, 'a string where a set belongs')
  const [bad, good] = await Promise.allSettled([
    store.set(`${ns}:-:GET:%2F:probe`, makeEntry('p2'), { ttl: 60, tags: ['bad'] }),
    store.set(`${ns}:-:GET:%2F:other`, makeEntry('o'), { ttl: 60, tags: ['good'] })
  ])
  t.equal(bad.status, 'rejected')
  t.match((bad as PromiseRejectedResult).reason, { code: 'FST_RESPONSE_CACHE_STORE_UNAVAILABLE' })
  t.equal(good.status, 'fulfilled')
  t.equal(await store.get(`${ns}:-:GET:%2F:probe`), undefined, 'the entry that could not be indexed is dropped')
  t.equal((await store.get(`${ns}:-:GET:%2F:other`))?.body.toString(), 'o')
})

t.test('a write batch that Redis refuses rejects every write in it', async (t) => {
  const lost = new Redis({ port: await server.getPort(), host: await server.getHost(), lazyConnect: true, enableOfflineQueue: false })
  const store = new RedisStore({ client: lost, namespace: 'refused', log: Fastify().log })
  await lost.connect()
  const writes = [store.set('refused:-:GET:%2F:a', makeEntry('a'), { ttl: 1 }), store.set('refused:-:GET:%2F:b', makeEntry('b'), { ttl: 1 })]
  lost.disconnect()
  const settled = await Promise.allSettled(writes)
  t.same(settled.map((s) => s.status), ['rejected', 'rejected'])
})

t.test('keys spread over the shards', async (t) => {
  const store = makeStore()
  const seen = new Set<string>()
  for (let i = 0; i < 400; i++) seen.add(/\{..\}/.exec(store.redisKey(`rc:-:GET:%2F:${i}`))?.[0] ?? '')
  t.equal(seen.size, SHARDS)
})

t.test('a corrupt or foreign value is a miss, logged once per key', async (t) => {
  const { lines, logger } = logCapture('warn')
  const store = new RedisStore({ client, namespace: 'corrupt', log: Fastify({ logger }).log })
  const key = 'corrupt:-:GET:%2F:h'
  await client.set(store.redisKey(key), 'not an entry')
  t.equal(await store.get(key), undefined)
  t.equal(await store.get(key), undefined)
  await client.set(store.redisKey(key), Buffer.from([VERSIONED_MAGIC, 0, 0, 1, 0, 0, 0, 0, 0]))
  t.equal(await store.get(key), undefined, 'a version header longer than its value is a miss')
  await client.del(store.redisKey(key))
  await client.sadd(store.redisKey(key), 'a set')
  t.equal(await store.get(key), undefined, 'WRONGTYPE is a miss too')
  const warnings = lines.filter((l) => l.msg === 'response cache: unreadable entry treated as a miss')
  t.equal(warnings.length, 1, 'one line for the key, however often it is read')
  t.match(warnings[0], { responseCache: { entry: /^[0-9a-f]{16}$/ } }, 'the entry named by a fingerprint')
  t.notMatch(JSON.stringify(warnings), /corrupt:|GET|%2F/, 'not by its key, which may hold a tenant or a query')
  await client.del(store.redisKey(key))
  await store.set(key, makeEntry('fixed'), { ttl: 10 })
  t.equal((await store.get(key))?.body.toString(), 'fixed', 'a new store overwrites it')
})

t.test('clear drops this namespace only, and never runs FLUSHDB', async (t) => {
  const mine = makeStore()
  const ns = `ns${namespaces}`
  for (let i = 0; i < 1200; i++) await mine.set(`${ns}:-:GET:%2F:${i}`, makeEntry('x'), { ttl: 60, tags: [`t${i % 3}`] })
  await client.set('other-app:key', 'keep')
  await client.set(`${ns}x:key`, 'keep too')
  await mine.clear()
  t.same(await client.keys(`${ns}:*`), [])
  t.equal(await client.get('other-app:key'), 'keep')
  t.equal(await client.get(`${ns}x:key`), 'keep too')
})

t.test('a client that is not ready fails at once instead of queueing', async (t) => {
  const offline = new Redis({ port: await server.getPort(), lazyConnect: true })
  const store = new RedisStore({ client: offline, namespace: 'off', log: Fastify().log })
  await t.rejects(store.get('off:-:GET:%2F:h'), { code: 'FST_RESPONSE_CACHE_STORE_UNAVAILABLE', message: /client is wait/ })
  await t.rejects(store.set('off:-:GET:%2F:h', makeEntry('x'), { ttl: 1 }), { code: 'FST_RESPONSE_CACHE_STORE_UNAVAILABLE' })
})

t.test('a tag set written to for ever sheds the members whose entries expired', async (t) => {
  const store = makeStore()
  const ns = `ns${namespaces}`
  // One shard, so every write lands in one set: keys chosen to share the first key's shard.
  const shardOf = (key: string): string => store.redisKey(key).slice(ns.length + 1, ns.length + 5)
  const first = `${ns}:-:GET:%2Fp:0`
  const keys: string[] = []
  for (let i = 0; keys.length < 401; i++) if (shardOf(`${ns}:-:GET:%2Fp:${i}`) === shardOf(first)) keys.push(`${ns}:-:GET:%2Fp:${i}`)
  // A long-lived entry keeps the set alive while the next 200 expire.
  await store.set(keys[400], makeEntry('long'), { ttl: 60, tags: ['route'] })
  // Written in one turn (a few script calls, well within their 50 ms), so none is pruned yet.
  await Promise.all(keys.slice(0, 200).map(async (key) => { await store.set(key, makeEntry('old'), { ttl: 0.05, tags: ['route'] }) }))
  await new Promise((resolve) => setTimeout(resolve, 100))
  const [setKey] = (await client.keys(`${ns}:*:tag:*`))
  t.equal(await client.scard(setKey), 201, 'the expired entries are still members')
  for (const key of keys.slice(200, 400)) await store.set(key, makeEntry('new'), { ttl: 60, tags: ['route'] })
  const members = await client.scard(setKey)
  t.ok(members < 301, `${members} members for 201 live entries: most of the 200 expired ones were pruned`)
  t.ok(members >= 201, 'no live entry was pruned')
  t.equal(await store.invalidateTags(['route']), 201)
})

t.test('with readTags, an entry read answers the store tags it was written under', async (t) => {
  const store = new RedisStore({ client, namespace: `ns${++namespaces}`, log: Fastify().log, readTags: true })
  const tags = ['g:t:item:1', 's:tAb:r:GET /items/:id', 'ünï 100% {x}']
  await store.set('k', makeEntry('x'), { ttl: 30, tags })
  const entry = await store.get('k')
  t.same([...(entry === undefined ? [] : store.tagsOf(entry) ?? [])].sort(), [...tags].sort())
  const plain = makeStore()
  await plain.set('k', makeEntry('x'), { ttl: 30, tags })
  const read = await plain.get('k')
  t.equal(read === undefined ? 'none' : plain.tagsOf(read), undefined, 'not read unless asked for')
})

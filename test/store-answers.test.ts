import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import responseCache from '../lib/index.js'
import { BODY_RAW, decodeEntry, encodeEntry, type CacheEntry } from '../lib/entry.js'
import { entryBytes } from '../lib/stores/versions.js'
import { counter, logCapture } from './helpers/app.js'
import { startRedis } from './helpers/redis.js'

// What a store answers is checked before it is sent (issue 24, point 3). Each test stores a good entry
// through the app, then writes a crafted value over it with its own Redis client, as anyone with
// write access to Redis could: the request that reads it is a MISS answered by the handler, whose
// answer replaces it, and the problem is logged once, at warn, without the key or header values.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
const raw = new Redis(url)
t.teardown(() => { raw.disconnect() })

type Tap = import('tap').Test
const UNREADABLE = 'response cache: unreadable entry treated as a miss'

async function itemsApp (t: Tap, namespace: string): Promise<{ app: FastifyInstance, runs: { runs: number }, lines: Array<Record<string, unknown>> }> {
  const { lines, logger } = logCapture('warn')
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  const app = Fastify({ logger })
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis, namespace })
  const runs = counter()
  app.get('/items/:id', { config: { cache: { ttl: 60 } } }, async (request) => ({ id: (request.params as { id: string }).id, run: runs.next() }))
  await app.ready()
  return { app, runs, lines }
}

/** The Redis key of the one entry the namespace holds (tag sets, locks, versions and generations left out). */
async function entryKey (namespace: string): Promise<string> {
  const keys: string[] = []
  for (const key of await raw.keys(`${namespace}:*`)) {
    if (await raw.type(key) === 'string' && !/:(lock|ver):|:gen$/.test(key)) keys.push(key)
  }
  if (keys.length !== 1) throw new Error(`expected one entry, found ${keys.length}`)
  return keys[0]
}

/** Writes `bytes` as the entry under `key`, behind the versions header the value has now (still current). */
async function overwrite (key: string, bytes: Buffer): Promise<void> {
  const value = await raw.getBuffer(key) as Buffer
  const header = value.subarray(0, value.length - entryBytes(value).length)
  await raw.set(key, Buffer.concat([header, bytes]), 'KEEPTTL')
}

async function storedEntry (key: string): Promise<CacheEntry> {
  return decodeEntry(entryBytes(await raw.getBuffer(key) as Buffer))
}

const cases: Array<[string, (entry: CacheEntry) => Buffer, RegExp]> = [
  ['status 0 (a value\'s) under a response key', (entry) => encodeEntry({ ...entry, status: 0 }), /^a value where a response was expected$/],
  ['a header name that is not a token', (entry) => encodeEntry({ ...entry, headers: { ...entry.headers, 'x bad': 'y' } }), /^a header name is not a lower-case HTTP token$/],
  ['a header value with CR LF', (entry) => encodeEntry({ ...entry, headers: { ...entry.headers, 'x-split': 'a\r\nset-cookie: s=1' } }), /^a header value holds a control character$/],
  ['a header value with NUL', (entry) => encodeEntry({ ...entry, headers: { ...entry.headers, 'x-nul': ['ok', 'a\u0000b'] } }), /^a header value holds a control character$/],
  ['a header the plugin never stores', (entry) => encodeEntry({ ...entry, headers: { ...entry.headers, 'transfer-encoding': 'chunked' } }), /^a header the cache never stores$/],
  ['status 101', (entry) => encodeEntry({ ...entry, status: 101 }), /^entry fields out of range$/],
  // lz4 inflates a block of zeros 255 times: 64 MiB from about 257 KiB.
  ['an lz4 body declaring 64 MiB', (entry) => encodeEntry({ ...entry, body: Buffer.alloc(64 * 1024 * 1024) }), /^a body of 67108864 bytes declared, over maxEntryBytes$/]
]

for (const [name, craft, problem] of cases) {
  t.test(`${name}: a miss logged once, and the handler's answer replaces it`, async (t) => {
    const namespace = 'answers-' + name.replace(/[^a-z0-9]+/gi, '-')
    const { app, runs, lines } = await itemsApp(t, namespace)
    t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
    t.equal((await app.inject('/items/1')).headers['x-cache'], 'HIT')
    const key = await entryKey(namespace)
    const crafted = craft(await storedEntry(key))
    for (const round of [1, 2]) {
      await overwrite(key, crafted)
      const miss = await app.inject('/items/1')
      t.equal(miss.statusCode, 200, `round ${round}: answered`)
      t.equal(miss.headers['x-cache'], 'MISS', `round ${round}: a miss`)
      t.same(miss.json(), { id: '1', run: 1 + round }, `round ${round}: by the handler`)
      const hit = await app.inject('/items/1')
      t.equal(hit.headers['x-cache'], 'HIT', `round ${round}: the handler's answer was stored over it`)
      t.same(hit.json(), { id: '1', run: 1 + round })
    }
    t.equal(runs.runs, 3)
    const unreadable = lines.filter((line) => line.msg === UNREADABLE)
    t.equal(unreadable.length, 1, 'logged once for the key')
    t.match(unreadable[0], { level: 40, responseCache: { entry: /^[0-9a-f]{16}$/, problem } })
    const logged = JSON.stringify(lines)
    t.notOk(logged.includes('items') || logged.includes(namespace), 'neither the key nor its parts')
    t.notOk(logged.includes('set-cookie') || logged.includes('chunked'), 'no header value')
  })
}

t.test('a versions header the lookup script cannot read is a miss that the next write overwrites', async (t) => {
  const namespace = 'answers-versions'
  const { app, runs, lines } = await itemsApp(t, namespace)
  await app.inject('/items/1')
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'HIT')
  const key = await entryKey(namespace)
  const value = await raw.getBuffer(key) as Buffer
  const names = 9 + value.readUInt32BE(5)
  for (const [round, broken] of [
    // The names are no MessagePack array: 0xc1 is a byte MessagePack never uses.
    [1, Buffer.concat([value.subarray(0, 9), Buffer.alloc(names - 9, 0xc1), value.subarray(names)])],
    // An empty list of names: MGET of no keys, an error the script catches.
    [2, (() => {
      const header = Buffer.from([0xF1, 0, 0, 0, 11, 0, 0, 0, 1, 0x90, 0x90])
      return Buffer.concat([header, entryBytes(value)])
    })()]
  ] as const) {
    await raw.set(key, broken, 'KEEPTTL')
    const miss = await app.inject('/items/1')
    t.equal(miss.headers['x-cache'], 'MISS', `round ${round}: a miss, not a bypass`)
    t.same(miss.json(), { id: '1', run: 1 + round })
    t.equal((await app.inject('/items/1')).headers['x-cache'], 'HIT', `round ${round}: and stored over it`)
  }
  t.equal(runs.runs, 3)
  t.same(lines.filter((line) => line.msg !== UNREADABLE), [], 'no store trouble logged')
})

t.test('app.cache: a crafted value is a miss, and wrap stores its own over it', async (t) => {
  const namespace = 'answers-values'
  const { app, lines } = await itemsApp(t, namespace)
  t.equal(await app.cache.set('profile:7', { name: 'Ann' }), true)
  const key = await entryKey(namespace)
  const good = await storedEntry(key)
  for (const [round, crafted] of [
    [1, encodeEntry({ ...good, body: Buffer.from([0xc1, 0xc1]) })],
    [2, encodeEntry({ ...good, body: Buffer.alloc(64 * 1024 * 1024) })],
    [3, encodeEntry({ ...good, status: 200 })]
  ] as const) {
    await overwrite(key, crafted)
    t.equal(await app.cache.get('profile:7'), undefined, `round ${round}: a miss`)
    t.same(await app.cache.wrap('profile:7', () => ({ name: 'Bob' + round })), { name: 'Bob' + round }, `round ${round}: wrap runs its function`)
    t.same(await app.cache.get('profile:7'), { name: 'Bob' + round }, `round ${round}: and its value replaced the crafted one`)
  }
  t.ok(lines.every((line) => line.level === 40 && /unreadable (entry|value) treated as a miss/.test(line.msg as string)), 'only unreadable lines')
})

t.test('the lz4 size check comes before inflating: a declared size over the bound is named, not inflated', async (t) => {
  const entry = makeTiny()
  const bomb = encodeEntry({ ...entry, body: Buffer.alloc(8 * 1024 * 1024) })
  // The block's own size prefix says 64 MiB, the entry says 8: refused for either.
  const lying = Buffer.from(bomb)
  lying.writeUInt32LE(64 * 1024 * 1024, lying.length - lz4Length(bomb))
  t.throws(() => decodeEntry(bomb, 1024 * 1024), { name: 'CorruptEntryError', message: 'a body of 8388608 bytes declared, over maxEntryBytes' })
  t.throws(() => decodeEntry(lying, 16 * 1024 * 1024), { name: 'CorruptEntryError', message: 'the lz4 block declares 67108864 bytes, the entry 8388608' })
  t.equal(decodeEntry(bomb, 8 * 1024 * 1024).body.length, 8 * 1024 * 1024, 'at the bound: read')
})

function makeTiny (): CacheEntry {
  return { status: 200, headers: {}, body: Buffer.alloc(0), storedAt: Date.now(), ttl: 60, etag: '' }
}

/** Bytes of the lz4 block at the end of an encoded entry with no headers, etag or request line. */
function lz4Length (encoded: Buffer): number {
  return encoded.length - (24 + 9 + 2 + 4 + 2)
}

t.test('a value larger than maxEntryBytes is stored and read back (raw: only bodies within it are compressed)', async (t) => {
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis, namespace: 'answers-large', maxEntryBytes: 4096 })
  await app.ready()
  const list = Array.from({ length: 2000 }, (_, i) => ({ id: i, name: 'the same words again' }))
  t.equal(await app.cache.set('list', list), true)
  t.same(await app.cache.get('list'), list)
  t.equal((entryBytes(await raw.getBuffer(await entryKey('answers-large')) as Buffer))[1], BODY_RAW, 'stored raw')
})

t.test('a custom store: what it answers is checked whole, and a bad answer is a miss logged once', async (t) => {
  const { lines, logger } = logCapture('warn')
  const answers = new Map<string, unknown>()
  let crafted: { answer: unknown } | undefined
  const store = {
    name: 'custom',
    // The crafted answer once, then what was stored.
    get: async (key: string) => {
      const answer = crafted === undefined ? answers.get(key) : crafted.answer
      crafted = undefined
      return answer as CacheEntry | undefined
    },
    set: async (key: string, entry: CacheEntry) => { answers.set(key, entry) },
    delete: async () => false,
    invalidateTags: async () => 0,
    clear: async () => {}
  }
  const app = Fastify({ logger })
  t.teardown(() => app.close())
  await app.register(responseCache, { store })
  const runs = counter()
  app.get('/items/:id', { config: { cache: { ttl: 60 } } }, async () => ({ run: runs.next() }))
  await app.ready()
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  const good = [...answers.values()][0] as CacheEntry
  // An entry is answered from the process that wrote it until a turn after its write landed.
  const landed = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
  for (const bad of [
    { ...good, headers: { ...good.headers, 'x-split': 'a\r\nb' } },
    { ...good, status: 0 },
    { ...good, status: '200' },
    'not an entry',
    null
  ]) {
    await landed()
    crafted = { answer: bad }
    const miss = await app.inject('/items/1')
    t.equal(miss.statusCode, 200)
    t.equal(miss.headers['x-cache'], 'MISS', JSON.stringify(bad)?.slice(0, 40) ?? 'null')
    t.equal((await app.inject('/items/1')).headers['x-cache'], 'HIT', 'and stored over')
  }
  t.equal(runs.runs, 6)
  t.same(lines.filter((line) => line.msg === UNREADABLE).map((line) => (line.responseCache as { problem: string }).problem), [
    'a header value holds a control character'
  ], 'once for the key')
})

t.test('tiered: a value set on one instance is read on another (from Redis), and a value under a response key is a miss', async (t) => {
  const apps: FastifyInstance[] = []
  const runs = counter()
  for (let i = 0; i < 2; i++) {
    const redis = new Redis(url)
    t.teardown(() => { redis.disconnect() })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(responseCache, { store: 'tiered', redis, namespace: 'answers-tiered' })
    app.get('/items/:id', { config: { cache: { ttl: 60 } } }, async () => ({ run: runs.next() }))
    await app.ready()
    apps.push(app)
  }
  t.equal(await apps[0].cache.set('profile:7', { name: 'Ann' }), true)
  t.same(await apps[1].cache.get('profile:7'), { name: 'Ann' })

  t.equal((await apps[0].inject('/items/1')).headers['x-cache'], 'MISS')
  // A listing waits for the writes on their way to Redis.
  t.equal((await apps[0].cache.list({ route: '/items/:id' }))?.entries.length, 1)
  const key = (await raw.keys('answers-tiered:*')).find((name) => name.includes(':GET:')) as string
  await overwrite(key, encodeEntry({ ...await storedEntry(key), status: 0 }))
  const miss = await apps[1].inject('/items/1')
  t.equal(miss.statusCode, 200)
  t.equal(miss.headers['x-cache'], 'MISS', 'the other instance reads it from Redis: a miss')
  t.same(miss.json(), { run: 2 })
})

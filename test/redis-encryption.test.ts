import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { counter, logCapture } from './helpers/app.js'
import { startRedis } from './helpers/redis.js'
import { SEALED_MAGIC } from '../lib/stores/encryption.js'
import { entryBytes } from '../lib/stores/versions.js'

// Written as the README shows: a client from `new Redis(url)` and keys from the environment
// (base64), the first key sealing and every key listed opening.

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`
const raw = new Redis(url)
t.teardown(() => { raw.disconnect() })

const RECORD = 'patient Jane Roe, born 1961-04-09, diagnosis: hypertension stage 2'
const oldKey = randomBytes(32).toString('base64')
const newKey = randomBytes(32).toString('base64')
type Tap = import('tap').Test

async function patientsApp (t: Tap, options: Partial<ResponseCacheOptions>, logger: ReturnType<typeof logCapture>['logger'] = false): Promise<{ app: FastifyInstance, runs: { runs: number } }> {
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  const app = Fastify({ logger })
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis, ...options })
  const runs = counter()
  app.get('/patients/:id', { config: { cache: { ttl: 60 } } }, async (request) => ({ id: (request.params as { id: string }).id, record: RECORD, run: runs.next() }))
  await app.ready()
  return { app, runs }
}

const xCache = async (app: FastifyInstance, path: string): Promise<unknown> => (await app.inject(path)).headers['x-cache']

/**
 * Every entry the namespace holds in Redis, by key, past the versions header in front of it (tag sets,
 * locks, version and generation keys left out).
 */
async function storedValues (namespace: string): Promise<Map<string, Buffer>> {
  const values = new Map<string, Buffer>()
  for (const key of await raw.keys(`${namespace}:*`)) {
    if (await raw.type(key) !== 'string' || /:(lock|ver):|:gen$/.test(key)) continue
    values.set(key, entryBytes(await raw.getBuffer(key) as Buffer))
  }
  return values
}

/** Stores `path` (a MISS, then a HIT that proves the write landed) and answers its entry's Redis key. */
async function store (t: Tap, app: FastifyInstance, namespace: string, path: string): Promise<string> {
  const before = new Set((await storedValues(namespace)).keys())
  t.equal(await xCache(app, path), 'MISS')
  t.equal(await xCache(app, path), 'HIT')
  return [...(await storedValues(namespace)).keys()].find((key) => !before.has(key)) as string
}

/** Whether any 6 bytes in a row of `text` appear in `bytes`. */
function holdsPartOf (bytes: Buffer, text: string): boolean {
  for (let i = 0; i + 6 <= text.length; i++) if (bytes.includes(text.slice(i, i + 6))) return true
  return false
}

t.test('the bytes in Redis hold no part of a body or a value, and both read back', async (t) => {
  const { app, runs } = await patientsApp(t, { namespace: 'sealed', encryption: { keys: [{ id: '2026-11', key: oldKey }] } })
  t.equal(await xCache(app, '/patients/7'), 'MISS')
  const hit = await app.inject('/patients/7')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.json().record, RECORD)
  t.equal(runs.runs, 1)
  t.equal(await app.cache.set('prescription:7', { drug: 'lisinopril 10 mg', patient: 'Jane Roe' }), true)
  t.same(await app.cache.get('prescription:7'), { drug: 'lisinopril 10 mg', patient: 'Jane Roe' })

  const values = await storedValues('sealed')
  t.equal(values.size, 2, 'the response entry and the value')
  for (const [key, bytes] of values) {
    t.equal(bytes[0], SEALED_MAGIC, `${key} is sealed`)
    t.equal(bytes.subarray(2, 2 + bytes[1]).toString(), '2026-11', 'under the key id it names')
    t.notOk(holdsPartOf(bytes, RECORD), 'no 6 bytes of the body')
    t.notOk(holdsPartOf(bytes, 'lisinopril 10 mg') || holdsPartOf(bytes, 'Jane Roe'), 'no 6 bytes of the value')
    t.notOk(holdsPartOf(bytes, 'application/json'), 'nor of the headers')
  }
})

t.test('rotation: the old key still opens, the new key seals, and a key no longer listed is a miss logged once', async (t) => {
  const before = await patientsApp(t, { namespace: 'rotate', encryption: { keys: [{ id: 'old', key: oldKey }] } })
  await store(t, before.app, 'rotate', '/patients/1')

  const during = await patientsApp(t, { namespace: 'rotate', encryption: { keys: [{ id: 'new', key: newKey }, { id: 'old', key: oldKey }] } })
  t.equal(await xCache(during.app, '/patients/1'), 'HIT', 'an entry sealed with the old key still opens')
  await store(t, during.app, 'rotate', '/patients/2')
  const ids = [...(await storedValues('rotate')).values()].map((bytes) => bytes.subarray(2, 2 + bytes[1]).toString()).sort()
  t.same(ids, ['new', 'old'], 'new entries are sealed with the first key')

  const { lines, logger } = logCapture('warn')
  const after = await patientsApp(t, { namespace: 'rotate', encryption: { keys: [{ id: 'new', key: newKey }] } }, logger)
  t.equal(await xCache(after.app, '/patients/2'), 'HIT')
  t.equal(await xCache(after.app, '/patients/1'), 'MISS', 'sealed with a key no longer listed')
  t.equal(await xCache(after.app, '/patients/1'), 'HIT', 'and stored anew with the new key')
  const unreadable = lines.filter((line) => line.msg === 'response cache: unreadable entry treated as a miss')
  t.equal(unreadable.length, 1)
  t.match(unreadable[0], { responseCache: { problem: 'sealed with key "old", which is not in the keyring' } })
  const logged = JSON.stringify(lines)
  for (const key of [oldKey, newKey]) {
    t.notOk(logged.includes(key) || logged.includes(Buffer.from(key, 'base64').toString('hex')), 'no key material in the log')
  }
})

t.test('a flipped byte, an entry moved under another key, and a plaintext entry are misses', async (t) => {
  const { lines, logger } = logCapture('warn')
  const { app, runs } = await patientsApp(t, { namespace: 'tamper', encryption: { keys: [{ id: 'k', key: oldKey }] } }, logger)
  const [one, two, three] = [await store(t, app, 'tamper', '/patients/1'), await store(t, app, 'tamper', '/patients/2'), await store(t, app, 'tamper', '/patients/3')]
  const flipped = await raw.getBuffer(one) as Buffer
  // A byte of the ciphertext, well past the versions header and the sealing header.
  flipped[flipped.length - 20] ^= 0x01
  await raw.set(one, flipped, 'EX', 60)
  await raw.set(two, await raw.getBuffer(three) as Buffer, 'EX', 60)
  await raw.del(three)
  const plain = await patientsApp(t, { namespace: 'tamper' })
  t.equal(await store(t, plain.app, 'tamper', '/patients/3'), three, 'a plaintext entry where the sealed one was')

  t.equal(runs.runs, 3)
  for (const id of ['1', '2', '3']) {
    const r = await app.inject(`/patients/${id}`)
    t.equal(r.headers['x-cache'], 'MISS', `/patients/${id}`)
    t.equal(r.json().id, id, 'answered by the handler')
  }
  t.equal(runs.runs, 6)
  t.same(lines.filter((line) => line.msg === 'response cache: unreadable entry treated as a miss').map((line) => (line.responseCache as { problem: string }).problem), [
    'sealed value does not authenticate under key "k" (altered, or stored under another key)',
    'sealed value does not authenticate under key "k" (altered, or stored under another key)',
    'value is not sealed (no encryption header)'
  ])
})

t.test('an app without the option reads a sealed entry as a miss, not as garbage', async (t) => {
  const sealed = await patientsApp(t, { namespace: 'mixed', encryption: { keys: [{ id: 'k', key: oldKey }] } })
  await sealed.app.inject('/patients/1')
  const plain = await patientsApp(t, { namespace: 'mixed' })
  const r = await plain.app.inject('/patients/1')
  t.equal(r.headers['x-cache'], 'MISS')
  t.equal(r.json().record, RECORD)
})

t.test('a bad key fails ready() naming the option, and never shows the key', async (t) => {
  const short = randomBytes(16).toString('base64')
  for (const [encryption, message] of [
    [{ keys: [{ id: 'k', key: short }] }, 'key "k" must be 32 bytes (got 16)'],
    [{ keys: [] }, 'expected { keys: [{ id, key }] } with at least one key'],
    [{ keys: [{ id: oldKey, key: oldKey }] }, 'keys[0].id must be 1 to 32 characters of A-Z a-z 0-9 _ - .'],
    [oldKey, 'expected { keys: [{ id, key }] } with at least one key']
  ] as const) {
    const app = Fastify()
    app.register(responseCache, { store: 'redis', redis: raw, encryption: encryption as unknown as ResponseCacheOptions['encryption'] })
    const error = await app.ready().then(() => undefined, (error: Error) => error)
    t.equal(error?.message, `fastify-response-cache: invalid option "encryption": ${message}`)
    t.notOk(error?.message.includes(short) || error?.message.includes(oldKey), 'the key is not in the message')
    await app.close()
  }
  const custom = Fastify()
  custom.register(responseCache, { store: { get () {}, set () {}, delete () {}, invalidateTags () {}, clear () {} } as never, encryption: { keys: [{ id: 'k', key: oldKey }] } })
  await t.rejects(async () => { await custom.ready() }, { message: /"encryption": applies to store 'redis'/ })
  await custom.close()
})

t.test('the memory store is unaffected; stats and health hold no key material', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { encryption: { keys: [{ id: 'k', key: oldKey }] }, statsRoute: true })
  app.get('/x', { config: { cache: true } }, async () => RECORD)
  await app.ready()
  await app.inject('/x')
  t.equal(await xCache(app, '/x'), 'HIT')
  const shown = JSON.stringify([app.cache.stats(), await app.cache.health(), (await app.inject('/cache/stats')).json()])
  t.notOk(shown.includes(oldKey) || shown.includes(Buffer.from(oldKey, 'base64').toString('hex')))
})

t.test('replay: an old sealed entry behind the versions of a newer one is a miss, and so is the old entry whole', async (t) => {
  // Issue 24, point 8: with write access to Redis, an old sealed entry (saved before an invalidation)
  // is put back behind the versions header of the entry computed since. The header is outside the
  // seal; the seal binds it, so the old entry does not open.
  const { lines, logger } = logCapture('warn')
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  const app = Fastify({ logger })
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis, namespace: 'replay', encryption: { keys: [{ id: 'k', key: oldKey }] } })
  const runs = counter()
  app.get('/balance', { config: { cache: { ttl: 60, tags: ['balance'] } } }, async () => ({ n: runs.next() }))
  await app.ready()
  const body = async (): Promise<[unknown, unknown]> => {
    const r = await app.inject('/balance')
    return [r.headers['x-cache'], r.json().n]
  }

  // A listing waits for the writes on their way; a turn later, a hit is read from Redis (and opened).
  const landed = async (): Promise<void> => {
    await app.cache.list({ tag: 'balance' })
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.same(await body(), ['MISS', 1])
  await landed()
  t.same(await body(), ['HIT', 1], 'read from Redis: the store keeps what it opened')
  // The response's entry (the listing keeps a secret of its own beside it).
  const key = [...(await storedValues('replay')).keys()].find((name) => name.includes(':GET:')) as string
  const old = await raw.getBuffer(key) as Buffer
  t.equal(await app.cache.invalidate({ tags: ['balance'] }), 1)
  t.same(await body(), ['MISS', 2], 'recomputed after the invalidation')
  await landed()
  const current = await raw.getBuffer(key) as Buffer

  const header = current.subarray(0, current.length - entryBytes(current).length)
  await raw.set(key, Buffer.concat([header, entryBytes(old)]), 'KEEPTTL')
  t.same(await body(), ['MISS', 3], 'the old seal behind current versions does not open (nor is it taken for the one opened before)')
  t.same(await body(), ['HIT', 3], 'and the handler\'s answer replaced it')

  await raw.set(key, old, 'KEEPTTL')
  t.same(await body(), ['MISS', 4], 'the old entry whole: its versions are not current')
  t.same(await body(), ['HIT', 4])
  t.same(lines.map((line) => (line.responseCache as { problem?: string } | undefined)?.problem), [
    'sealed value does not authenticate under key "k" (altered, or stored under another key)'
  ])
})

t.test('an entry is stored when its versions moved since this process last saw them (another instance invalidated)', async (t) => {
  const one = await patientsApp(t, { namespace: 'moved', encryption: { keys: [{ id: 'k', key: oldKey }] } })
  const other = await patientsApp(t, { namespace: 'moved', encryption: { keys: [{ id: 'k', key: oldKey }] } })
  await store(t, one.app, 'moved', '/patients/1')
  t.equal(await xCache(other.app, '/patients/1'), 'HIT', 'the other instance reads it')
  t.equal(await other.app.cache.invalidate({ route: '/patients/:id' }), 1)
  // The first instance last saw a route version that is gone: its write is sealed again for the new one.
  t.equal(await xCache(one.app, '/patients/1'), 'MISS')
  t.same((await one.app.cache.list({ route: '/patients/:id' }))?.entries.length, 1, 'stored')
  t.equal(await xCache(other.app, '/patients/1'), 'HIT', 'and opens')
  t.equal(one.runs.runs + other.runs.runs, 2)
})

t.test('an entry sealed by an earlier release (format 1) is a miss, logged at debug only, and sealed anew', async (t) => {
  const { lines, logger } = logCapture('debug')
  const { app } = await patientsApp(t, { namespace: 'format1', encryption: { keys: [{ id: 'k', key: oldKey }] } }, logger)
  const key = await store(t, app, 'format1', '/patients/1')
  const value = await raw.getBuffer(key) as Buffer
  const sealed = Buffer.from(entryBytes(value))
  sealed[0] = 0xE1
  await raw.set(key, Buffer.concat([value.subarray(0, value.length - sealed.length), sealed]), 'KEEPTTL')
  t.equal(await xCache(app, '/patients/1'), 'MISS')
  t.equal(await xCache(app, '/patients/1'), 'HIT')
  t.same(lines.filter((line) => (line.level as number) >= 40), [], 'no warning')
  t.ok(lines.some((line) => line.msg === 'response cache: entry sealed by an earlier release treated as a miss'))
})

t.test('with a client keyPrefix, the versions a sealed entry is bound to are named as Redis holds them', async (t) => {
  const redis = new Redis(url, { keyPrefix: 'tenant-a:' })
  t.teardown(() => { redis.disconnect() })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache, { store: 'redis', redis, namespace: 'prefixed', encryption: { keys: [{ id: 'k', key: oldKey }] } })
  const runs = counter()
  app.get('/patients/:id', { config: { cache: { ttl: 60 } } }, async () => ({ run: runs.next() }))
  await app.ready()
  t.equal(await xCache(app, '/patients/1'), 'MISS')
  // Written and read back from Redis (not from the process that wrote it): the seal opens.
  t.same((await app.cache.list({ route: '/patients/:id' }))?.entries.length, 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(await xCache(app, '/patients/1'), 'HIT')
  t.ok((await raw.keys('tenant-a:prefixed:*')).length > 0, 'under the prefix')
  t.equal(runs.runs, 1)
})

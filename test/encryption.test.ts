import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import t from 'tap'
import { ENTRY_FORMAT_VERSION, decodeEntry, encodeEntry } from '../lib/entry.js'
import { IV_BYTES, Keyring, SEALED_MAGIC, SealedEntryError, TAG_BYTES } from '../lib/stores/encryption.js'
import { checkEncryptionOption, type EncryptionKey } from '../lib/stores/encryption-options.js'
import { makeEntry } from './stores/contract.js'

const KEY_1 = Buffer.alloc(32, 0x11)
const KEY_2 = Buffer.from(Array.from({ length: 32 }, (_, i) => 0xa0 + i))
const REDIS_KEY = 'rc:{0a}:-:GET:%2Fpatients%2F%3Aid:hash'

// A body that lz4 does not shrink by a tenth and stays under COMPRESS_MIN_BYTES: stored as is, so the
// plaintext entry holds it byte for byte.
const SECRET = 'Patient Jane Q. Example, born 1970-01-01, prescription: 40 mg atorvastatin daily, HbA1c 7.9%. '
const body = Buffer.from(SECRET.repeat(5))

/** Every text form a key may take, so a test can look for any of them. */
function forms (key: Buffer): string[] {
  return [key.toString('hex'), key.toString('hex').toUpperCase(), key.toString('base64'), key.toString('base64url'), key.toString('latin1')]
}

/** The 8-character windows of every form of `key` that appear in `text`. */
function leaks (text: string, key: Buffer): string[] {
  const found: string[] = []
  for (const form of forms(key)) {
    for (let i = 0; i + 8 <= form.length; i++) if (text.includes(form.slice(i, i + 8))) found.push(form.slice(i, i + 8))
  }
  return found
}

const errorOf = (fn: () => unknown): SealedEntryError => {
  try {
    fn()
  } catch (error) {
    if (error instanceof SealedEntryError) return error
    throw error
  }
  throw new Error('did not throw')
}

t.test('entries from encodeEntry open to the same bytes and decode to the same entry', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] })
  const json = Buffer.from(JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ id: i, name: 'repeated' }))))
  for (const entry of [makeEntry(body), makeEntry(Buffer.alloc(0)), makeEntry(json), makeEntry(randomBytes(70_000), { status: 404 })]) {
    const plain = encodeEntry(entry)
    const sealed = ring.seal(plain, REDIS_KEY)
    t.equal(sealed.length, plain.length + 2 + 2 + IV_BYTES + TAG_BYTES, 'magic, id length, id "k1", IV, ciphertext, tag')
    t.equal(sealed[0], SEALED_MAGIC)
    t.ok(ring.open(sealed, REDIS_KEY).equals(plain))
    t.ok(ring.open(sealed, Buffer.from(REDIS_KEY)).equals(plain), 'a string aad and its UTF-8 bytes are the same aad')
    t.ok(ring.open(ring.seal(plain, Buffer.from(REDIS_KEY)), REDIS_KEY).equals(plain), 'either way round')
    const decoded = decodeEntry(ring.open(sealed, REDIS_KEY))
    t.ok(decoded.body.equals(entry.body))
    t.same({ ...decoded, body: undefined }, { ...entry, body: undefined })
  }
})

t.test('the sealed bytes hold no part of the plaintext entry', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] })
  const plain = encodeEntry(makeEntry(body))
  t.ok(plain.includes(Buffer.from(SECRET)), 'the plaintext entry holds the body as is (else this test proves nothing)')
  const sealed = ring.seal(plain, REDIS_KEY)
  const found: number[] = []
  for (let i = 0; i + 8 <= plain.length; i++) if (sealed.includes(plain.subarray(i, i + 8))) found.push(i)
  t.same(found, [], 'no 8-byte window of the plaintext entry appears in the sealed value')
})

t.test('every seal draws a new IV', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] })
  const plain = encodeEntry(makeEntry(body))
  const ivs = new Set<string>()
  const ciphertexts = new Set<string>()
  for (let i = 0; i < 1000; i++) {
    const sealed = ring.seal(plain, REDIS_KEY)
    ivs.add(sealed.toString('hex', 4, 4 + IV_BYTES))
    ciphertexts.add(sealed.toString('hex', 4 + IV_BYTES))
  }
  t.equal(ivs.size, 1000)
  t.equal(ciphertexts.size, 1000, 'one plaintext sealed twice never gives the same bytes')
  const other = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] }).seal(plain, REDIS_KEY)
  t.notOk(ivs.has(other.toString('hex', 4, 4 + IV_BYTES)), 'another keyring (another process) draws its own IVs')
})

t.test('rotation: the first key seals, every listed key opens', async (t) => {
  const plain = encodeEntry(makeEntry(body))
  const before = new Keyring({ keys: [{ id: 'old', key: KEY_1 }] })
  const sealedOld = before.seal(plain, REDIS_KEY)
  const after = new Keyring({ keys: [{ id: 'new', key: KEY_2 }, { id: 'old', key: KEY_1 }] })
  t.ok(after.open(sealedOld, REDIS_KEY).equals(plain), 'a value sealed before the rotation still opens')
  t.equal(after.currentKeyId, 'new')
  t.same(after.keyIds, ['new', 'old'])
  const sealedNew = after.seal(plain, REDIS_KEY)
  t.equal(sealedNew.toString('latin1', 2, 2 + sealedNew[1]), 'new', 'new values carry the new key id')
  t.ok(after.open(sealedNew, REDIS_KEY).equals(plain))
  const fromOld = errorOf(() => before.open(sealedNew, REDIS_KEY))
  t.equal(fromOld.reason, 'unknown-key', 'a process that has not rotated yet does not have the new key')

  const retired = new Keyring({ keys: [{ id: 'new', key: KEY_2 }] })
  const error = errorOf(() => retired.open(sealedOld, REDIS_KEY))
  t.equal(error.reason, 'unknown-key', 'a key no longer listed opens nothing')
  t.equal(error.keyId, 'old')
  t.equal(error.message, 'sealed with key "old", which is not in the keyring')
  t.ok(retired.open(sealedNew, REDIS_KEY).equals(plain))
})

t.test('a listed id with other key bytes does not authenticate', async (t) => {
  const sealed = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] }).seal(encodeEntry(makeEntry(body)), REDIS_KEY)
  const error = errorOf(() => new Keyring({ keys: [{ id: 'k1', key: KEY_2 }] }).open(sealed, REDIS_KEY))
  t.equal(error.reason, 'authentication')
  t.equal(error.keyId, 'k1')
  t.equal(error.name, 'SealedEntryError')
  t.match(error.message, /does not authenticate under key "k1"/)
})

t.test('a changed bit anywhere, or any truncation, is SealedEntryError', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] })
  const plain = encodeEntry(makeEntry('ok', { headers: {} }))
  const sealed = ring.seal(plain, REDIS_KEY)
  const reasons = new Set<string>()
  for (let at = 0; at < sealed.length; at++) {
    for (const mask of [0x01, 0x80]) {
      const altered = Buffer.from(sealed)
      altered[at] ^= mask
      const error = errorOf(() => ring.open(altered, REDIS_KEY))
      t.ok(error instanceof SealedEntryError, `byte ${at} ^ ${mask}: ${error.reason}`)
      reasons.add(error.reason)
    }
  }
  for (let length = 0; length < sealed.length; length++) {
    const error = errorOf(() => ring.open(sealed.subarray(0, length), REDIS_KEY))
    t.ok(error instanceof SealedEntryError, `cut to ${length} bytes: ${error.reason}`)
    reasons.add(error.reason)
  }
  t.same([...reasons].sort(), ['authentication', 'malformed', 'not-sealed', 'truncated', 'unknown-key'], 'each check is reached')
  t.ok(ring.open(sealed, REDIS_KEY).equals(plain), 'the unaltered value still opens')
})

t.test('the IV and the header are authenticated: swapping either in from another value fails', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }, { id: 'k2', key: KEY_1 }] })
  const plain = encodeEntry(makeEntry(body))
  const sealed = ring.seal(plain, REDIS_KEY)
  const otherIv = Buffer.from(sealed)
  ring.seal(plain, REDIS_KEY).copy(otherIv, 4, 4, 4 + IV_BYTES)
  t.equal(errorOf(() => ring.open(otherIv, REDIS_KEY)).reason, 'authentication', 'another IV')
  const relabelled = Buffer.from(sealed)
  relabelled.write('k2', 2, 'latin1')
  t.equal(errorOf(() => ring.open(relabelled, REDIS_KEY)).reason, 'authentication', 'another id naming the same key bytes')
})

t.test('a value under another Redis key does not open', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] })
  const sealed = ring.seal(encodeEntry(makeEntry(body)), REDIS_KEY)
  for (const aad of ['rc:{0a}:-:GET:%2Fpatients%2F%3Aid:other', '', REDIS_KEY + ' ', Buffer.from(REDIS_KEY.slice(1))]) {
    t.equal(errorOf(() => ring.open(sealed, aad)).reason, 'authentication', String(aad))
  }
})

t.test('a plaintext entry is not sealed, and never can look sealed', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] })
  const plain = encodeEntry(makeEntry(body))
  t.not(plain[0], SEALED_MAGIC)
  t.ok(ENTRY_FORMAT_VERSION < SEALED_MAGIC, 'entry format versions count up from 1, far below the magic byte')
  const error = errorOf(() => ring.open(plain, REDIS_KEY))
  t.equal(error.reason, 'not-sealed')
  t.equal(error.keyId, undefined)
  t.equal(errorOf(() => ring.open(Buffer.alloc(0), REDIS_KEY)).reason, 'not-sealed')
  t.equal(errorOf(() => ring.open(Buffer.from([SEALED_MAGIC]), REDIS_KEY)).reason, 'truncated')
  t.equal(errorOf(() => ring.open(Buffer.from([SEALED_MAGIC, 33, ...Buffer.alloc(60)]), REDIS_KEY)).reason, 'malformed')
})

t.test('an id from the stored bytes is named only when well formed', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'k1', key: KEY_1 }] })
  const sealed = ring.seal(encodeEntry(makeEntry(body)), REDIS_KEY)
  const crafted = Buffer.from(sealed)
  crafted.write('\n1', 2, 'latin1')
  const error = errorOf(() => ring.open(crafted, REDIS_KEY))
  t.equal(error.reason, 'unknown-key')
  t.equal(error.keyId, undefined)
  t.equal(error.message, 'sealed with a malformed key id')
})

t.test('a key may be a Buffer, base64, base64url or hex: all four are the same key', async (t) => {
  const plain = encodeEntry(makeEntry(body))
  const sealed = new Keyring({ keys: [{ id: 'k', key: KEY_2 }] }).seal(plain, REDIS_KEY)
  for (const key of [KEY_2.toString('base64'), KEY_2.toString('base64url'), KEY_2.toString('hex'), KEY_2.toString('hex').toUpperCase(), new Uint8Array(KEY_2) as Buffer]) {
    t.ok(new Keyring({ keys: [{ id: 'k', key }] }).open(sealed, REDIS_KEY).equals(plain), typeof key === 'string' ? `${key.length} characters` : 'Uint8Array')
  }
})

t.test('the keyring keeps its own copy: the caller may wipe its Buffer', async (t) => {
  const mine = Buffer.from(KEY_2)
  const ring = new Keyring({ keys: [{ id: 'k', key: mine }] })
  mine.fill(0)
  t.ok(KEY_2.equals(Buffer.from(KEY_2)), 'sanity')
  const plain = encodeEntry(makeEntry(body))
  t.ok(new Keyring({ keys: [{ id: 'k', key: KEY_2 }] }).open(ring.seal(plain, REDIS_KEY), REDIS_KEY).equals(plain))
  const given = Buffer.from(KEY_2)
  t.equal(checkEncryptionOption({ keys: [{ id: 'k', key: given }] }), undefined)
  t.ok(given.equals(KEY_2), 'checking an option leaves the caller\'s Buffer as it was')
})

t.test('checkEncryptionOption names the problem and never the key', async (t) => {
  const short = randomBytes(16)
  const long = randomBytes(48)
  const good = randomBytes(32)
  const goodKey = (id: string): EncryptionKey => ({ id, key: good })
  const cases: Array<[unknown, string | undefined]> = [
    [{ keys: [goodKey('k1')] }, undefined],
    [{ keys: [goodKey('k1'), { id: 'k-2.old_A', key: good.toString('base64url') }] }, undefined],
    [{ keys: [{ id: 'a'.repeat(32), key: good.toString('hex') }] }, undefined],
    [undefined, 'expected { keys: [{ id, key }] } with at least one key'],
    [null, 'expected { keys: [{ id, key }] } with at least one key'],
    [[goodKey('k1')], 'expected { keys: [{ id, key }] } with at least one key'],
    ['secret', 'expected { keys: [{ id, key }] } with at least one key'],
    [{}, 'expected { keys: [{ id, key }] } with at least one key'],
    [{ keys: [] }, 'expected { keys: [{ id, key }] } with at least one key'],
    [{ keys: goodKey('k1') }, 'expected { keys: [{ id, key }] } with at least one key'],
    [{ keys: [goodKey('k1')], key: good }, 'unknown property "key" (expected { keys: [{ id, key }] } with at least one key)'],
    [{ keys: [goodKey('k1'), 'k2'] }, 'keys[1] must be an object { id, key }'],
    [{ keys: [null] }, 'keys[0] must be an object { id, key }'],
    [{ keys: [[good]] }, 'keys[0] must be an object { id, key }'],
    [{ keys: [{ ...goodKey('k1'), secret: good }] }, 'keys[0] has an unknown property "secret" (expected { id, key })'],
    [{ keys: [{ key: good }] }, 'keys[0].id must be 1 to 32 characters of A-Z a-z 0-9 _ - .'],
    [{ keys: [goodKey('')] }, 'keys[0].id must be 1 to 32 characters of A-Z a-z 0-9 _ - .'],
    [{ keys: [goodKey('a'.repeat(33))] }, 'keys[0].id must be 1 to 32 characters of A-Z a-z 0-9 _ - .'],
    [{ keys: [goodKey('k1'), goodKey('k:2')] }, 'keys[1].id must be 1 to 32 characters of A-Z a-z 0-9 _ - .'],
    [{ keys: [{ id: good.toString('base64url'), key: 'k1' }] }, 'keys[0].id must be 1 to 32 characters of A-Z a-z 0-9 _ - .'],
    [{ keys: [goodKey('k1'), goodKey('k1')] }, 'duplicate key id "k1"'],
    [{ keys: [{ id: 'k1', key: short }] }, 'key "k1" must be 32 bytes (got 16)'],
    [{ keys: [{ id: 'k1', key: long }] }, 'key "k1" must be 32 bytes (got 48)'],
    [{ keys: [{ id: 'k1', key: short.toString('base64') }] }, 'key "k1" must be 32 bytes (got 16)'],
    [{ keys: [{ id: 'k1', key: long.toString('base64url') }] }, 'key "k1" must be 32 bytes (got 48)'],
    [{ keys: [{ id: 'k1', key: short.toString('hex') }] }, 'key "k1" must be 32 bytes (got 16)'],
    [{ keys: [{ id: 'k1', key: good.toString('hex') + 'ab' }] }, 'key "k1" must be 32 bytes (got 33)'],
    [{ keys: [{ id: 'k1', key: '' }] }, 'key "k1" must be 32 bytes as base64, base64url or 64 hex digits'],
    [{ keys: [{ id: 'k1', key: good.toString('base64') + '!' }] }, 'key "k1" must be 32 bytes as base64, base64url or 64 hex digits'],
    [{ keys: [{ id: 'k1', key: ' ' + good.toString('hex') }] }, 'key "k1" must be 32 bytes as base64, base64url or 64 hex digits'],
    [{ keys: [{ id: 'k1' }] }, 'key "k1" must be a Buffer or a base64, base64url or hex string (got undefined)'],
    [{ keys: [{ id: 'k1', key: null }] }, 'key "k1" must be a Buffer or a base64, base64url or hex string (got null)'],
    [{ keys: [{ id: 'k1', key: [...good] }] }, 'key "k1" must be a Buffer or a base64, base64url or hex string (got object)'],
    [{ keys: [goodKey('k1'), { id: 'k2', key: short }] }, 'key "k2" must be 32 bytes (got 16)']
  ]
  for (const [value, expected] of cases) {
    const problem = checkEncryptionOption(value)
    t.equal(problem, expected, expected ?? 'fine')
    if (problem !== undefined) {
      for (const key of [short, long, good]) t.same(leaks(problem, key), [], `no key bytes in: ${problem}`)
      t.throws(() => new Keyring(value as { keys: EncryptionKey[] }), new TypeError(`invalid encryption keys: ${problem}`))
    }
  }
})

t.test('JSON, util.inspect and errors show key ids, never key bytes', async (t) => {
  const ring = new Keyring({ keys: [{ id: 'new', key: KEY_2.toString('base64') }, { id: 'old', key: KEY_1 }] })
  t.same(JSON.parse(JSON.stringify(ring)), { currentKeyId: 'new', keyIds: ['new', 'old'] })
  t.equal(inspect(ring), "Keyring { currentKeyId: 'new', keyIds: [ 'new', 'old' ] }")
  const views = [
    JSON.stringify(ring),
    JSON.stringify({ options: { encryption: ring } }),
    inspect(ring, { showHidden: true, depth: Infinity, customInspect: true }),
    inspect({ ring }, { depth: Infinity }),
    String(Object.keys(ring)),
    JSON.stringify({ ...ring })
  ]
  const sealed = ring.seal(encodeEntry(makeEntry(body)), REDIS_KEY)
  sealed[sealed.length - 1] ^= 1
  const error = errorOf(() => ring.open(sealed, REDIS_KEY))
  views.push(error.message, String(error.stack), inspect(error, { showHidden: true }), JSON.stringify(error))
  for (const view of views) {
    t.same(leaks(view, KEY_1), [], view.slice(0, 60))
    t.same(leaks(view, KEY_2), [], view.slice(0, 60))
  }
})

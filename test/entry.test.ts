import { randomBytes } from 'node:crypto'
import t from 'tap'
import {
  ageSeconds, BODY_LZ4, BODY_RAW, COMPRESS_MIN_BYTES, CorruptEntryError, ENTRY_FORMAT_VERSION, ENTRY_OVERHEAD_BYTES, decodeEntry, encodeEntry,
  entrySize, type CacheEntry
} from '../lib/entry.js'
import { makeEntry } from './stores/contract.js'

t.test('round trip keeps every field, binary bodies and multi-value headers', async (t) => {
  const entry: CacheEntry = makeEntry(Buffer.from([0, 255, 1, 254]), {
    status: 404,
    headers: { 'content-type': 'application/octet-stream', 'x-list': ['a', 'b', ''], 'x-latin': 'caf\u00e9' },
    etag: 'W/"abc"',
    storedAt: 1_795_000_000_123.5,
    ttl: 0.25
  })
  const encoded = encodeEntry(entry)
  t.equal(encoded[0], ENTRY_FORMAT_VERSION)
  t.equal(encoded[1], BODY_RAW)
  t.ok(encoded.subarray(encoded.length - 4).equals(entry.body), 'the body is stored as is, with no base64 or JSON around it')
  const decoded = decodeEntry(encoded)
  t.same(decoded.headers, entry.headers)
  t.same({ ...decoded, body: [...decoded.body] }, { ...entry, body: [...entry.body] })
})

t.test('the request line round-trips (UTF-8), and version 1 entries, which have none, are still read', async (t) => {
  const entry = makeEntry('hi', { request: 'GET /caf\u00e9?q=\u2713' })
  t.equal(decodeEntry(encodeEntry(entry)).request, 'GET /caf\u00e9?q=\u2713')
  t.equal(decodeEntry(encodeEntry(makeEntry('hi'))).request, undefined, 'none recorded: none answered')
  // Version 1 is version 2 without the 9 bytes of flags and initial age (after the fixed fields) and
  // without the request line's u32 length (after the etag).
  const v2 = encodeEntry(makeEntry('hi', { etag: '"e"' }))
  const etagEnd = 24 + 9 + 2 + 3
  const v1 = Buffer.concat([Buffer.from([1]), v2.subarray(1, 24), v2.subarray(33, etagEnd), v2.subarray(etagEnd + 4)])
  const decoded = decodeEntry(v1)
  t.equal(decoded.body.toString(), 'hi')
  t.equal(decoded.etag, '"e"')
  t.equal(decoded.request, undefined)
  t.ok(entrySize('k', entry, undefined) - entrySize('k', makeEntry('hi'), undefined) === entry.request?.length, 'the request line counts in the memory bound')
})

t.test('bodies from COMPRESS_MIN_BYTES up are lz4-compressed when that pays, and the encoding is recorded', async (t) => {
  const json = Buffer.from(JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ id: i, name: 'same words again' }))))
  const packed = encodeEntry(makeEntry(json))
  t.equal(packed[1], BODY_LZ4)
  t.ok(packed.length < json.length / 2, `${packed.length} < ${json.length / 2}`)
  t.ok(decodeEntry(packed).body.equals(json))

  const small = encodeEntry(makeEntry(Buffer.alloc(COMPRESS_MIN_BYTES - 1, 'a')))
  t.equal(small[1], BODY_RAW, 'below the threshold: raw')
  const random = randomBytes(4096)
  const incompressible = encodeEntry(makeEntry(random))
  t.equal(incompressible[1], BODY_RAW, 'compression that saves less than a tenth is not kept')
  t.ok(decodeEntry(incompressible).body.equals(random))
})

t.test('anything that is not a whole entry of a known version is CorruptEntryError', async (t) => {
  const good = encodeEntry(makeEntry('hello'))
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['plain text', Buffer.from('{"status":200}')],
    ['future version', Buffer.concat([Buffer.from([99]), good.subarray(1)])],
    ['unknown encoding', Buffer.concat([good.subarray(0, 1), Buffer.from([7]), good.subarray(2)])],
    ['truncated headers', good.subarray(0, 40)],
    ['truncated body', good.subarray(0, good.length - 2)],
    ['lz4 flag on a raw body', Buffer.concat([good.subarray(0, 1), Buffer.from([BODY_LZ4]), good.subarray(2)])],
    ['status out of range', (() => { const b = Buffer.from(good); b.writeUInt16BE(7, 2); return b })()],
    ['ttl zero', (() => { const b = Buffer.from(good); b.writeDoubleBE(0, 12); return b })()]
  ]
  for (const [name, data] of cases) t.throws(() => decodeEntry(data), CorruptEntryError, name)
})

t.test('the compression threshold is inclusive, and a body at it round-trips', async (t) => {
  const atThreshold = Buffer.alloc(COMPRESS_MIN_BYTES, 'a')
  const packed = encodeEntry(makeEntry(atThreshold))
  t.equal(packed[1], BODY_LZ4, 'exactly COMPRESS_MIN_BYTES: compressed')
  t.ok(decodeEntry(packed).body.equals(atThreshold))
})

t.test('edges of the codec: empty body and headers, a header with no value, statuses 0 and 100 to 599, the body length', async (t) => {
  for (const status of [0, 100, 200, 599]) {
    const entry = makeEntry(Buffer.alloc(0), { status, headers: {}, etag: '' })
    const decoded = decodeEntry(encodeEntry(entry))
    t.strictSame({ ...decoded, body: [...decoded.body] }, { ...entry, body: [] }, `status ${status}`)
  }
  const headers = { 'x-none': [], 'x-one': 'v', 'x-two': ['v', 'w'], 'x-empty': '' }
  t.strictSame(decodeEntry(encodeEntry(makeEntry('', { headers }))).headers, headers, 'one value stays a string, others stay arrays')
  const encoded = encodeEntry(makeEntry('abc'))
  t.equal(encoded.readUInt32BE(20), 3, 'the body length is recorded before encoding')
  t.equal(encoded.length, 24 + 9 + 2 + 4 + 4 + 2 + (2 + 12 + 2 + 4 + 10) + (2 + 7 + 2 + 4 + 1 + 4 + 1) + 3, 'every length is counted once')
})

t.test('each kind of corruption is named in the error (it is logged)', async (t) => {
  const good = encodeEntry(makeEntry('hello'))
  const withByte = (at: number, value: number): Buffer => { const b = Buffer.from(good); b[at] = value; return b }
  const withDouble = (at: number, value: number): Buffer => { const b = Buffer.from(good); b.writeDoubleBE(value, at); return b }
  const withStatus = (status: number): Buffer => { const b = Buffer.from(good); b.writeUInt16BE(status, 2); return b }
  const cases: Array<[string, Buffer, RegExp]> = [
    ['shorter than the fixed fields', good.subarray(0, 21), /^entry truncated at byte 0$/],
    ['truncated in the etag', good.subarray(0, 25), /^entry truncated at byte 24$/],
    ['future version', withByte(0, 3), /^unknown entry format version 3$/],
    ['version 0', withByte(0, 0), /^unknown entry format version 0$/],
    ['unknown encoding', withByte(1, 2), /^unknown body encoding 2$/],
    ['lz4 flag on a raw body', withByte(1, BODY_LZ4), /^(body does not decompress: .+|entry fields out of range)$/],
    ['status 99', withStatus(99), /^entry fields out of range$/],
    ['status 600', withStatus(600), /^entry fields out of range$/],
    ['storedAt NaN', withDouble(4, NaN), /^entry fields out of range$/],
    ['storedAt infinite', withDouble(4, Infinity), /^entry fields out of range$/],
    ['ttl negative', withDouble(12, -1), /^entry fields out of range$/],
    ['ttl NaN', withDouble(12, NaN), /^entry fields out of range$/],
    ['a body longer than recorded', Buffer.concat([good, Buffer.from('!')]), /^entry fields out of range$/]
  ]
  for (const [name, data, message] of cases) {
    t.throws(() => decodeEntry(data), { name: 'CorruptEntryError', message }, name)
  }
  t.ok(new CorruptEntryError('x') instanceof Error)
  t.equal(new CorruptEntryError('x').name, 'CorruptEntryError')
})

t.test('an lz4 body that does not decompress is named as such', async (t) => {
  const packed = encodeEntry(makeEntry(Buffer.alloc(4096, 'a')))
  t.equal(packed[1], BODY_LZ4)
  const broken = Buffer.from(packed)
  broken.fill(0xff, broken.length - 20)
  t.throws(() => decodeEntry(broken), { name: 'CorruptEntryError', message: /^body does not decompress: / })
})

t.test('age: whole seconds since stored, never negative', async (t) => {
  const entry = makeEntry('x', { storedAt: 1_000_000 })
  t.equal(ageSeconds(entry, 1_000_000), 0)
  t.equal(ageSeconds(entry, 1_000_999), 0)
  t.equal(ageSeconds(entry, 1_001_000), 1)
  t.equal(ageSeconds(entry, 1_061_500), 61)
  t.equal(ageSeconds(entry, 995_000), 0, 'an entry stored "in the future" (clock skew between instances) is age 0')
})

t.test('size: overhead, key, body, etag, header names and values, tags counted twice', async (t) => {
  const entry = makeEntry(Buffer.alloc(10), { etag: '"abc"', headers: { ab: 'cde', xy: ['1', '22'] } })
  t.equal(entrySize('k', entry, undefined), ENTRY_OVERHEAD_BYTES + 1 + 10 + 5 + 2 + 3 + 2 + '1, 22'.length)
  t.equal(entrySize('k', entry, ['t1', 'tag2']), entrySize('k', entry, []) + 12)
  t.equal(ENTRY_OVERHEAD_BYTES, 768)
})

t.test('latin1 bytes in the etag and in header names are counted as one byte each', async (t) => {
  const entry = makeEntry('body', { etag: 'W/"caf\u00e9"', headers: { 'x-\u00e9t\u00e9': 'd\u00e9j\u00e0', 'x-list': ['\u00ff', 'a'] } })
  const encoded = encodeEntry(entry)
  t.equal(encoded.length, 24 + 9 + (2 + 8) + 4 + 2 + (2 + 5 + 2 + 4 + 4) + (2 + 6 + 2 + 4 + 1 + 4 + 1) + 4)
  const decoded = decodeEntry(encoded)
  t.strictSame({ ...decoded, body: decoded.body.toString() }, { ...entry, body: 'body' })
})

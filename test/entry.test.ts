import { randomBytes } from 'node:crypto'
import t from 'tap'
import {
  BODY_LZ4, BODY_RAW, COMPRESS_MIN_BYTES, CorruptEntryError, ENTRY_FORMAT_VERSION, decodeEntry, encodeEntry, type CacheEntry
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

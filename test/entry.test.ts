import { randomBytes } from 'node:crypto'
import t from 'tap'
import {
  ageSeconds, BODY_LZ4, BODY_RAW, COMPRESS_MIN_BYTES, CorruptEntryError, ENTRY_FORMAT_VERSION, ENTRY_OVERHEAD_BYTES, decodeEntry, encodeEntry,
  entryProblem, entrySize, VARIANTS_HEADER, type CacheEntry
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

t.test('edges of the codec: empty body and headers, a header with no value, statuses 0 and 200 to 499, the body length', async (t) => {
  for (const status of [0, 200, 499]) {
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
    ['future version', withByte(0, 4), /^unknown entry format version 4$/],
    ['version 0', withByte(0, 0), /^unknown entry format version 0$/],
    ['unknown encoding', withByte(1, 2), /^unknown body encoding 2$/],
    ['lz4 flag on a raw body', withByte(1, BODY_LZ4), /^the lz4 block declares \d+ bytes, the entry 5$/],
    ['status 1', withStatus(1), /^entry fields out of range$/],
    ['status 199 (1xx cannot be a final answer)', withStatus(199), /^entry fields out of range$/],
    ['status 500 (never stored)', withStatus(500), /^entry fields out of range$/],
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

t.test('latin1 bytes in the etag and in header values are counted as one byte each', async (t) => {
  const entry = makeEntry('body', { etag: 'W/"caf\u00e9"', headers: { 'x-ete': 'd\u00e9j\u00e0', 'x-list': ['\u00ff', 'a'] } })
  const encoded = encodeEntry(entry)
  t.equal(encoded.length, 24 + 9 + (2 + 8) + 4 + 2 + (2 + 5 + 2 + 4 + 4) + (2 + 6 + 2 + 4 + 1 + 4 + 1) + 4)
  const decoded = decodeEntry(encoded)
  t.strictSame({ ...decoded, body: decoded.body.toString() }, { ...entry, body: 'body' })
})

t.test('what Node would refuse to send, or the plugin never stores, is refused on read and named without the header', async (t) => {
  const cases: Array<[string, Partial<CacheEntry>, string]> = [
    ['a space in a name', { headers: { 'x bad': 'v' } }, 'a header name is not a lower-case HTTP token'],
    ['a colon in a name', { headers: { 'x:y': 'v' } }, 'a header name is not a lower-case HTTP token'],
    ['an empty name', { headers: { '': 'v' } }, 'a header name is not a lower-case HTTP token'],
    ['an upper-case name', { headers: { 'X-Upper': 'v' } }, 'a header name is not a lower-case HTTP token'],
    ['a latin1 name', { headers: { 'x-\u00e9': 'v' } }, 'a header name is not a lower-case HTTP token'],
    ['CR', { headers: { 'x-a': 'a\rb' } }, 'a header value holds a control character'],
    ['LF in a list', { headers: { 'x-a': ['ok', 'a\nb'] } }, 'a header value holds a control character'],
    ['NUL', { headers: { 'x-a': 'a\u0000' } }, 'a header value holds a control character'],
    ['DEL', { headers: { 'x-a': 'a\u007f' } }, 'a header value holds a control character'],
    ['a control character in the etag', { etag: '"a\r\n"' }, 'entry fields out of range'],
    ['set-cookie', { headers: { 'set-cookie': 's=1' } }, 'a header the cache never stores'],
    ['content-length', { headers: { 'content-length': '1' } }, 'a header the cache never stores'],
    ['transfer-encoding', { headers: { 'transfer-encoding': 'chunked' } }, 'a header the cache never stores'],
    ['connection', { headers: { connection: 'upgrade' } }, 'a header the cache never stores']
  ]
  for (const [name, change, problem] of cases) {
    t.throws(() => decodeEntry(encodeEntry(makeEntry('x', change))), { name: 'CorruptEntryError', message: problem }, name)
    if (problem !== 'entry fields out of range') t.equal(entryProblem(makeEntry('x', change)), problem, `${name}, as an object`)
  }
  const ok = makeEntry('x', { headers: { 'x-tab': 'a\tb', 'x-latin': 'caf\u00e9', "!#$%&'*+.^_`|~0-9a-z": '' } })
  t.equal(entryProblem(ok), undefined, 'HTAB, latin1 values and every token character are fine')
  t.same(decodeEntry(encodeEntry(ok)).headers, ok.headers)
  const marker = makeEntry('[]', { headers: { [VARIANTS_HEADER]: 'accept' } })
  t.equal(entryProblem(marker), undefined, 'a Vary marker\'s own header')
  t.same(decodeEntry(encodeEntry(marker)).headers, marker.headers)
  const unflagged = encodeEntry(makeEntry('[]', { headers: { [VARIANTS_HEADER]: 'accept', 'x-a': 'v' } }))
  unflagged[24] &= ~8
  t.throws(() => decodeEntry(unflagged), { name: 'CorruptEntryError', message: 'a header name is not a lower-case HTTP token' }, 'its name without the marker flag')
  t.equal(entryProblem(makeEntry('x', { headers: { 'x bad': 'v', [VARIANTS_HEADER]: 'accept' } })), 'a header name is not a lower-case HTTP token', 'a marker exempts its own header only')
})

t.test('object entries (a custom store\'s) are checked for their types too', async (t) => {
  for (const [name, change] of [
    ['a status as a string', { status: '200' }],
    ['status 200.5', { status: 200.5 }],
    ['a body as a string', { body: 'x' }],
    ['headers null', { headers: null }],
    ['a header value as a number', { headers: { 'x-a': 1 } }],
    ['a list holding a number', { headers: { 'x-a': ['a', 1] } }],
    ['storedAt as a string', { storedAt: '1' }],
    ['no ttl', { ttl: undefined }],
    ['an etag as a number', { etag: 1 }]
  ] as const) {
    t.ok(entryProblem({ ...makeEntry('x'), ...change } as unknown as CacheEntry) !== undefined, name)
  }
})

t.test('a repeated header name, or __proto__, is corrupt (the object would lose one, or change its prototype)', async (t) => {
  const two = encodeEntry(makeEntry('x', { headers: { 'x-a': 'v', 'x-b': 'w' } }))
  const at = two.indexOf('x-b')
  const repeated = Buffer.from(two)
  repeated.write('x-a', at, 'latin1')
  t.throws(() => decodeEntry(repeated), { name: 'CorruptEntryError', message: 'a header name is repeated or reserved' })
  const proto = encodeEntry(makeEntry('x', { headers: { 'x-a': 'v', __proto__x: ['a', 'b'] } as unknown as CacheEntry['headers'] }))
  const renamed = Buffer.from(proto)
  // '__proto__x' becomes '__proto__' and a header name of 9 bytes.
  const nameAt = renamed.indexOf('__proto__x')
  renamed.writeUInt16BE(9, nameAt - 2)
  const cut = Buffer.concat([renamed.subarray(0, nameAt + 9), renamed.subarray(nameAt + 10)])
  t.throws(() => decodeEntry(cut), { name: 'CorruptEntryError', message: 'a header name is repeated or reserved' })
})

t.test('a body over the inflate bound is stored raw, so that a reader with that bound reads it', async (t) => {
  const body = Buffer.alloc(4096, 'a')
  const over = encodeEntry(makeEntry(body), 4095)
  t.equal(over[1], BODY_RAW)
  t.ok(decodeEntry(over, 4095).body.equals(body), 'a raw body is not inflated: read whatever its size')
  const at = encodeEntry(makeEntry(body), 4096)
  t.equal(at[1], BODY_LZ4, 'at the bound: compressed')
  t.ok(decodeEntry(at, 4096).body.equals(body))
  t.throws(() => decodeEntry(at, 4095), { name: 'CorruptEntryError', message: 'a body of 4096 bytes declared, over maxEntryBytes' })
})

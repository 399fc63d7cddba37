import lz4 from 'lz4-napi'

/**
 * The header of a Vary marker (rules/variants.ts): a name no HTTP message can carry (a space is not a
 * token character). Its entries are written with FLAG_MARKER, which releases before markers read as
 * corrupt (a miss) rather than as a response.
 */
export const VARIANTS_HEADER = 'response-cache variants'

/** The status of an entry written by `app.cache.set` or `wrap`: it never answers a request. */
export const VALUE_STATUS = 0

/** The content codings an entry may hold besides its identity bytes, in the order ties are broken (rules/encoding.ts). */
export const ENCODINGS = ['br', 'gzip', 'zstd'] as const
export type Encoding = typeof ENCODINGS[number]
/** The body in the codings an entry holds. */
export type EncodedBodies = Partial<Record<Encoding, Buffer>>

/** Header values as Node and Fastify hold them. */
export type HeaderValue = string | string[]

/** One stored response: everything needed to answer a request without the handler. */
export interface CacheEntry {
  /** HTTP status; 0 for a value stored with `app.cache.set` or `wrap`. */
  status: number
  /** Response headers, names in lower case, without hop-by-hop headers, `set-cookie` or `content-length`. */
  headers: Record<string, HeaderValue>
  /** The final payload bytes, as sent to the client. */
  body: Buffer
  /** When it was stored, in milliseconds since the epoch. */
  storedAt: number
  /** Seconds it is fresh after `storedAt`. */
  ttl: number
  /** Strong or weak validator, quoted as in the `etag` header. */
  etag: string
  /**
   * The request it answers, method and URL as received (`GET /items/1?page=2`), for the entry listing;
   * absent for values and for entries written before it was recorded.
   */
  request?: string
  /**
   * `ttl: 'origin'` only: milliseconds the response was already old when stored (RFC 9111 section
   * 4.2.3, its corrected initial age), which the `age` header of a hit adds to its time in the cache.
   */
  initialAgeMs?: number
  /** `ttl: 'origin'` only: the response forbids serving it stale (must-revalidate, proxy-revalidate, s-maxage). */
  noStale?: boolean
  /** `ttl: 'origin'` only: the response may only be used once revalidated (`no-cache`): it is never fresh. */
  revalidate?: boolean
  /** The body in the content codings the cache made of it (br, gzip, zstd), served to clients that accept them. */
  encoded?: EncodedBodies
}

/**
 * Rough bytes an entry takes in memory: body, headers and key, plus a fixed overhead for the objects
 * around them (the entry, its headers object, the LRU's slot and the tag index), as measured by the
 * bench's one-million-key run (bench/RESULTS.md, "Memory bound").
 */
export const ENTRY_OVERHEAD_BYTES = 768

export function entrySize (key: string, entry: CacheEntry, tags: readonly string[] | undefined): number {
  let size = ENTRY_OVERHEAD_BYTES + key.length + entry.body.length + entry.etag.length + (entry.request?.length ?? 0) + headersSize(entry.headers)
  if (tags !== undefined) for (const tag of tags) size += tag.length * 2
  return size + encodedSize(entry.encoded)
}

/** The bytes of an entry's encodings, which `maxEntryBytes` and the memory bound count with its body. */
export function encodedSize (encoded: EncodedBodies | undefined): number {
  if (encoded === undefined) return 0
  let size = 0
  for (const encoding of ENCODINGS) size += encoded[encoding]?.length ?? 0
  return size
}

/** The names and values of headers, in characters (one byte each on the wire): what `maxEntryBytes` counts with the body. */
export function headersSize (headers: Readonly<Record<string, HeaderValue | number | undefined>>): number {
  let size = 0
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    size += name.length + (typeof value === 'object' ? value.join(', ').length : String(value).length)
  }
  return size
}

/** Milliseconds the entry is fresh after `storedAt`: none for one that must be revalidated before every use. */
export function freshMs (entry: CacheEntry): number {
  return entry.revalidate === true ? 0 : entry.ttl * 1000
}

/**
 * The entry as a soft purge at `at` (ms since the epoch) leaves it: fresh no longer than until `at`,
 * so its stale windows count from then (or from its own expiry, if that came first). A copy: the
 * entry itself may be held elsewhere (a memory tier, a request being answered).
 */
export function expiredAt (entry: CacheEntry, at: number): CacheEntry {
  if (entry.storedAt + freshMs(entry) <= at) return entry
  return { ...entry, ttl: Math.max(0, (at - entry.storedAt) / 1000) }
}

/** Whole seconds since the entry was stored, plus the age it arrived with, as the `age` header counts them. */
export function ageSeconds (entry: CacheEntry, now: number): number {
  return Math.max(0, Math.floor((now - entry.storedAt + (entry.initialAgeMs ?? 0)) / 1000))
}

// The binary form Redis holds: one value per entry, no JSON or base64 around the body.
//
//   u8  format version (ENTRY_FORMAT_VERSION)
//   u8  body encoding (0 raw, 1 lz4 block)
//   u16 status
//   f64 storedAt (ms since the epoch)
//   f64 ttl (seconds fresh)
//   u32 body length before encoding
//   u8 flags (1: noStale, 2: origin mode, 4: revalidate, 8: Vary marker), f64 initialAgeMs   from version 2
//   u16 etag length, etag bytes
//   u32 request line length, its bytes (UTF-8; empty for none)      from version 2
//   u16 header count, then per header: u16 name length, name, u16 value count,
//       then per value: u32 length, bytes (latin1, as Node holds header values)
//   u8 encoding count, then per encoding: u8 id (1 br, 2 gzip, 3 zstd), u32 length, bytes   from version 3
//   the body, encoded, to the end
//
// A later release reads the version byte first: it can read old versions or treat them as misses.
// Version 1 (no flags, no request line) is still read. An entry without encodings is still written
// as version 2, which releases before encodings read: only entries with encodings are version 3.

export const ENTRY_FORMAT_VERSION = 2
/** The version of an entry that holds encodings. */
export const ENCODED_FORMAT_VERSION = 3
const FLAG_NO_STALE = 1
const FLAG_ORIGIN = 2
const FLAG_REVALIDATE = 4
const FLAG_MARKER = 8
const FLAGS_BYTES = 1 + 8
export const BODY_RAW = 0
export const BODY_LZ4 = 1
/** Bodies at least this large are compressed, and kept compressed only when that saves a tenth. */
export const COMPRESS_MIN_BYTES = 1024

const FIXED_BYTES = 1 + 1 + 2 + 8 + 8 + 4

export class CorruptEntryError extends Error {
  override name = 'CorruptEntryError'
}

// What a store answers is sent as it is: anything Node or Fastify would refuse to send (and throw for),
// or that the plugin never stores, is refused here instead, and the entry is a miss.

/** A header name as the plugin stores it: an RFC 9110 token, in lower case as Node gives it. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
/** What Node refuses in a header value (its checkInvalidHeaderChar): controls other than HTAB, and DEL. */
const BAD_HEADER_CHAR = /[^\t\x20-\x7e\x80-\xff]/
/** Headers that frame the message or set state at the client: never stored (rules/storability.ts), never sent from an entry. */
const NEVER_STORED = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length', 'set-cookie'
])

// decodeEntry checks the same rules on the bytes as it reads them (a loop over a table is several
// times cheaper than a regular expression per string, and runs on every Redis hit).
const TOKEN_BYTE = new Uint8Array(256)
for (const c of "!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyz-") TOKEN_BYTE[c.charCodeAt(0)] = 1

function tokenBytes (data: Buffer, start: number, end: number): boolean {
  if (start === end) return false
  for (let i = start; i < end; i++) if (TOKEN_BYTE[data[i]] === 0) return false
  return true
}

function fieldValueBytes (data: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const byte = data[i]
    if ((byte < 0x20 && byte !== 0x09) || byte === 0x7f) return false
  }
  return true
}

function headerProblem (name: string, value: unknown, marker: boolean): string | undefined {
  if (!HEADER_NAME.test(name)) {
    // A marker's one header has a name no HTTP message can carry (see VARIANTS_HEADER); it is never sent.
    if (!(marker && name === VARIANTS_HEADER)) return 'a header name is not a lower-case HTTP token'
  } else if (NEVER_STORED.has(name)) return 'a header the cache never stores'
  if (typeof value === 'string') return BAD_HEADER_CHAR.test(value) ? 'a header value holds a control character' : undefined
  if (!Array.isArray(value)) return 'a header value is neither a string nor a list'
  for (const item of value) {
    if (typeof item !== 'string') return 'a header value is neither a string nor a list'
    if (BAD_HEADER_CHAR.test(item)) return 'a header value holds a control character'
  }
  return undefined
}

/**
 * Why an entry cannot be answered as it is, or undefined when it can: a status the plugin cannot
 * store (200 to 499, or VALUE_STATUS for a value), a header Node would refuse or the plugin never
 * stores, or a field of the wrong type. Names the problem, never a header's name or value.
 */
export function entryProblem (entry: CacheEntry): string | undefined {
  const { headers } = entry
  if (!numbersFit(entry) || !Buffer.isBuffer(entry.body) || typeof entry.etag !== 'string' || BAD_HEADER_CHAR.test(entry.etag) ||
      typeof headers !== 'object' || headers === null || !encodedFit(entry.encoded)) {
    return 'entry fields out of range'
  }
  const marker = headers[VARIANTS_HEADER] !== undefined
  for (const name of Object.keys(headers)) {
    const problem = headerProblem(name, headers[name], marker)
    if (problem !== undefined) return problem
  }
  return undefined
}

function encodedFit (encoded: unknown): boolean {
  if (encoded === undefined) return true
  if (typeof encoded !== 'object' || encoded === null) return false
  for (const [name, body] of Object.entries(encoded)) {
    if (!(ENCODINGS as readonly string[]).includes(name) || !Buffer.isBuffer(body)) return false
  }
  return true
}

/** The numbers of an entry: what decodeEntry checks too (the rest it checks on the bytes). */
function numbersFit ({ status, storedAt, ttl }: CacheEntry): boolean {
  return (status === VALUE_STATUS || (Number.isInteger(status) && status >= 200 && status <= 499)) && Number.isFinite(storedAt) && ttl > 0
}

/**
 * `maxInflateBytes`: a body larger than this is stored raw, so that a reader refusing to inflate
 * more (decodeEntry) reads every entry this writer made. Responses stay within `maxEntryBytes`; only
 * values may be larger.
 */
export function encodeEntry (entry: CacheEntry, maxInflateBytes = Infinity): Buffer {
  let body = entry.body
  let encoding = BODY_RAW
  if (body.length >= COMPRESS_MIN_BYTES && body.length <= maxInflateBytes) {
    const packed = lz4.compressSync(body)
    if (packed.length < body.length * 0.9) {
      body = packed
      encoding = BODY_LZ4
    }
  }
  const names = Object.keys(entry.headers)
  const request = entry.request ?? ''
  let size = FIXED_BYTES + FLAGS_BYTES + 2 + Buffer.byteLength(entry.etag, 'latin1') + 4 + Buffer.byteLength(request) + 2
  for (const name of names) {
    const value = entry.headers[name]
    size += 2 + Buffer.byteLength(name, 'latin1') + 2
    for (const v of typeof value === 'string' ? [value] : value) size += 4 + Buffer.byteLength(v, 'latin1')
  }
  size += body.length
  const encodings = entry.encoded === undefined ? [] : ENCODINGS.filter((name) => entry.encoded?.[name] !== undefined)
  if (encodings.length > 0) size += 1 + encodings.length * 5 + encodedSize(entry.encoded)

  const out = Buffer.allocUnsafe(size)
  let at = out.writeUInt8(encodings.length > 0 ? ENCODED_FORMAT_VERSION : ENTRY_FORMAT_VERSION, 0)
  at = out.writeUInt8(encoding, at)
  at = out.writeUInt16BE(entry.status, at)
  at = out.writeDoubleBE(entry.storedAt, at)
  at = out.writeDoubleBE(entry.ttl, at)
  at = out.writeUInt32BE(entry.body.length, at)
  const origin = entry.initialAgeMs !== undefined || entry.noStale !== undefined || entry.revalidate !== undefined
  const marker = entry.headers[VARIANTS_HEADER] !== undefined
  at = out.writeUInt8((entry.noStale === true ? FLAG_NO_STALE : 0) | (origin ? FLAG_ORIGIN : 0) | (entry.revalidate === true ? FLAG_REVALIDATE : 0) | (marker ? FLAG_MARKER : 0), at)
  at = out.writeDoubleBE(entry.initialAgeMs ?? 0, at)
  const writeString = (text: string, lengthBytes: 2 | 4, encoding: BufferEncoding = 'latin1'): void => {
    const length = Buffer.byteLength(text, encoding)
    at = lengthBytes === 2 ? out.writeUInt16BE(length, at) : out.writeUInt32BE(length, at)
    at += out.write(text, at, encoding)
  }
  writeString(entry.etag, 2)
  writeString(request, 4, 'utf8')
  at = out.writeUInt16BE(names.length, at)
  for (const name of names) {
    const value = entry.headers[name]
    const values = typeof value === 'string' ? [value] : value
    writeString(name, 2)
    at = out.writeUInt16BE(values.length, at)
    for (const v of values) writeString(v, 4)
  }
  if (encodings.length > 0) {
    at = out.writeUInt8(encodings.length, at)
    for (const name of encodings) {
      const encoded = entry.encoded?.[name] as Buffer
      at = out.writeUInt8(ENCODINGS.indexOf(name) + 1, at)
      at = out.writeUInt32BE(encoded.length, at)
      at += encoded.copy(out, at)
    }
  }
  body.copy(out, at)
  return out
}

/**
 * Reads an entry; throws CorruptEntryError for anything that is not a whole entry of a known version
 * that the plugin could have written and can answer (see entryProblem). An lz4 body that declares
 * more than `maxInflateBytes` is refused before it is inflated: lz4 allocates what the block
 * declares, and a block of zeros inflates 255 times.
 */
export function decodeEntry (data: Buffer, maxInflateBytes = Infinity): CacheEntry {
  let at = 0
  const need = (bytes: number): void => {
    if (at + bytes > data.length) throw new CorruptEntryError(`entry truncated at byte ${at}`)
  }
  need(FIXED_BYTES)
  const version = data.readUInt8(0)
  if (version !== ENCODED_FORMAT_VERSION && version !== ENTRY_FORMAT_VERSION && version !== 1) throw new CorruptEntryError(`unknown entry format version ${version}`)
  const encoding = data.readUInt8(1)
  if (encoding !== BODY_RAW && encoding !== BODY_LZ4) throw new CorruptEntryError(`unknown body encoding ${encoding}`)
  const status = data.readUInt16BE(2)
  const storedAt = data.readDoubleBE(4)
  const ttl = data.readDoubleBE(12)
  const bodyLength = data.readUInt32BE(20)
  at = FIXED_BYTES
  let flags = 0
  let initialAgeMs = 0
  if (version !== 1) {
    need(FLAGS_BYTES)
    flags = data.readUInt8(at)
    initialAgeMs = data.readDoubleBE(at + 1)
    at += FLAGS_BYTES
  }
  const readString = (lengthBytes: 2 | 4, encoding: BufferEncoding = 'latin1'): string => {
    need(lengthBytes)
    const length = lengthBytes === 2 ? data.readUInt16BE(at) : data.readUInt32BE(at)
    at += lengthBytes
    need(length)
    const text = data.toString(encoding, at, at + length)
    at += length
    return text
  }
  const etag = readString(2)
  const etagSendable = fieldValueBytes(data, at - etag.length, at)
  const request = version === 1 ? '' : readString(4, 'utf8')
  need(2)
  const count = data.readUInt16BE(at)
  at += 2
  const headers: Record<string, HeaderValue> = {}
  const marker = (flags & FLAG_MARKER) !== 0
  for (let i = 0; i < count; i++) {
    // Latin1: one byte per character, so each string's bytes end at `at` once it is read.
    const name = readString(2)
    if (!tokenBytes(data, at - name.length, at) && !(marker && name === VARIANTS_HEADER)) {
      throw new CorruptEntryError('a header name is not a lower-case HTTP token')
    }
    if (NEVER_STORED.has(name)) throw new CorruptEntryError('a header the cache never stores')
    // `__proto__` would set the object's prototype: no header has that name.
    if (name === '__proto__' || Object.hasOwn(headers, name)) throw new CorruptEntryError('a header name is repeated or reserved')
    need(2)
    const valueCount = data.readUInt16BE(at)
    at += 2
    const values: string[] = []
    for (let j = 0; j < valueCount; j++) {
      const value = readString(4)
      if (!fieldValueBytes(data, at - value.length, at)) throw new CorruptEntryError('a header value holds a control character')
      values.push(value)
    }
    headers[name] = valueCount === 1 ? values[0] : values
  }
  let encoded: EncodedBodies | undefined
  if (version === ENCODED_FORMAT_VERSION) {
    need(1)
    const encodings = data.readUInt8(at++)
    if (encodings === 0 || encodings > ENCODINGS.length) throw new CorruptEntryError(`${encodings} encodings`)
    encoded = {}
    for (let i = 0; i < encodings; i++) {
      need(5)
      const name = ENCODINGS[data.readUInt8(at) - 1]
      const length = data.readUInt32BE(at + 1)
      at += 5
      if (name === undefined || encoded[name] !== undefined) throw new CorruptEntryError('an unknown or repeated encoding')
      need(length)
      // Bytes sent as they are, never inflated here: a view of the value read, as the body is.
      encoded[name] = data.subarray(at, at += length)
    }
  }
  let body = data.subarray(at)
  if (encoding === BODY_LZ4) {
    if (bodyLength > maxInflateBytes) throw new CorruptEntryError(`a body of ${bodyLength} bytes declared, over maxEntryBytes`)
    // lz4-napi's block leads with the size it inflates to (u32, little-endian), and allocates it.
    const declared = body.length >= 4 ? body.readUInt32LE(0) : -1
    if (declared !== bodyLength) throw new CorruptEntryError(`the lz4 block declares ${declared} bytes, the entry ${bodyLength}`)
    try {
      body = lz4.uncompressSync(body)
    } catch (error) {
      throw new CorruptEntryError(`body does not decompress: ${String(error)}`)
    }
  }
  const entry: CacheEntry = { status, headers, body, storedAt, ttl, etag }
  if (body.length !== bodyLength || !(initialAgeMs >= 0 && initialAgeMs < Infinity) || flags > (FLAG_NO_STALE | FLAG_ORIGIN | FLAG_REVALIDATE | FLAG_MARKER) ||
      marker !== (headers[VARIANTS_HEADER] !== undefined) || !numbersFit(entry) || !etagSendable) {
    throw new CorruptEntryError('entry fields out of range')
  }
  if (request !== '') entry.request = request
  if (encoded !== undefined) entry.encoded = encoded
  if ((flags & FLAG_ORIGIN) !== 0) {
    entry.initialAgeMs = initialAgeMs
    if ((flags & FLAG_NO_STALE) !== 0) entry.noStale = true
    if ((flags & FLAG_REVALIDATE) !== 0) entry.revalidate = true
  }
  return entry
}

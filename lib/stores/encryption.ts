import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto'
import { inspect } from 'node:util'

/** One key of the keyring: 32 bytes, as a Buffer, base64, base64url or 64 hex digits. */
export interface EncryptionKey {
  /** Written in the header of every value this key seals: 1 to 32 of `A-Z a-z 0-9 _ - .`. */
  id: string
  key: Buffer | string
}

/** The `encryption` option: the first key seals, every key listed opens. */
export interface EncryptionOptions {
  keys: EncryptionKey[]
}

// A sealed value, as Redis holds it:
//
//   u8  SEALED_MAGIC
//   u8  key id length (1 to 32)
//       key id bytes (ASCII)
//   12  IV
//       ciphertext (AES-256-GCM, as long as the plaintext entry)
//   16  GCM tag, last (as WebCrypto places it)
//
// The GCM additional data is the header (magic, id length, id) followed by the caller's aad (the
// Redis key and the versions the entry was written under, see redis.ts): the header is
// self-delimiting, so no other pair of header and aad gives the same bytes. A changed header, IV,
// ciphertext or tag, or a value moved under another Redis key or behind other versions, fails to open.

/**
 * First byte of a sealed value. A plaintext entry starts with its format version (entry.ts), which
 * counts up from 1: 0xE2 ("encrypted, format 2") stays clear of it for 225 format versions.
 * Format 1 (0xE1, earlier releases) bound the Redis key alone: read as outdated, a miss.
 */
export const SEALED_MAGIC = 0xE2
const SEALED_MAGIC_1 = 0xE1
export const KEY_BYTES = 32
export const IV_BYTES = 12
export const TAG_BYTES = 16
export const MAX_KEY_ID_LENGTH = 32
const ALGORITHM = 'aes-256-gcm'
const KEY_ID = /^[A-Za-z0-9_.-]{1,32}$/
const HEX_KEY = /^[0-9a-fA-F]+$/
const BASE64_KEY = /^[A-Za-z0-9+/_-]+={0,2}$/
const SHAPE = 'expected { keys: [{ id, key }] } with at least one key'
/** Invocations of the IV counter before a new prefix is drawn: the counter is a u32. */
const IV_COUNTER_LIMIT = 2 ** 32

export type SealedEntryProblem = 'not-sealed' | 'outdated' | 'malformed' | 'truncated' | 'unknown-key' | 'authentication'

/** A value that does not open: not sealed, sealed in an earlier format, cut short, under a key not listed, or not authentic. */
export class SealedEntryError extends Error {
  override name = 'SealedEntryError'
  readonly reason: SealedEntryProblem
  /** The key id from the value's header, when it is a well-formed id. */
  readonly keyId: string | undefined

  constructor (reason: SealedEntryProblem, message: string, keyId?: string) {
    super(message)
    this.reason = reason
    this.keyId = keyId
  }
}

/** Why a key is not 32 bytes, or its bytes. Never echoes the key: a message may reach a log. */
function keyBytes (id: string, key: unknown): Buffer | string {
  if (key instanceof Uint8Array) {
    return key.length === KEY_BYTES ? Buffer.from(key) : `key "${id}" must be 32 bytes (got ${key.length})`
  }
  if (typeof key !== 'string') return `key "${id}" must be a Buffer or a base64, base64url or hex string (got ${key === null ? 'null' : typeof key})`
  // 64 hex digits, or else base64(url): a 32-byte key in base64 has 43 characters and maybe one '=',
  // so an even-length string of hex digits is never a valid base64 key and is read as hex.
  let bytes: Buffer
  if (HEX_KEY.test(key) && key.length % 2 === 0) bytes = Buffer.from(key, 'hex')
  else if (BASE64_KEY.test(key)) bytes = Buffer.from(key, 'base64')
  else return `key "${id}" must be 32 bytes as base64, base64url or 64 hex digits`
  if (bytes.length === KEY_BYTES) return bytes
  const length = bytes.length
  bytes.fill(0)
  return `key "${id}" must be 32 bytes (got ${length})`
}

/** Problems and key bytes of an `encryption` option: `problem` is undefined when it is fine. */
function parse (value: unknown): { problem?: string, keys: Array<[string, Buffer]> } {
  const keys: Array<[string, Buffer]> = []
  const fail = (problem: string): { problem: string, keys: Array<[string, Buffer]> } => {
    for (const [, bytes] of keys) bytes.fill(0)
    return { problem, keys: [] }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(SHAPE)
  for (const name of Object.keys(value)) if (name !== 'keys') return fail(`unknown property "${name}" (${SHAPE})`)
  const list = (value as { keys?: unknown }).keys
  if (!Array.isArray(list) || list.length === 0) return fail(SHAPE)
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i]
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return fail(`keys[${i}] must be an object { id, key }`)
    for (const name of Object.keys(item)) if (name !== 'id' && name !== 'key') return fail(`keys[${i}] has an unknown property "${name}" (expected { id, key })`)
    const { id, key } = item as { id?: unknown, key?: unknown }
    // An id that fails the pattern is not echoed: it may be a key put in the wrong field.
    if (typeof id !== 'string' || !KEY_ID.test(id)) return fail(`keys[${i}].id must be 1 to 32 characters of A-Z a-z 0-9 _ - .`)
    if (keys.some(([seen]) => seen === id)) return fail(`duplicate key id "${id}"`)
    const bytes = keyBytes(id, key)
    if (typeof bytes === 'string') return fail(bytes)
    keys.push([id, bytes])
  }
  return { keys }
}

/** The problem with an `encryption` option, for the option validator; undefined when it is fine. */
export function checkEncryptionOption (value: unknown): string | undefined {
  const { problem, keys } = parse(value)
  for (const [, bytes] of keys) bytes.fill(0)
  return problem
}

interface RingKey {
  id: string
  key: KeyObject
  /** Magic, id length and id: the first bytes of every value this key seals. */
  header: Buffer
}

/**
 * AES-256-GCM over whole stored values, with the caller's additional data (the Redis store's: the
 * Redis key and the entry's versions). The first key seals;
 * every key listed opens, so a new key goes first and the old one stays listed until its values
 * have expired: keys rotate without a flush. Key bytes live only in KeyObjects held in private
 * fields: JSON, `util.inspect` and errors show key ids and nothing else.
 */
export class Keyring {
  readonly #sealer: RingKey
  readonly #keys = new Map<string, RingKey>()
  // GCM must never use one IV twice under one key. Each IV is an 8-byte random prefix drawn for this
  // keyring and a 4-byte counter (NIST SP 800-38D's deterministic construction): unique within the
  // process with no RNG call per seal, and across processes and restarts unless two draws of 64
  // random bits collide. Drawn per keyring, not at module load, so a startup snapshot cannot share it.
  #ivPrefix = randomBytes(IV_BYTES - 4)
  #ivCount = 0

  constructor (options: EncryptionOptions) {
    const { problem, keys } = parse(options)
    if (problem !== undefined) throw new TypeError(`invalid encryption keys: ${problem}`)
    for (const [id, bytes] of keys) {
      const header = Buffer.allocUnsafe(2 + id.length)
      header[0] = SEALED_MAGIC
      header[1] = id.length
      header.write(id, 2, 'latin1')
      // createSecretKey copies the bytes: the parsed copy is wiped at once.
      this.#keys.set(id, { id, key: createSecretKey(bytes), header })
      bytes.fill(0)
    }
    this.#sealer = this.#keys.get(keys[0][0]) as RingKey
  }

  /** The id new values are sealed with. */
  get currentKeyId (): string {
    return this.#sealer.id
  }

  /** Every id that opens, the sealing one first. */
  get keyIds (): string[] {
    return [...this.#keys.keys()]
  }

  /** `plain` encrypted under the first key, authenticated with its header and `aad`. */
  seal (plain: Buffer, aad: string | Buffer): Buffer {
    const { key, header } = this.#sealer
    const ivAt = header.length
    const bodyAt = ivAt + IV_BYTES
    const out = Buffer.allocUnsafe(bodyAt + plain.length + TAG_BYTES)
    header.copy(out, 0)
    /* c8 ignore next 4: only after 2^32 seals by one keyring */
    if (this.#ivCount === IV_COUNTER_LIMIT) {
      this.#ivPrefix = randomBytes(IV_BYTES - 4)
      this.#ivCount = 0
    }
    this.#ivPrefix.copy(out, ivAt)
    out.writeUInt32BE(this.#ivCount++, ivAt + IV_BYTES - 4)
    const cipher = createCipheriv(ALGORITHM, key, out.subarray(ivAt, bodyAt), { authTagLength: TAG_BYTES })
    cipher.setAAD(header)
    cipher.setAAD(typeof aad === 'string' ? Buffer.from(aad) : aad)
    // node:crypto has no in-place GCM: the ciphertext is copied once into `out`, which saves the
    // second copy Buffer.concat of header, ciphertext and tag would make.
    let at = bodyAt + cipher.update(plain).copy(out, bodyAt)
    at += cipher.final().copy(out, at)
    cipher.getAuthTag().copy(out, at)
    return out
  }

  /** The plaintext of a value `seal` gave for the same `aad`; SealedEntryError for anything else. */
  open (sealed: Buffer, aad: string | Buffer): Buffer {
    if (sealed[0] === SEALED_MAGIC_1) throw new SealedEntryError('outdated', 'sealed by an earlier release (format 1)')
    if (sealed.length === 0 || sealed[0] !== SEALED_MAGIC) {
      throw new SealedEntryError('not-sealed', 'value is not sealed (no encryption header)')
    }
    if (sealed.length < 2) throw new SealedEntryError('truncated', 'sealed value truncated in its header')
    const idLength = sealed[1]
    if (idLength === 0 || idLength > MAX_KEY_ID_LENGTH) {
      throw new SealedEntryError('malformed', `sealed value has a key id length of ${idLength}`)
    }
    const ivAt = 2 + idLength
    const bodyAt = ivAt + IV_BYTES
    if (sealed.length < bodyAt + TAG_BYTES) throw new SealedEntryError('truncated', `sealed value truncated at byte ${sealed.length}`)
    const id = sealed.toString('latin1', 2, ivAt)
    // The id comes from the stored bytes: named only when it is a well-formed id, so a crafted value
    // cannot write what it likes into a log line.
    const named = KEY_ID.test(id) ? id : undefined
    const entry = this.#keys.get(id)
    if (entry === undefined) {
      throw new SealedEntryError('unknown-key', named === undefined ? 'sealed with a malformed key id' : `sealed with key "${id}", which is not in the keyring`, named)
    }
    const tagAt = sealed.length - TAG_BYTES
    const decipher = createDecipheriv(ALGORITHM, entry.key, sealed.subarray(ivAt, bodyAt), { authTagLength: TAG_BYTES })
    decipher.setAuthTag(sealed.subarray(tagAt))
    decipher.setAAD(entry.header)
    decipher.setAAD(typeof aad === 'string' ? Buffer.from(aad) : aad)
    // GCM hands out plaintext before checking the tag: it is returned only once final() has.
    const plain = decipher.update(sealed.subarray(bodyAt, tagAt))
    let tail: Buffer
    try {
      tail = decipher.final()
    } catch {
      throw new SealedEntryError('authentication', `sealed value does not authenticate under key "${id}" (altered, or stored under another key)`, id)
    }
    /* c8 ignore next */
    return tail.length === 0 ? plain : Buffer.concat([plain, tail])
  }

  toJSON (): { currentKeyId: string, keyIds: string[] } {
    return { currentKeyId: this.currentKeyId, keyIds: this.keyIds }
  }

  [inspect.custom] (): string {
    return `Keyring ${inspect(this.toJSON())}`
  }
}

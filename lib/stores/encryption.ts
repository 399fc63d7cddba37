import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto'
import { inspect } from 'node:util'
import { KEY_ID, MAX_KEY_ID_LENGTH, parseEncryptionOption, type EncryptionOptions } from './encryption-options.js'

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
export const IV_BYTES = 12
export const TAG_BYTES = 16
const ALGORITHM = 'aes-256-gcm'
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
    const { problem, keys } = parseEncryptionOption(options)
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

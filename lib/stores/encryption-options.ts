// The `encryption` option and its check, apart from the Keyring: options.ts validates the option
// without importing the store that seals.

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

const KEY_BYTES = 32
export const MAX_KEY_ID_LENGTH = 32
export const KEY_ID = /^[A-Za-z0-9_.-]{1,32}$/
const HEX_KEY = /^[0-9a-fA-F]+$/
const BASE64_KEY = /^[A-Za-z0-9+/_-]+={0,2}$/
const SHAPE = 'expected { keys: [{ id, key }] } with at least one key'

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

/** Problems and key bytes of an `encryption` option: `problem` is undefined when it is fine. The caller wipes the bytes. */
export function parseEncryptionOption (value: unknown): { problem?: string, keys: Array<[string, Buffer]> } {
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
  const { problem, keys } = parseEncryptionOption(value)
  for (const [, bytes] of keys) bytes.fill(0)
  return problem
}

import { CorruptEntryError } from '../entry.js'

// Why versions: invalidation finds entries through their tag sets, and Redis may evict a set (hits
// never touch one, so LRU and LFU pick sets first) while its entries live on. So each tag of an entry
// also has a version key in the entry's slot, and the entry records the versions it was written
// under; a read answers the entry only while every one of them is still current. Invalidation
// deletes the version keys (a DEL is allowed even when Redis is full), and a later write creates a
// new one with a token no earlier write used, so an evicted or deleted version never comes back.
//
// A value in Redis is this header, then the entry's bytes (entry.ts, or whatever seals them):
//
//   u8     VERSIONED_MAGIC
//   u32be  header length, these 5 bytes included
//          one record per version: `<key suffix> <token>\n`, where the key is `<base><key suffix>`
//          and <base> is `<keyPrefix><namespace>:{shard}:`, so the suffix is `gen` or `ver:<tag>`
//
// Suffixes are percent-encoded and tokens base64url and base36: neither holds a space or a newline.

/** First byte of a versioned value; clear of the entry format versions (from 1) and of 0xE1 (sealed). */
export const VERSIONED_MAGIC = 0xF1
const HEADER_BYTES = 5

/** The entry's own bytes within a versioned value. */
export function entryBytes (value: Buffer): Buffer {
  if (value.length < HEADER_BYTES || value[0] !== VERSIONED_MAGIC) throw new CorruptEntryError('not a versioned value')
  const size = value.readUInt32BE(1)
  if (size < HEADER_BYTES || size > value.length) throw new CorruptEntryError('truncated version header')
  return value.subarray(size)
}

/**
 * Lua, in the scripts that write an entry: `version(key, token, ms)` answers the version key's
 * token, creating it with `token` when it is missing, and keeps it for at least `ms` (never
 * shortened): a version outlives every entry written under it. Errors (a foreign value, Redis full)
 * are raised: the entry is then not written.
 */
export const VERSION_LUA = `
local function version (key, token, ms)
  local current = redis.call('GET', key)
  if not current then
    redis.call('SET', key, token, 'PX', ms)
    return token
  end
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
  return current
end
local function header (records)
  local body = table.concat(records)
  local size = ${HEADER_BYTES} + #body
  return string.char(${VERSIONED_MAGIC}, math.floor(size / 16777216) % 256, math.floor(size / 65536) % 256, math.floor(size / 256) % 256, size % 256) .. body
end`

/**
 * Lua, in the scripts that read an entry: `current(value, base)` is false when a version the value
 * was written under is missing or has changed (one MGET in the entry's slot). A value without a
 * well-formed header is answered as it is, for the reader to report as corrupt.
 */
export const CURRENT_LUA = `
local function current (value, base)
  if string.byte(value, 1) ~= ${VERSIONED_MAGIC} or #value < ${HEADER_BYTES} then return true end
  local a, b, c, d = string.byte(value, 2, 5)
  local size = ((a * 256 + b) * 256 + c) * 256 + d
  if size > #value then return true end
  local names, tokens = {}, {}
  for suffix, token in string.gmatch(string.sub(value, ${HEADER_BYTES + 1}, size), '([^ \\n]+) ([^ \\n]+)\\n') do
    names[#names + 1] = base .. suffix
    tokens[#tokens + 1] = token
  end
  if #names == 0 then return false end
  local found = redis.call('MGET', unpack(names))
  for i = 1, #names do
    if found[i] ~= tokens[i] then return false end
  end
  return true
end`

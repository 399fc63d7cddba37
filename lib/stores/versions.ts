import { unpack } from 'msgpackr'
import { CorruptEntryError } from '../entry.js'
import { decodeSegment } from '../key.js'

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
//   u32be  header length, these 9 bytes included
//   u32be  length of the names
//          names: the version keys, as Redis holds them (keyPrefix included), a MessagePack array
//          tokens: the token of each, as written, a MessagePack array
//
// Both arrays are packed and unpacked by Redis's own cmsgpack, so the check on a read is one unpack,
// one MGET and one comparison of bytes (cmsgpack.pack of the MGET answer against the tokens as
// stored): measured, about a quarter less Redis time per read than parsing text records in Lua.

/** First byte of a versioned value; clear of the entry format versions (from 1) and of 0xE1 and 0xE2 (sealed). */
export const VERSIONED_MAGIC = 0xF1
const HEADER_BYTES = 9

/** The entry's own bytes within a versioned value. */
export function entryBytes (value: Buffer): Buffer {
  if (value.length < HEADER_BYTES || value[0] !== VERSIONED_MAGIC) throw new CorruptEntryError('not a versioned value')
  const size = value.readUInt32BE(1)
  if (size > value.length || HEADER_BYTES + value.readUInt32BE(5) > size) throw new CorruptEntryError('truncated version header')
  return value.subarray(size)
}

const u32 = (n: string): string => `math.floor(${n} / 16777216) % 256, math.floor(${n} / 65536) % 256, math.floor(${n} / 256) % 256, ${n} % 256`

/**
 * Lua, in the scripts that write an entry: `version(key, token, ms)` answers the version key's
 * token, creating it with `token` when it is missing, and keeps it for at least `ms` (never
 * shortened): a version outlives every entry written under it. With `ms` false it never expires: the
 * shard's generation, one key per shard, which a volatile-* policy then never evicts. Errors (a foreign value, Redis full)
 * are raised: the entry is then not written. `header(names, tokens)` is the header above.
 */
export const VERSION_LUA = `
local function version (key, token, ms)
  local current = redis.call('GET', key)
  if not current then
    if ms then redis.call('SET', key, token, 'PX', ms) else redis.call('SET', key, token) end
    return token
  end
  if ms and redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
  return current
end
local function header (names, tokens)
  local packedNames, packedTokens = cmsgpack.pack(names), cmsgpack.pack(tokens)
  local size, length = ${HEADER_BYTES} + #packedNames + #packedTokens, #packedNames
  return string.char(${VERSIONED_MAGIC}, ${u32('size')}, ${u32('length')}) .. packedNames .. packedTokens
end`

// Soft purge (app.cache.invalidate({ soft: true })): a version is not deleted but marked, its
// token followed by `~` and the purge time (ms, the purging instance's clock, as entries' storedAt
// is). An entry written before records the token as it was, a prefix of the marked one: it is still
// current, expired at the first purge time after its token. An entry written after records the marked
// token whole: not purged. Only the last SOFT_PURGES_KEPT times are kept: an entry that recorded a
// time dropped since no longer matches, and is missed as if the purge had been a hard one.

/** Soft purge times a version keeps, at most: what an entry written between two purges is matched by. */
export const SOFT_PURGES_KEPT = 8

/**
 * Lua, in the scripts that read an entry: `current(value)` is false when a version the value was
 * written under is missing or has changed (one MGET, in the entry's slot), and when its list of
 * versions cannot be read (not MessagePack, not a list of names, none, or keys MGET refuses): such
 * a value is then dropped and missed like an outdated one, and the next write replaces it, where an
 * error would fail every read of it until it expired. A value without a well-formed header is
 * answered as it is, for the reader to report as corrupt. For a value whose versions were softly
 * purged since it was written, it is the earliest such purge time (a number) instead of true.
 */
export const CURRENT_LUA = `
local function versionsOf (names)
  return redis.call('MGET', unpack(names))
end
-- Only when the versions differ from the tokens recorded: the time each was softly purged at after
-- the entry was written (the earliest), or false when one was replaced or deleted.
local function softPurged (versions, packed)
  local ok, tokens = pcall(cmsgpack.unpack, packed)
  if not ok or type(tokens) ~= 'table' or #tokens ~= #versions then return false end
  local at = false
  for i = 1, #versions do
    local now, was = versions[i], tokens[i]
    if now ~= was then
      if type(now) ~= 'string' or type(was) ~= 'string' or string.sub(now, 1, #was + 1) ~= was .. '~' then return false end
      local t = tonumber(string.match(now, '^[^~]+', #was + 2))
      if not t then return false end
      if not at or t < at then at = t end
    end
  end
  return at
end
local function current (value)
  if #value < ${HEADER_BYTES} or string.byte(value, 1) ~= ${VERSIONED_MAGIC} then return true end
  local a, b, c, d, e, f, g, h = string.byte(value, 2, ${HEADER_BYTES})
  local size = ((a * 256 + b) * 256 + c) * 256 + d
  local namesEnd = ${HEADER_BYTES} + ((e * 256 + f) * 256 + g) * 256 + h
  if size > #value or namesEnd > size then return true end
  local ok, names = pcall(cmsgpack.unpack, string.sub(value, ${HEADER_BYTES + 1}, namesEnd))
  if not ok then return false end
  local read, versions = pcall(versionsOf, names)
  if not read then return false end
  local packed = string.sub(value, namesEnd + 1, size)
  return cmsgpack.pack(versions) == packed or softPurged(versions, packed)
end`

/** The version keys a value names in its header (as Redis holds them); none for a value without one. */
export function versionNames (value: Buffer): string[] {
  if (value.length < HEADER_BYTES || value[0] !== VERSIONED_MAGIC) return []
  const namesEnd = HEADER_BYTES + value.readUInt32BE(5)
  if (namesEnd > value.length) return []
  return list(value.subarray(HEADER_BYTES, namesEnd))?.filter((name): name is string => typeof name === 'string') ?? []
}

function list (packed: Buffer): unknown[] | undefined {
  let unpacked: unknown
  try {
    unpacked = unpack(packed)
  } catch {
    return undefined
  }
  return Array.isArray(unpacked) ? unpacked : undefined
}

const strings = (packed: Buffer): string[] | undefined => {
  const items = list(packed)
  return items?.every((item) => typeof item === 'string') === true ? items as string[] : undefined
}

// Encryption: a sealed entry's additional data binds the versions it was written under (their names
// and tokens) with its Redis key. The header is outside the seal, so without this an old sealed
// entry put behind the header of a current one would open and be answered, though its versions were
// invalidated since. The tokens of versions that already exist are only known once the write script
// has read them: the store seals for the tokens it last saw (or its own fresh token, for a version
// it expects to create), and the script writes the entry only under exactly those; when they moved,
// it answers the tokens as they are, and the store seals again for them.

/**
 * The additional data of a sealed entry: its Redis key, and the version keys and tokens of its
 * header. JSON of strings: no two different triples give the same text.
 */
export function sealedFor (redisKey: string, names: readonly string[], tokens: readonly string[]): string {
  return JSON.stringify([redisKey, names, tokens])
}

/** The additional data a value's header binds (see sealedFor); CorruptEntryError for a header that cannot be read. */
export function sealedForValue (redisKey: string, value: Buffer): { aad: string, names: string[], tokens: string[] } {
  const size = value.readUInt32BE(1)
  const namesEnd = HEADER_BYTES + value.readUInt32BE(5)
  const names = strings(value.subarray(HEADER_BYTES, namesEnd))
  const tokens = strings(value.subarray(namesEnd, size))
  if (names === undefined || tokens === undefined || names.length !== tokens.length) throw new CorruptEntryError('unreadable versions header')
  return { aad: sealedFor(redisKey, names, tokens), names, tokens }
}

/** The store tags a value was written under, from the version keys it names (the generation is not a tag). */
export function versionTags (value: Buffer): string[] {
  const tags: string[] = []
  for (const name of versionNames(value)) {
    // An encoded tag holds no ':' or '}': the last '}:ver:' is the one before it.
    const at = name.lastIndexOf('}:ver:')
    if (at !== -1) tags.push(decodeSegment(name.slice(at + 6)))
  }
  return tags
}

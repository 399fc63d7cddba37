import { hash } from 'node:crypto'
import type { CacheEntry } from '../entry.js'
import { SHARDS } from './redis-keys.js'
import type { StoreCursor, StoreListedEntry, StoreListPage, StoreListQuery } from './store.js'
import { CURRENT_LUA, versionTags } from './versions.js'

// KEYS: members of one shard's tag set, all in its slot. Per key, its value while every version it
// was written under is current ({ value, purge time } when softly purged since), else false:
// expired, invalidated and foreign keys are not listed. Read-only: a listing changes nothing.
const READ_CURRENT = `${CURRENT_LUA}
local values = {}
for i = 1, #KEYS do
  local value = redis.pcall('GET', KEYS[i])
  local now = type(value) == 'string' and current(value)
  if now == true then values[i] = value elseif now then values[i] = { value, now } else values[i] = false end
end
return values`

/** The parts of an ioredis client a listing uses. */
export interface ListingClient {
  sscan: (key: string, cursor: string, count: 'COUNT', n: number) => Promise<[string, string[]]>
  defineCommand: (name: string, definition: { lua: string }) => void
}

interface ScriptedListingClient extends ListingClient {
  responseCacheReadCurrentBuffer: (...args: Array<string | number>) => Promise<Array<Buffer | [Buffer, number] | null>>
}

/** What the Redis store lends a listing. */
export interface ListingContext {
  client: ListingClient
  namespace: string
  /** The client's keyPrefix: set members hold it, and the client adds it to the keys it sends. */
  keyPrefix: string
  /** A tag's set in one shard, as the client names it (no keyPrefix). */
  tagKey: (shard: number, tag: string) => string
  /**
   * The entry in a value (opened, when sealed), expired at `softPurgedAt` if given, or undefined when
   * it does not decode (logged once).
   */
  decode: (redisKey: string, value: Buffer, softPurgedAt?: number) => CacheEntry | undefined
}

/** SSCAN calls per page at most: a set full of members whose entries are gone cannot make a page endless. */
export const SCANS_PER_PAGE = 64
/** The COUNT hint of each SSCAN, at least. */
const SCAN_COUNT_MIN = 50

/** Where a page starts: the set, the shard, the SSCAN cursor and, within its batch, the last member answered. */
interface Position { set: number, shard: number, scan: string, after: string }

/** A cursor this module made; anything else ends the listing. Only the SSCAN cursor reaches Redis, as digits. */
function position (cursor: StoreCursor | undefined): Position | undefined {
  if (cursor === undefined) return { set: 0, shard: 0, scan: '0', after: '' }
  const [set, shard, scan, after] = cursor
  if (cursor.length !== 4 || !Number.isSafeInteger(set) || (set as number) < 0 || !Number.isSafeInteger(shard) || (shard as number) < 0 || (shard as number) >= SHARDS) return undefined
  if (typeof scan !== 'string' || !/^\d{1,20}$/.test(scan) || typeof after !== 'string' || !/^[0-9a-f]{0,16}$/.test(after)) return undefined
  return { set: set as number, shard: shard as number, scan, after }
}

/**
 * Members of one SSCAN batch come in no set order: they are taken in the order of a hash of their
 * name, so that a page that ends within a batch goes on after the last one it answered (the cursor
 * holds that hash, never a key).
 */
const mark = (name: string): string => hash('sha256', name, 'hex').slice(0, 16)

/**
 * A page of entries: SSCAN over each set's 16 shards in turn (never KEYS or SCAN with a pattern),
 * each batch read in one script call in its slot. Bounded by `limit` entries and SCANS_PER_PAGE calls.
 */
export async function listRedis (ctx: ListingContext, { sets, having, cursor, limit }: StoreListQuery): Promise<StoreListPage> {
  const client = ctx.client as ScriptedListingClient
  if (typeof client.responseCacheReadCurrentBuffer !== 'function') client.defineCommand('responseCacheReadCurrent', { lua: READ_CURRENT })
  const entries: StoreListedEntry[] = []
  const at = position(cursor)
  if (at === undefined) return { entries }
  for (let scans = 0; at.set < sets.length; scans++) {
    if (scans === SCANS_PER_PAGE) return { entries, cursor: [at.set, at.shard, at.scan, at.after] }
    const [next, members] = await client.sscan(ctx.tagKey(at.shard, sets[at.set]), at.scan, 'COUNT', Math.max(limit, SCAN_COUNT_MIN))
    const batch = members
      .map((member) => ({ name: member.startsWith(ctx.keyPrefix) ? member.slice(ctx.keyPrefix.length) : member, mark: '' }))
      .map((member) => ({ ...member, mark: mark(member.name) }))
      .filter((member) => member.mark > at.after)
      .sort((a, b) => a.mark < b.mark ? -1 : 1)
    const values = batch.length === 0 ? [] : await client.responseCacheReadCurrentBuffer(batch.length, ...batch.map((member) => member.name))
    for (let i = 0; i < batch.length; i++) {
      const read = values[i]
      if (read === null) continue
      const [value, softPurgedAt] = Array.isArray(read) ? [read[0], Number(read[1])] : [read]
      const entry = ctx.decode(batch[i].name, value, softPurgedAt)
      if (entry === undefined) continue
      const tags = versionTags(value)
      if (!having.every((tag) => tags.includes(tag))) continue
      if (entries.length === limit) return { entries, cursor: [at.set, at.shard, at.scan, batch[i - 1]?.mark ?? at.after] }
      const name = batch[i].name
      // ns:{shard}:rest is the plugin's ns:rest.
      const key = ctx.namespace + ':' + name.slice(ctx.namespace.length + 6)
      entries.push({ key, entry, tags, size: value.length })
    }
    at.after = ''
    if (next !== '0') at.scan = next
    else {
      at.scan = '0'
      if (++at.shard === SHARDS) {
        at.shard = 0
        at.set++
      }
    }
  }
  return { entries }
}

import type { FastifyBaseLogger } from 'fastify'
import { randomBytes } from 'node:crypto'
import { CorruptEntryError, decodeEntry, encodeEntry, expiredAt, type CacheEntry } from '../entry.js'
import { FST_RESPONSE_CACHE_STORE_UNAVAILABLE } from '../errors.js'
import { DEFAULT_MAX_ENTRY_BYTES } from '../options.js'
import { encodeSegment } from '../key.js'
import { hashTagOf, keyPrefixOf, prefixPattern, SHARD_SLOTS, SHARDS, shardOf, shardTag } from './redis-keys.js'
import { listRedis, type ListingClient } from './redis-list.js'
import { SealedEntryError, type Keyring } from './encryption.js'
import { UnreadableLog } from '../observability/trouble.js'
import { kChecksEntries, type CacheStore, type StoreListPage, StoreListQuery, StoreSetOptions, StoreState, StoreStats } from './store.js'
import { TurnBatch } from './turn-batch.js'
import { CURRENT_LUA, entryBytes, sealedFor, sealedForValue, SOFT_PURGES_KEPT, VERSION_LUA, versionTags } from './versions.js'

export { SHARD_SLOTS, SHARDS } from './redis-keys.js'

/** The parts of an ioredis `Redis` or `Cluster` the store uses. */
export interface RedisClientLike {
  status: string
  connect?: () => Promise<void>
  on?: (event: 'ready' | 'close' | 'refresh', listener: () => void) => unknown
  off?: (event: 'ready' | 'close' | 'refresh', listener: () => void) => unknown
  isCluster?: boolean
  /** A Cluster's slot map: the nodes of each slot, its master first ("host:port"). */
  slots?: string[][]
  getBuffer: (key: string) => Promise<Buffer | null>
  set: (key: string, value: string, px: 'PX', ms: number, nx: 'NX') => Promise<unknown>
  unlink: (...keys: string[]) => Promise<number>
  scan: (cursor: string, match: 'MATCH', pattern: string, count: 'COUNT', n: number) => Promise<[string, string[]]>
  defineCommand: (name: string, definition: { numberOfKeys?: number, lua: string }) => void
  ping: () => Promise<string>
  info: (section: string) => Promise<string>
  nodes?: (role: 'master') => RedisClientLike[]
  options?: { keyPrefix?: unknown, redisOptions?: { keyPrefix?: unknown } }
}

interface ScriptedClient extends RedisClientLike {
  responseCacheSetMany: (...args: Array<string | Buffer | number>) => Promise<WriteResult[]>
  responseCacheDropTags: (...args: Array<string | number>) => Promise<number>
  responseCacheSoftPurge: (...args: Array<string | number>) => Promise<number>
  responseCacheUnlock: (...args: string[]) => Promise<number>
  responseCacheGetOrLockBuffer: (...args: Array<string | number>) => Promise<Buffer | number | SoftPurged>
  responseCacheGetBuffer: (...args: Array<string | number>) => Promise<Buffer | SoftPurged | null>
  responseCacheCountLive: (...args: Array<string | number>) => Promise<[number, number]>
}

const UNLINK_BATCH = 500
/** Entries written by one script call at most: a long script would hold Redis up for other clients. */
const WRITE_BATCH = 64
const TAG_MEMO_SIZE = 10_000
/** Sealed values whose plaintext is kept, at most, and the largest kept (hot entries are small). */
const OPENED_MAX = 1024
const OPENED_MAX_BYTES = 65_536
/** Members of a tag set checked for expired entries on each write to it. */
const PRUNE_SAMPLE = 2

// Writes a batch of entries in one call. Per entry, KEYS holds the entry, its coalescing lock, the
// shard's generation key, then a tag set and its version key per tag; ARGV holds the value (the
// entry's bytes: the header is put before them here), the TTL in ms, the writer's lock token ('' for
// none), the number of tags, a token no write used before (see versions.ts), then per version (the
// generation first) the token a sealed entry was sealed for ('' for any). Each entry is stored behind
// the header of the versions it is written under (created where missing with the fresh token), added to
// its tag sets (a tag set lives as long as its longest-lived entry) and its lock released if the
// token still holds it. A busy route's set is written to for ever and so never expires: each write
// also looks at two random members and removes those whose entry has expired, which keeps a set
// within about twice its live entries (a set the write just created is not looked at). An entry whose tag set or version is a foreign value is not
// kept, nor a sealed one whose versions are no longer those it was sealed for. Answers per entry 1,
// 0 (a foreign value), the tokens of its versions as they are now (sealed for others), or the error
// Redis raised (full, under noeviction):
// whatever such a write did before it failed is harmless, since an entry is never answered without
// its versions, and a version without its entry is only a small key that expires.
const SET_MANY = `${VERSION_LUA}
-- Redis holds a script to maxmemory only until its first write (a PEXPIRE would lift the limit for
-- the rest): first a write that needs memory and changes nothing (SETRANGE of no bytes), so that a
-- full Redis refuses every entry of the call.
local full = redis.pcall('SETRANGE', KEYS[3], 0, '')
full = type(full) == 'table' and string.find(full.err, 'OOM', 1, true) and full.err
local function write (k, a, last)
  local entry, ms, token = KEYS[k], tonumber(ARGV[a + 1]), ARGV[a + 4]
  local names, tokens, moved = {}, {}, false
  local sealedFor = a + 5
  for i = k + 2, last, 2 do
    local ok, current = pcall(version, KEYS[i], token, i > k + 2 and ms)
    if not ok then
      if string.find(type(current) == 'table' and current.err or tostring(current), 'WRONGTYPE', 1, true) then return 0 end
      error(current)
    end
    names[#names + 1] = KEYS[i]
    tokens[#tokens + 1] = current
    if ARGV[sealedFor] ~= '' and ARGV[sealedFor] ~= current then moved = true end
    sealedFor = sealedFor + 1
  end
  if moved then return tokens end
  redis.call('SET', entry, header(names, tokens) .. ARGV[a], 'PX', ms)
  for i = k + 3, last, 2 do
    local added = redis.pcall('SADD', KEYS[i], entry)
    if type(added) == 'table' and added.err then
      redis.call('DEL', entry)
      return 0
    end
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < ms then redis.call('PEXPIRE', KEYS[i], ms) end
    -- A set without a TTL was just created: nothing in it to prune.
    if ttl ~= -1 then
      for _, member in ipairs(redis.call('SRANDMEMBER', KEYS[i], ${PRUNE_SAMPLE})) do
        if redis.call('EXISTS', member) == 0 then redis.call('SREM', KEYS[i], member) end
      end
    end
  end
  return 1
end
local results = {}
local k, a = 1, 1
while a <= #ARGV do
  local tags = tonumber(ARGV[a + 3])
  local last = k + 2 + 2 * tags
  local ok, result = false, full
  if not full then ok, result = pcall(write, k, a, last) end
  if not ok then result = type(result) == 'table' and result.err or tostring(result) end
  local lockToken = ARGV[a + 2]
  if lockToken ~= '' and redis.call('GET', KEYS[k + 1]) == lockToken then redis.call('DEL', KEYS[k + 1]) end
  results[#results + 1] = result
  k = last + 1
  a = a + 6 + tags
end
return results`

// KEYS: a tag set and its version key per tag, all in this script's slot. Deleting the version is
// what makes the invalidation hold: from then on no entry written under it is answered, whatever
// Redis evicted (the set included). Dropping the set's entries and the set frees their memory and
// counts them. Nothing here needs memory, so it runs on a full Redis too.
const DROP_TAGS = `
local dropped = 0
for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i + 1])
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, ${UNLINK_BATCH} do
    dropped = dropped + redis.call('UNLINK', unpack(members, j, math.min(j + ${UNLINK_BATCH - 1}, #members)))
  end
  redis.call('UNLINK', KEYS[i])
end
return dropped`

// KEYS: a tag set and its version key per tag, all in this script's slot; ARGV[1]: the purge time
// (ms). Soft purge (see versions.ts): each version is marked with the time, so that every entry
// written under it so far reads as expired then, whatever Redis evicted (the set included), and
// entries written after it are not; the entries stay. Answers how many live entries the sets hold.
// A Redis too full to write the mark deletes the version: the purge is then a hard one.
const SOFT_PURGE = `
local marked, seen = 0, {}
for i = 1, #KEYS, 2 do
  local version = redis.call('GET', KEYS[i + 1])
  if version then
    local token, times = string.match(version, '^([^~]*)(.*)$')
    times = times .. '~' .. ARGV[1]
    local kept = select(2, string.gsub(times, '~', ''))
    for _ = ${SOFT_PURGES_KEPT + 1}, kept do times = string.sub(times, (string.find(times, '~', 2, true))) end
    local written = redis.pcall('SET', KEYS[i + 1], token .. times, 'KEEPTTL')
    if type(written) == 'table' and written.err then redis.call('DEL', KEYS[i + 1]) end
    for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
      if not seen[member] then
        seen[member] = true
        marked = marked + redis.call('EXISTS', member)
      end
    end
  end
end
return marked`

// The entry, when every version it was written under is current; an outdated one is unlinked and
// answered as a miss. One softly purged since it was written: { entry, purge time }.
const GET = `${CURRENT_LUA}
local value = redis.call('GET', KEYS[1])
if not value then return false end
local now = current(value)
if not now then
  redis.call('UNLINK', KEYS[1])
  return false
end
if now == true then return value end
return { value, now }`

// A cold miss in one round trip: the current entry if there is one (as GET answers it), else the
// coalescing lock if it is free (1: taken with ARGV[1] as its token; 0: another holder has it). A
// lock Redis cannot write (full, under noeviction) answers 1 too: the request runs its handler as if
// the store had none.
const GET_OR_LOCK = `${CURRENT_LUA}
local value = redis.call('GET', KEYS[1])
if value then
  local now = current(value)
  if now == true then return value end
  if now then return { value, now } end
  redis.call('UNLINK', KEYS[1])
end
if redis.pcall('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) == false then return 0 end
return 1`

// Live members of the shard's sets in KEYS, estimated from up to 20 sampled members of each, and the
// MEMORY USAGE of one live member (0 when none was seen).
const COUNT_LIVE = `
local total = 0
local usage = 0
for i = 1, #KEYS do
  local n = redis.call('SCARD', KEYS[i])
  if n > 0 then
    local sample = redis.call('SRANDMEMBER', KEYS[i], 20)
    local live = 0
    for _, member in ipairs(sample) do
      if redis.call('EXISTS', member) == 1 then
        live = live + 1
        if usage == 0 then usage = redis.call('MEMORY', 'USAGE', member) or 0 end
      end
    end
    total = total + n * live / #sample
  end
end
return { math.floor(total + 0.5), usage }`

// Deletes the lock only while it still holds the caller's token: a lock that expired and was taken
// by another process is never released by the first.
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** What the read scripts answer for an entry softly purged since it was written: its value and the purge time. */
type SoftPurged = [Buffer, number]

/** What the write script answers per entry: see SET_MANY. */
type WriteResult = number | string | string[]

/** One entry's part of a batched write. */
interface BatchedWrite {
  keys: string[]
  args: Array<string | number | Buffer>
}

/** Redis answered this write with an error (full, under noeviction): it is up, and refused this one call. */
export class RedisRefusedError extends Error {
  override name = 'ReplyError'
}

/**
 * One Redis value per entry, in the binary form of entry.ts. Keys are
 * `namespace:{shard}:rest-of-key`: the `{shard}` hash tag puts an entry and its tag sets in one
 * Cluster slot, so they are written and dropped together by one script.
 */
export class RedisStore implements CacheStore {
  readonly name = 'redis'
  /** Every entry it answers went through decodeEntry. */
  readonly [kChecksEntries] = true
  readonly #client: ScriptedClient
  readonly #namespace: string
  readonly #log: FastifyBaseLogger
  /** Seals what is written and opens what is read, when the `encryption` option is given. */
  readonly #keyring: Keyring | undefined
  /**
   * The last sealed value opened per Redis key, with its plaintext: a hot entry is read again and
   * again, and bytes equal to ones that authenticated before open to the same plaintext, so only
   * new bytes pay for AES-GCM. Bounded in count and in the size of what it keeps.
   */
  readonly #opened = new Map<string, { value: Buffer, plain: Buffer }>()
  readonly #unreadable: UnreadableLog
  /** `maxEntryBytes`: no lz4 body declaring more is inflated (and none larger is compressed). */
  readonly #maxInflateBytes: number
  readonly #encodedTags = new Map<string, string>()
  readonly #tokenPrefix = randomBytes(12).toString('base64url') + '.'
  #tokens = 0
  /** A connection attempt failed or a connection was lost since the client was last ready. */
  #lost = false
  /**
   * On a Cluster, the failure domain of a key is its shard: the master that holds the shard's slot
   * can die alone, and its keys are paused alone. A single Redis fails as one.
   */
  readonly failureDomain: ((key: string) => number) | undefined
  readonly #writes = new TurnBatch<BatchedWrite, WriteResult>(async (writes) => await this.#sendWrites(writes), WRITE_BATCH)
  /**
   * With encryption: the token of each version key as last seen (read or written), which a sealed
   * entry is sealed for (see versions.ts). Bounded like the tag memo; a token that moved since costs
   * one more round trip, never a wrong entry.
   */
  readonly #versionTokens = new Map<string, string>()
  /** The client's keyPrefix: Redis holds every key with it, and SCAN answers keys with it. */
  readonly #keyPrefix: string
  /** The store tags of the entries read, when asked for (the tiered store keeps copies by them). */
  readonly #tagsOf: WeakMap<CacheEntry, string[]> | undefined

  constructor (options: { client: RedisClientLike, namespace: string, log: FastifyBaseLogger, keyring?: Keyring, readTags?: boolean, maxEntryBytes?: number }) {
    this.#client = options.client as ScriptedClient
    this.#namespace = options.namespace
    this.#log = options.log
    this.#unreadable = new UnreadableLog(options.log)
    this.#maxInflateBytes = options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES
    this.#keyring = options.keyring
    this.failureDomain = this.#client.isCluster === true ? shardOf : undefined
    this.#keyPrefix = keyPrefixOf(this.#client)
    this.#tagsOf = options.readTags === true ? new WeakMap() : undefined
    if (typeof this.#client.responseCacheGetBuffer !== 'function') {
      this.#client.defineCommand('responseCacheSetMany', { lua: SET_MANY })
      this.#client.defineCommand('responseCacheDropTags', { lua: DROP_TAGS })
      this.#client.defineCommand('responseCacheSoftPurge', { lua: SOFT_PURGE })
      this.#client.defineCommand('responseCacheUnlock', { numberOfKeys: 1, lua: UNLOCK })
      this.#client.defineCommand('responseCacheGet', { numberOfKeys: 1, lua: GET })
      this.#client.defineCommand('responseCacheGetOrLock', { numberOfKeys: 2, lua: GET_OR_LOCK })
      this.#client.defineCommand('responseCacheCountLive', { lua: COUNT_LIVE })
    }
  }

  /** `ns:rest` becomes `ns:{shard}:rest`; a key from elsewhere is put under the namespace too. */
  redisKey (key: string): string {
    const rest = key.startsWith(this.#namespace + ':') ? key.slice(this.#namespace.length + 1) : key
    return this.#namespace + ':' + shardTag(shardOf(key)) + ':' + rest
  }

  #base (shard: number): string {
    return this.#namespace + ':' + shardTag(shard) + ':'
  }

  #encoded (tag: string): string {
    // Route and path tags repeat on every write of a route: encode each once (a bounded memo).
    let encoded = this.#encodedTags.get(tag)
    if (encoded === undefined) {
      if (this.#encodedTags.size >= TAG_MEMO_SIZE) this.#encodedTags.clear()
      this.#encodedTags.set(tag, encoded = encodeSegment(tag))
    }
    return encoded
  }

  #tagKey (shard: number, tag: string): string {
    return this.#base(shard) + 'tag:' + this.#encoded(tag)
  }

  /** A tag's set and its version key (versions.ts), in the shard's slot. */
  #tagKeys (shard: number, tag: string): [string, string] {
    const encoded = this.#encoded(tag)
    return [this.#base(shard) + 'tag:' + encoded, this.#base(shard) + 'ver:' + encoded]
  }

  /** The shard's generation: a version every entry of the shard is written under, deleted by clear(). */
  #generationKey (shard: number): string {
    return this.#base(shard) + 'gen'
  }

  /** Unique across processes (a random prefix per store) and cheap per lock (a counter, not a random draw). */
  #token (): string {
    return this.#tokenPrefix + (++this.#tokens).toString(36)
  }

  /** Connects a `lazyConnect` client and waits for one still connecting, at most `timeoutMs`. */
  async connect (timeoutMs: number): Promise<boolean> {
    const client = this.#client
    if (client.status === 'ready') return true
    if (client.status === 'end' || typeof client.on !== 'function') return false
    let stop = (): void => {}
    const ready = new Promise<boolean>((resolve) => {
      const listener = (): void => { resolve(true) }
      const timer = setTimeout(() => { resolve(false) }, timeoutMs)
      client.on?.('ready', listener)
      stop = () => {
        clearTimeout(timer)
        client.off?.('ready', listener)
      }
    })
    // A failed first attempt rejects connect(); the client's retry strategy goes on trying.
    if (client.status === 'wait') client.connect?.().catch(() => {})
    try {
      return await ready
    } finally {
      stop()
    }
  }

  state (): StoreState {
    const status = this.#client.status
    if (status === 'ready') return 'up'
    // Connecting until a connection attempt fails or a connection is lost ('close'); then down,
    // including while the client tries again.
    return this.#lost || status === 'end' || status === 'close' || status === 'reconnecting' ? 'down' : 'connecting'
  }

  onReady (listener: (shards?: readonly number[]) => void): () => void {
    const client = this.#client
    const ready = (): void => {
      this.#lost = false
      listener()
    }
    const closed = (): void => { this.#lost = true }
    // After a failover the client's slot map names a new master for the failed shards: their keys
    // are tried again from the next request, not when the breaker's pause ends.
    let masters = this.#shardMasters()
    const refreshed = (): void => {
      const now = this.#shardMasters()
      const moved = now.flatMap((master, shard) => master !== masters[shard] ? [shard] : [])
      masters = now
      if (moved.length > 0) listener(moved)
    }
    client.on?.('ready', ready)
    client.on?.('close', closed)
    if (client.isCluster === true) client.on?.('refresh', refreshed)
    return () => {
      client.off?.('ready', ready)
      client.off?.('close', closed)
      client.off?.('refresh', refreshed)
    }
  }

  /** The master of each shard's slot in the Cluster client's slot map (undefined before it has one). */
  #shardMasters (): Array<string | undefined> {
    return SHARD_SLOTS.map((slot) => this.#client.slots?.[slot]?.[0])
  }

  #ready (): void {
    // Fail at once rather than wait in ioredis's offline queue: the request must not queue behind Redis.
    if (this.#client.status !== 'ready') throw new FST_RESPONSE_CACHE_STORE_UNAVAILABLE('redis', `client is ${this.#client.status}`)
  }

  async get (key: string): Promise<CacheEntry | undefined> {
    this.#ready()
    const redisKey = this.redisKey(key)
    let data: Buffer | SoftPurged | null
    try {
      data = await this.#client.responseCacheGetBuffer(redisKey)
    } catch (error) {
      return this.#readFailed(redisKey, error)
    }
    return data === null ? undefined : this.#decodeRead(redisKey, data)
  }

  /**
   * The entry, or else the coalescing lock for computing it: `{ token }` when taken, `{}` when held
   * elsewhere. Sent at once, not batched like writes: a request waits on it, and measured under load
   * a lookup that waits for the end of the event loop's turn costs more than its own round trip.
   */
  async getOrLock (key: string, ttlMs: number): Promise<{ entry?: CacheEntry, token?: string }> {
    this.#ready()
    const redisKey = this.redisKey(key)
    const token = this.#token()
    let answer: Buffer | number | SoftPurged
    try {
      answer = await this.#client.responseCacheGetOrLockBuffer(redisKey, this.#lockKey(key), token, Math.max(1, Math.ceil(ttlMs)))
    } catch (error) {
      return { entry: this.#readFailed(redisKey, error) }
    }
    if (answer === 1) return { token }
    if (answer === 0) return {}
    return { entry: this.#decodeRead(redisKey, answer as Buffer | SoftPurged) }
  }

  /** What a read script answered: the entry, expired at its purge time if it was softly purged. */
  #decodeRead (redisKey: string, answer: Buffer | SoftPurged): CacheEntry | undefined {
    return Array.isArray(answer) ? this.#decode(redisKey, answer[0], Number(answer[1])) : this.#decode(redisKey, answer)
  }

  #readFailed (redisKey: string, error: unknown): undefined {
    // A set or hash under our key is someone else's value: a miss, not a store failure.
    if (String((error as Error).message).includes('WRONGTYPE')) return this.#corrupt(redisKey, error)
    throw error
  }

  /** `softPurgedAt`: the entry was softly purged then (see SOFT_PURGE), and is answered expired from then. */
  #decode (redisKey: string, data: Buffer, softPurgedAt?: number): CacheEntry | undefined {
    try {
      const bytes = entryBytes(data)
      let entry = decodeEntry(this.#keyring === undefined ? bytes : this.#open(this.#keyring, redisKey, data, bytes), this.#maxInflateBytes)
      if (softPurgedAt !== undefined) entry = expiredAt(entry, softPurgedAt)
      this.#tagsOf?.set(entry, versionTags(data))
      return entry
    } catch (error) {
      if (error instanceof SealedEntryError && error.reason === 'outdated') {
        // Expected once per entry after an upgrade: the next write seals it anew.
        this.#log.debug({ responseCache: { problem: error.message } }, 'response cache: entry sealed by an earlier release treated as a miss')
        return undefined
      }
      if (error instanceof CorruptEntryError || error instanceof SealedEntryError) return this.#corrupt(redisKey, error)
      /* c8 ignore next 2 */
      throw error
    }
  }

  /** The store tags an entry this store read was written under (with `readTags`). */
  tagsOf (entry: CacheEntry): string[] | undefined {
    return this.#tagsOf?.get(entry)
  }

  /**
   * The plaintext of a sealed value. The additional data is the Redis key and the versions header in
   * front of the seal: a sealed entry copied under another key, or put behind the versions of
   * another write, does not open.
   */
  #open (keyring: Keyring, redisKey: string, value: Buffer, sealed: Buffer): Buffer {
    const memo = this.#opened.get(redisKey)
    // The whole value, header included: bytes equal to ones that opened open the same way.
    if (memo !== undefined && memo.value.equals(value)) return memo.plain
    const { aad, names, tokens } = sealedForValue(redisKey, value)
    const plain = keyring.open(sealed, aad)
    // The lookup script answered it: its versions are current.
    this.#sawTokens(names, tokens)
    if (value.length <= OPENED_MAX_BYTES) {
      this.#opened.delete(redisKey)
      this.#opened.set(redisKey, { value, plain })
      // A Map iterates in insertion order: the first key is the one opened longest ago.
      if (this.#opened.size > OPENED_MAX) this.#opened.delete(this.#opened.keys().next().value as string)
    }
    return plain
  }

  /**
   * The writes of one turn of the event loop go as one script call per slot group (one in all on a
   * single Redis): see TurnBatch. The promise settles with this entry's own outcome.
   */
  async set (key: string, entry: CacheEntry, options: StoreSetOptions): Promise<void> {
    this.#ready()
    const shard = shardOf(key)
    const redisKey = this.redisKey(key)
    const keys = [redisKey, this.#lockKey(key), this.#generationKey(shard)]
    for (const tag of new Set(options.tags)) keys.push(...this.#tagKeys(shard, tag))
    const encoded = encodeEntry(entry, this.#maxInflateBytes)
    const tags = (keys.length - 3) / 2
    const head = [Math.max(1, Math.ceil(options.ttl * 1000)), options.lockToken ?? '', tags]
    const keyring = this.#keyring
    let result: WriteResult
    if (keyring === undefined) {
      result = await this.#writes.add(this.#group(shard), { keys, args: [encoded, ...head, this.#token(), ...new Array<string>(tags + 1).fill('')] })
    } else {
      // Sealed for the Redis key and the versions it is written under (see versions.ts): first the
      // tokens last seen, or a fresh one for a version not seen (created with it if missing); if the
      // versions moved, once more for the tokens the script answered. The versions are the
      // generation, then one per tag (every other key from the third), as Redis names them.
      const names = keys.filter((_, i) => i >= 2 && i % 2 === 0).map((name) => this.#keyPrefix + name)
      let fresh = this.#token()
      let tokens = names.map((name) => this.#versionTokens.get(name) ?? fresh)
      for (let attempt = 1; ; attempt++) {
        const value = keyring.seal(encoded, sealedFor(redisKey, names, tokens))
        result = await this.#writes.add(this.#group(shard), { keys, args: [value, ...head, fresh, ...tokens] })
        if (!Array.isArray(result)) break
        this.#sawTokens(names, result)
        // Moved twice: an invalidation raced this write; not stored, as if it had come just after.
        if (attempt === 2) return
        tokens = result
        fresh = this.#token()
      }
      if (result === 1) this.#sawTokens(names, tokens)
    }
    if (result === 1) return
    if (typeof result === 'string') throw new RedisRefusedError(result)
    throw new FST_RESPONSE_CACHE_STORE_UNAVAILABLE('redis', 'a tag set or version of the entry holds a value of another type')
  }

  #sawTokens (names: readonly string[], tokens: readonly string[]): void {
    if (this.#versionTokens.size + names.length > TAG_MEMO_SIZE) this.#versionTokens.clear()
    for (let i = 0; i < names.length; i++) this.#versionTokens.set(names[i], tokens[i])
  }

  /** Calls of one Cluster slot may share a script; on a single Redis, all may. */
  #group (shard: number): number {
    return this.#client.isCluster === true ? shard : 0
  }

  async #sendWrites (writes: BatchedWrite[]): Promise<WriteResult[]> {
    this.#ready()
    const keys = writes.flatMap((write) => write.keys)
    const args = writes.flatMap((write) => write.args)
    return await this.#client.responseCacheSetMany(keys.length, ...keys, ...args)
  }

  /**
   * Entries: the live members of the sets in `groups` (every response entry is in its route's set,
   * every value in the values' set), in all shards; a set holds members whose entry expired or was
   * invalidated until they are pruned, so each set's count is scaled by the live share of up to 20
   * sampled members (exact for sets of 20 or fewer). Bytes: that count times the mean `MEMORY USAGE`
   * of one live entry per shard. Evictions: the server's `evicted_keys` (every namespace: Redis does
   * not count evictions per prefix).
   */
  async stats (groups: readonly string[] = []): Promise<StoreStats> {
    this.#ready()
    const perShard = groups.length === 0
      ? []
      : await Promise.all(Array.from({ length: SHARDS }, async (_, shard) => {
        const keys = groups.map((group) => this.#tagKey(shard, group))
        return await this.#client.responseCacheCountLive(keys.length, ...keys)
      }))
    const entries = perShard.reduce((sum, [count]) => sum + count, 0)
    const sizes = perShard.flatMap(([, usage]) => usage > 0 ? [usage] : [])
    const meanSize = sizes.length === 0 ? 0 : sizes.reduce((sum, n) => sum + n, 0) / sizes.length
    const infos = await Promise.all(this.#masters().map(async (node) => await node.info('stats')))
    const evictions = infos.reduce((sum, info) => sum + Number(/evicted_keys:(\d+)/.exec(info)?.[1] ?? 0), 0)
    return { entries, bytes: Math.round(entries * meanSize), evictions }
  }

  /** A page of live entries, by SSCAN over the tag sets: see redis-list.ts. */
  async list (query: StoreListQuery): Promise<StoreListPage> {
    this.#ready()
    const context = {
      client: this.#client as unknown as ListingClient,
      namespace: this.#namespace,
      keyPrefix: this.#keyPrefix,
      tagKey: (shard: number, tag: string) => this.#tagKey(shard, tag),
      decode: (redisKey: string, value: Buffer, softPurgedAt?: number) => this.#decode(redisKey, value, softPurgedAt)
    }
    return await listRedis(context, query)
  }

  async ping (): Promise<string> {
    this.#ready()
    return await this.#client.ping()
  }

  /** `SET lock token NX PX ttl`, in the entry's slot. */
  async lock (key: string, ttlMs: number): Promise<string | undefined> {
    this.#ready()
    const token = this.#token()
    const answer = await this.#client.set(this.#lockKey(key), token, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')
    return answer === 'OK' ? token : undefined
  }

  async unlock (key: string, token: string): Promise<void> {
    this.#ready()
    await this.#client.responseCacheUnlock(this.#lockKey(key), token)
  }

  #lockKey (key: string): string {
    const redisKey = this.redisKey(key)
    const tagEnd = redisKey.indexOf('}') + 1
    return redisKey.slice(0, tagEnd) + ':lock' + redisKey.slice(tagEnd)
  }

  async delete (key: string): Promise<boolean> {
    this.#ready()
    return await this.#client.unlink(this.redisKey(key)) > 0
  }

  async invalidateTags (tags: readonly string[]): Promise<number> {
    return await this.#eachShard(tags, async (keys) => await this.#client.responseCacheDropTags(keys.length, ...keys))
  }

  /** Soft purge: see SOFT_PURGE. */
  async softInvalidateTags (tags: readonly string[], at: number): Promise<number> {
    return await this.#eachShard(tags, async (keys) => await this.#client.responseCacheSoftPurge(keys.length, ...keys, Math.floor(at)))
  }

  /** One script call per shard (one slot each) with each tag's set and version key there; answers the sum of their counts. */
  async #eachShard (tags: readonly string[], call: (keys: string[]) => Promise<number>): Promise<number> {
    this.#ready()
    const unique = [...new Set(tags)]
    if (unique.length === 0) return 0
    const perShard = await Promise.all(Array.from({ length: SHARDS }, async (_, shard) => await call(unique.flatMap((tag) => this.#tagKeys(shard, tag)))))
    return perShard.reduce((sum, n) => sum + n, 0)
  }

  /**
   * Deletes every shard's generation, which makes every entry of the namespace a miss at once; then
   * SCANs and UNLINKs the namespace, node by node, in batches that share a slot, to free the memory;
   * then deletes the generations again, so that no write landing during the SCAN (whose tag sets it
   * may have unlinked) is answered either.
   */
  async clear (): Promise<void> {
    this.#ready()
    await this.#dropGenerations()
    const pattern = prefixPattern(this.#keyPrefix + this.#namespace + ':')
    for (const node of this.#masters()) {
      // SCAN answers keys as Redis holds them; the node client adds its own keyPrefix (if any) again.
      const nodePrefix = keyPrefixOf(node, false)
      let cursor = '0'
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
        cursor = next
        const bySlot = new Map<string, string[]>()
        for (const key of keys) {
          const tag = hashTagOf(key)
          const name = key.startsWith(nodePrefix) ? key.slice(nodePrefix.length) : key
          const group = bySlot.get(tag)
          if (group === undefined) bySlot.set(tag, [name])
          else group.push(name)
        }
        for (const group of bySlot.values()) {
          for (let i = 0; i < group.length; i += UNLINK_BATCH) await node.unlink(...group.slice(i, i + UNLINK_BATCH))
        }
      } while (cursor !== '0')
    }
    await this.#dropGenerations()
  }

  /**
   * The token of each shard's generation, null where there is none. One that was there and is gone
   * or replaced means the namespace's entries were lost: Redis restarted empty, was flushed, failed
   * over to an empty replica, or clear() ran. One GET per shard, off the request path.
   */
  async generations (): Promise<Array<string | null>> {
    this.#ready()
    return await Promise.all(Array.from({ length: SHARDS }, async (_, shard) => {
      const token = await this.#client.getBuffer(this.#generationKey(shard))
      return token === null ? null : token.toString('latin1')
    }))
  }

  async #dropGenerations (): Promise<void> {
    await Promise.all(Array.from({ length: SHARDS }, async (_, shard) => await this.#client.unlink(this.#generationKey(shard))))
  }

  /** Every master of a Cluster, or the one client. */
  #masters (): RedisClientLike[] {
    return this.#client.isCluster === true && this.#client.nodes !== undefined ? this.#client.nodes('master') : [this.#client]
  }

  #corrupt (redisKey: string, error: unknown): undefined {
    this.#unreadable.report(redisKey, String((error as Error).message))
    return undefined
  }
}

import Fastify from 'fastify'
import t from 'tap'
import { encodeEntry } from '../lib/entry.js'
import { listRedis, SCANS_PER_PAGE, type ListingContext } from '../lib/stores/redis-list.js'
import type { StoreCursor } from '../lib/stores/store.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { RedisStore } from '../lib/stores/redis.js'
import { VERSIONED_MAGIC, versionNames } from '../lib/stores/versions.js'
import { connect, startRedis } from './helpers/redis.js'
import { makeEntry } from './stores/contract.js'

const server = await startRedis(t)
const client = await connect(t, server)

t.test('a set of members whose entries are gone: each page stops after SCANS_PER_PAGE SSCAN calls, and the listing ends', async (t) => {
  // One set per shard, 400 members each, none with a value: many SSCAN batches per shard, nothing to list.
  const tagKey = (shard: number): string => `gone:{${shard.toString(16).padStart(2, '0')}}:tag:t`
  for (let shard = 0; shard < 16; shard++) {
    await client.sadd(tagKey(shard), ...Array.from({ length: 400 }, (_, i) => `gone:{${shard.toString(16).padStart(2, '0')}}:entry:${i}`))
  }
  const context: ListingContext = { client, namespace: 'gone', keyPrefix: '', tagKey, decode: () => { t.fail('nothing to decode'); return undefined } }
  let pages = 0
  let cursor: StoreCursor | undefined
  do {
    const page = await listRedis(context, { sets: ['t'], having: [], cursor, limit: 10 })
    t.same(page.entries, [])
    cursor = page.cursor
    pages++
  } while (cursor !== undefined)
  // About 8 batches of 50 per shard: more SSCAN calls than one page may make.
  t.ok(pages >= Math.floor(16 * 400 / 50 / SCANS_PER_PAGE), `${pages} pages`)
})

t.test('a position the store did not make is an empty last page, never a call with it', async (t) => {
  const context: ListingContext = {
    client,
    namespace: 'odd',
    keyPrefix: '',
    tagKey: (shard, tag) => { if (typeof tag !== 'string') throw new TypeError('no such set'); return `odd:{0${shard.toString(16)}}:tag:${tag}` },
    decode: () => undefined
  }
  for (const cursor of [[-1, 0, '0', ''], [0, 16, '0', ''], [0, -1, '0', ''], [0, 0, 'abc', ''], [0, 0, '0', 'zz'], ['tiered']]) {
    t.same(await listRedis(context, { sets: ['t'], having: [], cursor, limit: 10 }), { entries: [] }, JSON.stringify(cursor))
  }
  const memory = new MemoryStore({ maxBytes: 1e6 })
  memory.set('odd:-:GET:x:1', makeEntry('listed from the start'), { ttl: 60, tags: ['t'] })
  t.equal(memory.list({ sets: ['t'], having: [], limit: 10 }).entries.length, 1)
  for (const cursor of [[-1, 0], [0], ['a', 0]]) {
    t.same(memory.list({ sets: ['t'], having: [], cursor, limit: 10 }), { entries: [] }, `memory ${JSON.stringify(cursor)}`)
  }
})

t.test('the version names of a value, and none for anything else', async (t) => {
  const store = new RedisStore({ client, namespace: 'names', log: Fastify().log })
  await store.set('names:-:GET:x:1', makeEntry('hi'), { ttl: 60, tags: ['g:t:a b'] })
  const [, members] = await client.sscan('names:{' + store.redisKey('names:-:GET:x:1').split('{')[1].slice(0, 2) + '}:tag:g%3At%3Aa%20b', '0')
  const value = await client.getBuffer(members[0]) as Buffer
  t.same(versionNames(value).map((name) => name.replace(/\{..\}/, '{}')), ['names:{}:gen', 'names:{}:ver:g%3At%3Aa%20b'])
  t.same(versionNames(encodeEntry(makeEntry('no header'))), [], 'no header')
  const header = (length: number, names: Buffer): Buffer => {
    const out = Buffer.alloc(9)
    out[0] = VERSIONED_MAGIC
    out.writeUInt32BE(9 + names.length, 1)
    out.writeUInt32BE(length, 5)
    return Buffer.concat([out, names])
  }
  t.same(versionNames(header(99, Buffer.from([0x91, 0xa1, 0x61]))), [], 'names past the end')
  t.same(versionNames(header(1, Buffer.from([0xc1]))), [], 'names that do not unpack')
  t.same(versionNames(header(1, Buffer.from([0x07]))), [], 'names that are not an array')
  t.same(versionNames(header(4, Buffer.from([0x92, 0xa1, 0x61, 0x07]))), ['a'], 'only strings')
})

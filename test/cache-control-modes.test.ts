// One Cache-Control grammar for both modes (docs/API.md, "HTTP caching (RFC 9111)", "Malformed
// Cache-Control"): each value below goes through a default-mode route (ttl 300) and an origin-mode
// route of a real app, and what each stores (the TTL, or the reason it does not) is recorded. Where the
// two columns differ, they differ by design: the mode's rule, never the parse.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { CacheEntry } from '../lib/entry.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { StoreSetOptions } from '../lib/stores/store.js'
import { cachedApp, counter, logCapture } from './helpers/app.js'

/** The TTL of each entry written, by the request that made it; for origin mode, the freshness lifetime. */
class Written extends MemoryStore {
  readonly lifetimes = new Map<string, number>()
  override set (key: string, entry: CacheEntry, options: StoreSetOptions): ReturnType<MemoryStore['set']> {
    // Origin mode stores the lifetime less the age on arrival (which includes the handler's own time).
    const lifetime = entry.ttl + (entry.initialAgeMs ?? 0) / 1000
    if (entry.request !== undefined) this.lifetimes.set(entry.request, Math.round(lifetime * 1000) / 1000)
    return super.set(key, entry, options)
  }
}

type Verdict = number | string
type Row = [field: string | string[], defaultMode: Verdict, originMode: Verdict]

const TTL = 300
const MAX = 2_147_483_648

/**
 * Why the two columns differ where they do: `no-cache` (stored and revalidated in origin mode only
 * with a validator, and these responses have none), no freshness (the route's TTL, or not stored), a
 * lifetime longer than the route's TTL (the default mode only shortens), and the reason names
 * (`max-age` against `stale` for a lifetime of 0).
 */
const ROWS: Row[] = [
  // Well-formed.
  ['', TTL, 'no-freshness'],
  ['max-age=60', 60, 60],
  ['max-age=600', TTL, 600],
  ['s-maxage=30, max-age=60', 30, 30],
  ['max-age=60, s-maxage=600', TTL, 600],
  ['max-age=0', 'max-age', 'stale'],
  ['public', TTL, 'no-freshness'],
  ['public, max-age=60', 60, 60],
  ['no-store', 'no-store', 'no-store'],
  ['no-store, max-age=60', 'no-store', 'no-store'],
  ['private', 'private', 'private'],
  ['private, max-age=60', 'private', 'private'],
  ['private="x-user"', 'private', 'private'],
  ['private="a, b", max-age=60', 'private', 'private'],
  ['no-cache', 'no-cache', 'no-cache'],
  ['no-cache="set-cookie", max-age=60', 'no-cache', 'no-cache'],
  ['must-revalidate, max-age=60', 60, 60],
  ['stale-while-revalidate=30, max-age=60', 60, 60],
  ['unknown-ext, max-age=60', 60, 60],
  ['unknown-ext="a, no-store", max-age=60', 60, 60],
  ['ext="max-age=5", max-age=60', 60, 60],
  // Case, whitespace, commas, empty members.
  ['MAX-AGE=60', 60, 60],
  ['Max-Age=60, No-Store', 'no-store', 'no-store'],
  ['PRIVATE', 'private', 'private'],
  [' max-age=60 ', 60, 60],
  ['max-age=60,no-store', 'no-store', 'no-store'],
  [', ,max-age=60,, ,', 60, 60],
  ['\tmax-age=60\t,\tpublic', 60, 60],
  // Several field lines are one list.
  [['max-age=60', 'no-store'], 'no-store', 'no-store'],
  [['public', 'max-age=60'], 60, 60],
  [['', 'max-age=60'], 60, 60],
  // Quoted arguments (RFC 9111 section 5.2: "ought to accept both forms").
  ['max-age="60"', 60, 60],
  ['s-maxage="30"', 30, 30],
  // Duplicates.
  ['max-age=60, max-age=10', 60, 60],
  ['max-age=10, max-age=60', 10, 10],
  [['max-age=10', 'max-age=60'], 10, 10],
  // Invalid delta-seconds (RFC 9111 sections 1.2.2, 4.2.1).
  ['max-age=abc', 'invalid-freshness', 'invalid-freshness'],
  ['max-age=-1', 'invalid-freshness', 'invalid-freshness'],
  ['max-age=60.5', 'invalid-freshness', 'invalid-freshness'],
  ['max-age=60a', 'invalid-freshness', 'invalid-freshness'],
  ["max-age='60'", 'invalid-freshness', 'invalid-freshness'],
  ['max-age=', 'invalid-freshness', 'invalid-freshness'],
  ['max-age', 'invalid-freshness', 'invalid-freshness'],
  ['max-age =60', 'invalid-freshness', 'invalid-freshness'],
  ['max-age= 60', 'invalid-freshness', 'invalid-freshness'],
  ['max-age=60;x', 'invalid-freshness', 'invalid-freshness'],
  ['max-age="60', 'invalid-freshness', 'invalid-freshness'],
  ['s-maxage=abc, max-age=60', 'invalid-freshness', 'invalid-freshness'],
  ['s-maxage=30, max-age=abc', 30, 30],
  ['max-age=abc, max-age=60', 'invalid-freshness', 'invalid-freshness'],
  // Huge numbers: 2^31 at most.
  ['max-age=99999999999999999999', TTL, MAX],
  ['max-age=2147483648', TTL, MAX],
  // Flags with an argument, or followed by garbage, still apply: the most restrictive reading.
  ['no-store=1, max-age=60', 'no-store', 'no-store'],
  ['no-store garbage, max-age=60', 'no-store', 'no-store'],
  ['private=, max-age=60', 'private', 'private'],
  // What is not a directive is skipped.
  ['@@@, max-age=60', 60, 60],
  ['"no-store", max-age=60', 60, 60],
  ['max-age=60, "x, no-store"', 60, 60]
]

async function modeApp (ttl: number | 'origin'): Promise<{ app: FastifyInstance, store: Written, reasons: Map<string, string> }> {
  const store = new Written({ maxBytes: 10_000_000 })
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, { store }, { logger })
  app.get('/r', { config: { cache: { ttl } } }, async (request, reply) => {
    reply.header('cache-control', ROWS[Number((request.query as { i: string }).i)][0])
    return 'x'
  })
  const reasons = new Map<string, string>()
  app.addHook('onResponse', async (request) => {
    for (const line of lines.splice(0)) {
      if (line.msg === 'response cache: not stored') reasons.set('GET ' + request.url, (line.responseCache as { reason: string }).reason)
    }
  })
  return { app, store, reasons }
}

t.test('Cache-Control in the default mode and in origin mode: one grammar, each mode its own rule', async (t) => {
  const modes = { default: await modeApp(TTL), origin: await modeApp('origin') }
  for (const [i, [field, defaultMode, originMode]] of ROWS.entries()) {
    for (const [mode, expected] of [['default', defaultMode], ['origin', originMode]] as const) {
      const { app, store, reasons } = modes[mode]
      const url = `/r?i=${i}`
      await app.inject(url)
      t.equal(store.lifetimes.get('GET ' + url) ?? reasons.get('GET ' + url), expected, `${mode}: ${JSON.stringify(field)}`)
    }
  }
})

t.test('honorClientNoCache: the request\'s Cache-Control read with the same grammar', async (t) => {
  const app = await cachedApp(t, { honorClientNoCache: true })
  const runs = counter()
  app.get('/n', { config: { cache: true } }, async () => ({ run: runs.next() }))
  await app.inject('/n')
  const cases: Array<[string | string[], 'MISS' | 'HIT']> = [
    ['no-cache', 'MISS'],
    ['NO-CACHE', 'MISS'],
    ['no-cache="x"', 'MISS'],
    ['max-age=0', 'MISS'],
    ['Max-Age=0', 'MISS'],
    ['max-age="0"', 'MISS'],
    ['max-age=00', 'MISS'],
    [['public', 'no-cache'], 'MISS'],
    ['max-age=0, max-age=5', 'MISS'],
    ['max-age=5, max-age=0', 'HIT'],
    ['max-age=5', 'HIT'],
    ['max-age=0abc', 'HIT'],
    ['max-age =0', 'HIT'],
    ['max-age=-0', 'HIT'],
    ['x="no-cache"', 'HIT'],
    ['"no-cache"', 'HIT'],
    ['no-store', 'HIT']
  ]
  for (const [field, expected] of cases) {
    const headers: Record<string, string | string[]> = { 'cache-control': field }
    t.equal((await app.inject({ url: '/n', headers })).headers['x-cache'], expected, JSON.stringify(field))
  }
})

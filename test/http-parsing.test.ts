// The header grammars the cache reads (docs/API.md, "HTTP caching (RFC 9111)"), case by case:
// comma-separated lists, Cache-Control (both modes; what each mode makes of it is in
// cache-control-modes.test.ts), CDN-Cache-Control as a Structured Field Dictionary, HTTP-dates and
// Age, and the freshness origin mode works out from them.
import t from 'tap'
import { deltaSeconds, MAX_DELTA_SECONDS, parseCacheControl, sharedMaxAge } from '../lib/rules/directives.js'
import { listMembers } from '../lib/rules/lists.js'
import { storedHeaders } from '../lib/rules/storability.js'
import { conditionalHeaders } from '../lib/rules/revalidation.js'
import { parseHttpDate } from '../lib/rules/dates.js'
import { HEURISTICALLY_CACHEABLE, originFreshness, parseCdnCacheControl, receivedAge, type OriginResponse } from '../lib/rules/freshness.js'
import { parseDictionary } from '../lib/rules/structured-field.js'

const NOW = Date.UTC(2025, 5, 15, 12, 0, 0)
const httpDate = (offsetSeconds: number): string => new Date(NOW + offsetSeconds * 1000).toUTCString()

t.test('lists: lines joined, members without the whitespace around them, empty members dropped', async (t) => {
  const cases: Array<[string | string[] | number | undefined, boolean, string[]]> = [
    [undefined, true, []],
    ['', true, []],
    [' , ,\t', false, []],
    ['a, b', false, ['a', 'b']],
    [' a ,\tb\t, ,c,', false, ['a', 'b', 'c']],
    ['a b , c', false, ['a b', 'c']],
    [['a, b', 'c', ''], false, ['a', 'b', 'c']],
    [15, false, ['15']],
    // Only space and tab are whitespace to HTTP (RFC 9110 section 5.6.3).
    ['\u00a0a\u00a0, b', false, ['\u00a0a\u00a0', 'b']],
    ['x="a, b", y', true, ['x="a, b"', 'y']],
    ['x="a, b", y', false, ['x="a', 'b"', 'y']],
    ['x="a\\", b", y', true, ['x="a\\", b"', 'y']],
    ['x="a\\\\", b', true, ['x="a\\\\"', 'b']],
    [' "a , b" , c ', true, ['"a , b"', 'c']],
    ['x="open, y', true, ['x="open, y']],
    ['x, y="open\\', true, ['x', 'y="open\\']]
  ]
  for (const [field, quoted, expected] of cases) t.same(listMembers(field, quoted), expected, `${JSON.stringify(field)} ${quoted ? 'quoted' : 'tokens'}`)
})

t.test('lists of tokens: a quote is not a string there', async (t) => {
  t.strictSame(storedHeaders({ connection: 'x-a", x-b', 'x-b': '1', 'x-c': '2' }), { 'x-c': '2' }, 'Connection still names x-b')
  t.equal(receivedAge('"x, 7200'), 7200, 'Age: the valid value after a stray quote still counts')
  t.equal(receivedAge(' 15 ,\t7200\t'), 7200)
})

t.test('If-None-Match: the plugin\'s own etags taken out, empty members with them', async (t) => {
  const own = '"rc-' + 'a'.repeat(27) + '"'
  const headers: Record<string, string | undefined> = { 'if-none-match': `${own}, ` }
  t.same(conditionalHeaders(headers, undefined), { 'if-none-match': `${own}, `, 'if-modified-since': undefined })
  t.notOk('if-none-match' in headers, 'nothing left: no empty field sent on')
  const mixed: Record<string, string | undefined> = { 'if-none-match': `"a", ${own},, "b"` }
  conditionalHeaders(mixed, undefined)
  t.equal(mixed['if-none-match'], '"a", "b"')
  const theirs: Record<string, string | undefined> = { 'if-none-match': '"a",, "b"' }
  t.equal(conditionalHeaders(theirs, undefined), undefined, 'a field without the plugin\'s etags is left as sent')
  t.equal(theirs['if-none-match'], '"a",, "b"')
})

t.test('Cache-Control: directives by lower-case name, first occurrence kept, malformed ones marked', async (t) => {
  const cases: Array<[string | string[] | undefined, Record<string, string | true | null>]> = [
    [undefined, {}],
    ['', {}],
    ['max-age=60', { 'max-age': '60' }],
    ['MaX-AgE=60, Public', { 'max-age': '60', public: true }],
    ['max-age="60"', { 'max-age': '60' }],
    ['max-age=60, max-age=1', { 'max-age': '60' }],
    [['max-age=1', 'max-age=60'], { 'max-age': '1' }],
    ['max-age =60', { 'max-age': null }],
    ['max-age= 60', { 'max-age': null }],
    ['max-age=', { 'max-age': null }],
    ['max-age="60', { 'max-age': null }],
    ['max-age="60"x, public', { 'max-age': null, public: true }],
    ['extension="max-age=3600", max-age=1', { extension: 'max-age=3600', 'max-age': '1' }],
    ['max-age=1, extension="a, max-age=3600"', { 'max-age': '1', extension: 'a, max-age=3600' }],
    ['private="set-cookie, x-user", no-store', { private: 'set-cookie, x-user', 'no-store': true }],
    ['x="a\\"b", y', { x: 'a"b', y: true }],
    [' , ,max-age=5 ,, no-cache ', { 'max-age': '5', 'no-cache': true }],
    ['@@@, max-age=5', { 'max-age': '5' }],
    ['no-store garbage, max-age=5', { 'no-store': null, 'max-age': '5' }],
    ['"not, a\\"directive, either", max-age=5, ', { 'max-age': '5' }],
    ['x="open\\', { x: null }],
    ['no-store=1, private=, no-cache="set-cookie"', { 'no-store': '1', private: null, 'no-cache': 'set-cookie' }],
    ['max-age=60;x, s-maxage=5 x', { 'max-age': null, 's-maxage': null }],
    [['', ' max-age=1 ', ''], { 'max-age': '1' }]
  ]
  for (const [field, expected] of cases) {
    t.same(Object.fromEntries(parseCacheControl(field)), expected, JSON.stringify(field))
  }
  t.same(Object.fromEntries(parseCacheControl(60 as unknown as string)), { 60: true }, 'a number is read as its text')
})

t.test('delta-seconds: digits only, capped at 2^31; anything else present is invalid (null)', async (t) => {
  const cases: Array<[string, number | null | undefined]> = [
    ['public', undefined],
    ['max-age=0', 0],
    ['max-age=003600', 3600],
    ['max-age="3600"', 3600],
    ['max-age=2147483647', 2147483647],
    ['max-age=99999999999', MAX_DELTA_SECONDS],
    ['max-age=-1', null],
    ['max-age=3600.0', null],
    ['max-age=3600a', null],
    ['max-age=a3600', null],
    ["max-age='3600'", null],
    ['max-age=1e3', null],
    ['max-age', null],
    ['max-age =60', null]
  ]
  for (const [field, expected] of cases) t.equal(deltaSeconds(parseCacheControl(field), 'max-age'), expected, field)
})

t.test('s-maxage, else max-age: the freshness a shared cache reads, in both modes', async (t) => {
  const cases: Array<[string, number | null | undefined]> = [
    ['public', undefined],
    ['max-age=60', 60],
    ['max-age=60, s-maxage=5', 5],
    ['s-maxage=0, max-age=60', 0],
    ['s-maxage=5, max-age=abc', 5],
    ['s-maxage=abc, max-age=60', null],
    ['s-maxage, max-age=60', null],
    ['max-age=-1', null]
  ]
  for (const [field, expected] of cases) t.equal(sharedMaxAge(parseCacheControl(field)), expected, field)
})

t.test('Structured Field Dictionary (RFC 9651): valid members by type, anything malformed is undefined', async (t) => {
  const valid: Array<[string, Record<string, unknown>]> = [
    ['max-age=60', { 'max-age': { type: 'integer', value: 60 } }],
    ['  no-store , max-age=60  ', { 'no-store': { type: 'boolean', value: true }, 'max-age': { type: 'integer', value: 60 } }],
    ['a=-5, b=1.5, c="x\\"y", d=tok/en:1, e=:aGk=:, f=?0, g=?1', {
      a: { type: 'integer', value: -5 },
      b: { type: 'decimal', value: 1.5 },
      c: { type: 'string', value: 'x"y' },
      d: { type: 'token', value: 'tok/en:1' },
      e: { type: 'binary', value: 'aGk=' },
      f: { type: 'boolean', value: false },
      g: { type: 'boolean', value: true }
    }],
    ['a=1;p=2;q, b;r="s", *c=(1 "two" ?1);x=y', {
      a: { type: 'integer', value: 1 },
      b: { type: 'boolean', value: true },
      '*c': { type: 'inner-list', value: null }
    }],
    ['l=(), m=( 1  2 )', { l: { type: 'inner-list', value: null }, m: { type: 'inner-list', value: null } }],
    ['max-age=1, max-age=2', { 'max-age': { type: 'integer', value: 2 } }],
    // RFC 9651 adds Dates and Display Strings; no cache directive takes one.
    ['a=@1', { a: { type: 'other', value: null } }],
    ['b=%"caf%c3%a9"', { b: { type: 'other', value: null } }],
    // A JavaScript number cannot tell a Decimal with no fraction from an Integer.
    ['max-age=60.0', { 'max-age': { type: 'integer', value: 60 } }],
    ['n=123456789012345, d=123456789012.123', { n: { type: 'integer', value: 123456789012345 }, d: { type: 'decimal', value: 123456789012.123 } }]
  ]
  for (const [field, expected] of valid) t.same(Object.fromEntries(parseDictionary(field) ?? []), expected, field)
  const invalid = [
    'MaX-AgE=60', 'max-age =60', 'max-age= 60', 'max-age=60,', 'max-age=60, &&&', '1a=2', 'a=1 b=2', 'a=', 'a=-', 'a=1.', 'a=1.2345',
    'a=1234567890123.1', 'a=1234567890123456', 'a=1.2.3', 'a="unterminated', 'a="bad\\escape"', 'a="tab\there"', 'a=:aGk=',
    'a=?2', 'a=@x', 'a=(1 2', 'a=(1,2)', 'a;=1', 'a=1;B=2'
  ]
  for (const field of invalid) t.equal(parseDictionary(field), undefined, field)
  t.equal(parseDictionary(undefined), undefined)
  t.equal(parseDictionary('   '), undefined, 'an empty field is as good as absent')
})

t.test('CDN-Cache-Control: known directives must have their type, or the whole field is ignored', async (t) => {
  t.same(Object.fromEntries(parseCdnCacheControl('max-age=60, must-revalidate, foo="bar"') ?? []), { 'max-age': '60', 'must-revalidate': true, foo: true })
  t.same(Object.fromEntries(parseCdnCacheControl(['private="x-user"', 'no-cache']) ?? []), { private: 'x-user', 'no-cache': true })
  t.same(Object.fromEntries(parseCdnCacheControl('no-store=?0, private=?0, max-age=5') ?? []), { 'max-age': '5' }, 'a flag set to false is absent')
  for (const field of ['max-age="60"', 'max-age=-1', 'max-age=1.5', 'no-store=1', 'private=1', 's-maxage=tok', 'MaX-AgE=60', 'max-age=60, &&&']) {
    t.equal(parseCdnCacheControl(field), undefined, field)
  }
  t.equal(parseCdnCacheControl(undefined), undefined)
})

t.test('HTTP-date: the three forms of RFC 9110 section 5.6.7 and nothing else', async (t) => {
  const sunday = Date.UTC(1994, 10, 6, 8, 49, 37)
  t.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', NOW), sunday)
  t.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW), sunday, 'rfc850: 94 is 1994, not 2094')
  t.equal(parseHttpDate('Sunday, 06-Nov-30 08:49:37 GMT', NOW), Date.UTC(2030, 10, 6, 8, 49, 37), 'rfc850: 30 is 2030')
  t.equal(parseHttpDate('Sun Nov  6 08:49:37 1994', NOW), sunday)
  t.equal(parseHttpDate('Sun Nov 16 08:49:37 1994', NOW), Date.UTC(1994, 10, 16, 8, 49, 37))
  t.equal(parseHttpDate(httpDate(0), NOW), NOW, "what Date's toUTCString writes")
  for (const value of [
    undefined, '0', '-1', '', '2024-01-01T00:00:00Z', 'Tomorrow', '1718452800', 'Sun, 06 Nov 1994 08:49:37 UTC',
    'sun, 06 Nov 1994 08:49:37 GMT', 'Sun, 6 Nov 1994 08:49:37 GMT', 'Sun, 31 Feb 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 24:00:00 GMT',
    'Sun, 06 Nov 1994 08:60:00 GMT', 'Sun, 06 Foo 1994 08:49:37 GMT', ' Sun, 06 Nov 1994 08:49:37 GMT'
  ]) t.equal(parseHttpDate(value, NOW), undefined, String(value))
})

t.test('Age received: the largest delta-seconds among its values, 0 when none is one', async (t) => {
  const cases: Array<[string | string[] | number | undefined, number]> = [
    [undefined, 0], ['15', 15], [15, 15], ['abc', 0], ['-7200', 0], ['7200.0', 0], ['7200,0', 7200], ['0, 7200', 7200],
    [['0', '7200'], 7200], ['99999999999', MAX_DELTA_SECONDS]
  ]
  for (const [value, expected] of cases) t.equal(receivedAge(value), expected, JSON.stringify(value))
})

/** A response at NOW with these headers, which took `delayMs` to arrive. */
function response (headers: Record<string, string | string[]>, status = 200, delayMs = 0): OriginResponse {
  return { status, header: (name) => headers[name], responseTime: NOW, responseDelayMs: delayMs }
}
const off = { enabled: false, maxTtl: 86_400 }
const on = { enabled: true, maxTtl: 86_400 }

t.test('freshness: s-maxage, then max-age, then Expires minus Date, less the age it arrived with', async (t) => {
  const cases: Array<[string, Record<string, string | string[]>, number | string, boolean?]> = [
    ['max-age', { 'cache-control': 'max-age=60' }, 60],
    ['s-maxage over a longer max-age', { 'cache-control': 'max-age=3600, s-maxage=10' }, 10, true],
    ['s-maxage over a shorter max-age', { 'cache-control': 'max-age=1, s-maxage=3600' }, 3600, true],
    ['s-maxage over max-age=0 and a past Expires', { 'cache-control': 'max-age=0, s-maxage=3600', expires: httpDate(-10) }, 3600, true],
    ['max-age over a past Expires', { 'cache-control': 'max-age=60', expires: httpDate(-7200), date: httpDate(0) }, 60],
    ['max-age over an invalid Expires', { 'cache-control': 'max-age=60', expires: '0' }, 60],
    ['max-age=0 over a future Expires', { 'cache-control': 'max-age=0', expires: httpDate(3600) }, 'stale'],
    ['Expires minus Date', { expires: httpDate(100), date: httpDate(-20) }, 120 - 20],
    ['Expires minus the time received, without Date', { expires: httpDate(100) }, 100],
    ['Expires: the first of two', { expires: [httpDate(100), httpDate(5000)] }, 100],
    ['Expires in the past', { expires: httpDate(-1) }, 'stale'],
    ['Expires equal to Date', { expires: httpDate(0), date: httpDate(0) }, 'stale'],
    ['Expires: 0', { expires: '0' }, 'invalid-freshness'],
    ['Expires: a date Date.parse would take', { expires: '2999-01-01' }, 'invalid-freshness'],
    ['Age subtracted', { 'cache-control': 'max-age=60', age: '15' }, 45],
    ['Age past the lifetime', { 'cache-control': 'max-age=3600', age: '7200', date: httpDate(0) }, 'stale'],
    ['Date in the past: the apparent age counts', { 'cache-control': 'max-age=3600', date: httpDate(-600) }, 3000],
    ['Date in the past by more than the lifetime', { 'cache-control': 'max-age=3600', date: httpDate(-7200) }, 'stale'],
    ['Date in the future: no negative age', { 'cache-control': 'max-age=60', date: httpDate(600) }, 60],
    ['an invalid Date is the time received', { 'cache-control': 'max-age=60', date: 'yesterday' }, 60],
    ['Age and Date: the larger of the two', { 'cache-control': 'max-age=60', date: httpDate(-10), age: '30' }, 30],
    ['max-age quoted', { 'cache-control': 'max-age="60"' }, 60],
    ['max-age twice: the first', { 'cache-control': 'max-age=60, max-age=1' }, 60],
    ['max-age negative', { 'cache-control': 'max-age=-1' }, 'invalid-freshness'],
    ['max-age single-quoted', { 'cache-control': "max-age='60'" }, 'invalid-freshness'],
    ['max-age with a fraction', { 'cache-control': 'max-age=60.5' }, 'invalid-freshness'],
    ['s-maxage invalid, max-age valid', { 'cache-control': 's-maxage=x, max-age=60' }, 'invalid-freshness'],
    ['s-maxage valid, max-age invalid', { 'cache-control': 's-maxage=60, max-age=-1' }, 60, true],
    ['a phrase in a quoted string', { 'cache-control': 'extension="max-age=3600", max-age=1' }, 1],
    ['max-age huge', { 'cache-control': 'max-age=99999999999' }, MAX_DELTA_SECONDS],
    ['no freshness', {}, 'no-freshness'],
    ['public alone, heuristics off', { 'cache-control': 'public', 'last-modified': httpDate(-1000) }, 'no-freshness'],
    ['no-store', { 'cache-control': 'no-store, max-age=60' }, 'no-store'],
    ['private', { 'cache-control': 'max-age=60, private' }, 'private'],
    ['private with fields', { 'cache-control': 'private="x-user", max-age=60' }, 'private'],
    ['no-cache', { 'cache-control': 'no-cache, max-age=60' }, 'no-cache'],
    ['malformed no-store is no-store', { 'cache-control': 'max-age=60, no-store garbage' }, 'no-store'],
    ['must-revalidate', { 'cache-control': 'max-age=60, must-revalidate' }, 60, true],
    ['proxy-revalidate', { 'cache-control': 'max-age=60, proxy-revalidate' }, 60, true],
    ['CDN-Cache-Control over Cache-Control', { 'cache-control': 'max-age=1', 'cdn-cache-control': 'max-age=3600' }, 3600],
    ['a short CDN-Cache-Control over a long Cache-Control', { 'cache-control': 'max-age=3600', 'cdn-cache-control': 'max-age=1' }, 1],
    ['CDN-Cache-Control max-age over Cache-Control no-store', { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=600' }, 600],
    ['CDN-Cache-Control private over Cache-Control max-age', { 'cache-control': 'max-age=600', 'cdn-cache-control': 'private' }, 'private'],
    ['CDN-Cache-Control no-cache', { 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-cache', expires: httpDate(600) }, 'no-cache'],
    ['CDN-Cache-Control no-store', { 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-store' }, 'no-store'],
    ['CDN-Cache-Control without freshness: Expires still counts', { 'cdn-cache-control': 'foo', expires: httpDate(100) }, 100],
    ['CDN-Cache-Control max-age=0', { 'cdn-cache-control': 'max-age=0', expires: httpDate(100) }, 'stale'],
    ['an invalid CDN-Cache-Control is ignored', { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age="600"' }, 'no-store'],
    ['an unparseable CDN-Cache-Control is ignored', { 'cache-control': 'max-age=5', 'cdn-cache-control': 'max-age=600, &&&' }, 5],
    ['CDN-Cache-Control s-maxage', { 'cdn-cache-control': 's-maxage=60' }, 60, true]
  ]
  for (const [name, headers, expected, noStale] of cases) {
    const result = originFreshness(response(headers), off)
    if (typeof expected === 'string') {
      t.equal(result, expected, name)
      continue
    }
    t.same(typeof result === 'object' ? { ttl: result.ttl, noStale: result.noStale } : result, { ttl: expected, noStale: noStale === true }, name)
  }
})

t.test('the initial age: apparent age (Date) or Age plus the response delay, whichever is larger', async (t) => {
  const withDelay = originFreshness(response({ 'cache-control': 'max-age=60', age: '10' }, 200, 2500), off)
  t.same(withDelay, { ttl: 47.5, initialAgeMs: 12_500, noStale: false, revalidate: false, validated: false }, 'Age 10 s, and 2.5 s for the answer to come back')
  const byDate = originFreshness(response({ 'cache-control': 'max-age=60', date: httpDate(-20), age: '1' }, 200, 500), off)
  t.same(byDate, { ttl: 40, initialAgeMs: 20_000, noStale: false, revalidate: false, validated: false })
  const delayOnly = originFreshness(response({ 'cache-control': 'max-age=60' }, 200, 300), off)
  t.same(delayOnly, { ttl: 59.7, initialAgeMs: 300, noStale: false, revalidate: false, validated: false }, 'with no Age, the delay alone')
})

t.test('heuristic freshness: off by default; when on, a tenth of the Last-Modified age, capped, for the listed statuses', async (t) => {
  const lastModified = { 'last-modified': httpDate(-10_000), date: httpDate(0) }
  t.equal(originFreshness(response(lastModified), off), 'no-freshness')
  t.same(originFreshness(response(lastModified), on), { ttl: 1000, initialAgeMs: 0, noStale: false, revalidate: false, validated: true })
  t.same(originFreshness(response(lastModified), { enabled: true, maxTtl: 300 }), { ttl: 300, initialAgeMs: 0, noStale: false, revalidate: false, validated: true }, 'capped')
  t.same(originFreshness(response({ ...lastModified, age: '100' }), on), { ttl: 900, initialAgeMs: 100_000, noStale: false, revalidate: false, validated: true }, 'less the age received')
  t.same(originFreshness(response({ 'last-modified': httpDate(-10_000) }), on), { ttl: 1000, initialAgeMs: 0, noStale: false, revalidate: false, validated: true }, 'without Date: from the time received')
  for (const status of [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]) {
    t.ok(HEURISTICALLY_CACHEABLE.has(status), `${status} is heuristically cacheable`)
    t.type(originFreshness(response(lastModified, status), on), 'object', `${status}`)
  }
  for (const status of [201, 302, 307, 400, 403]) {
    t.equal(originFreshness(response(lastModified, status), on), 'no-freshness', `${status} is not heuristically cacheable`)
  }
  t.same(originFreshness(response({ ...lastModified, 'cache-control': 'public' }, 302), on), { ttl: 1000, initialAgeMs: 0, noStale: false, revalidate: false, validated: true }, 'public makes any status storable')
  t.equal(originFreshness(response({}), on), 'no-freshness', 'no Last-Modified')
  t.equal(originFreshness(response({ 'last-modified': 'last week' }), on), 'no-freshness', 'an invalid Last-Modified')
  t.equal(originFreshness(response({ 'last-modified': httpDate(10), date: httpDate(0) }), on), 'no-freshness', 'a Last-Modified after Date')
  t.equal(originFreshness(response({ ...lastModified, expires: '0' }), on), 'invalid-freshness', 'an Expires, even invalid, is explicit: no heuristic')
  t.equal(originFreshness(response({ ...lastModified, 'cache-control': 'max-age=0' }), on), 'stale', 'nor with max-age=0')
})

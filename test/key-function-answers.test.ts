// Issue 24, point 6: a tenant or key function answering what is no key part (null, an array, an
// object, a boolean, NaN) must not mean "no tenant" or "[object Object]": the request bypasses the
// cache, and the route warns once per function.
import t from 'tap'
import { cachedApp, counter, logCapture } from './helpers/app.js'

type Line = Record<string, unknown>
const warnings = (lines: Line[]): Line[] => lines.filter((line) => line.level === 40)
const bypassReasons = (lines: Line[]): unknown[] =>
  lines.filter((line) => line.msg === 'response cache bypass').map((line) => (line.responseCache as { reason: string }).reason)

t.test('a tenant function answering no tenant id bypasses: null, array, object, boolean, NaN', async (t) => {
  const { lines, logger } = logCapture()
  let answer: unknown
  const runs = counter()
  const app = await cachedApp(t, { tenant: () => answer as string }, { logger })
  app.get('/me', { config: { cache: true } }, async () => ({ run: runs.next() }))
  app.get('/other', { config: { cache: true } }, async () => ({ run: runs.next() }))
  const bad = [null, ['acme'], { id: 'acme' }, true, Number.NaN, Infinity]
  for (const value of bad) {
    answer = value
    for (let i = 0; i < 2; i++) {
      const r = await app.inject('/me')
      t.equal(r.statusCode, 200)
      t.equal(r.headers['x-cache'], 'BYPASS', `${String(value)} (${i})`)
    }
  }
  t.equal(runs.runs, bad.length * 2, 'the handler answered every one')
  t.equal(app.cache.stats().total.stores, 0, 'nothing was stored for them to share')
  t.same(new Set(bypassReasons(lines)), new Set(['tenant-invalid']))
  const warned = warnings(lines)
  t.equal(warned.length, 1, 'one warning for the route, not one per request or per answer')
  t.match(warned[0], { responseCache: { route: 'GET /me' }, err: { message: /^the tenant function answered null; expected a string, a finite number or undefined/ } })
  t.notMatch(JSON.stringify(warned[0]), /acme/, 'the answer itself is not logged')
  answer = { id: 'acme' }
  t.equal((await app.inject('/other')).headers['x-cache'], 'BYPASS')
  t.equal(warnings(lines).length, 2, 'another route warns once too')
  t.match(warnings(lines)[1], { responseCache: { route: 'GET /other' } })
  // Valid answers still key as before: undefined is no tenant, a number keys like its string.
  answer = undefined
  t.equal((await app.inject('/me')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/me')).headers['x-cache'], 'HIT')
  answer = 7
  t.equal((await app.inject('/me')).headers['x-cache'], 'MISS')
  answer = '7'
  t.equal((await app.inject('/me')).headers['x-cache'], 'HIT')
})

t.test('a key function answering an object bypasses: bob never gets alice\'s entry', async (t) => {
  const { lines, logger } = logCapture()
  const app = await cachedApp(t, {}, { logger })
  // The mistake the issue reports: an object where a string was meant.
  app.get('/profile', { config: { cache: { key: (request) => ({ user: request.headers['x-user'] }) as unknown as string } } },
    async (request) => ({ user: request.headers['x-user'] }))
  const alice = await app.inject({ url: '/profile', headers: { 'x-user': 'alice' } })
  const bob = await app.inject({ url: '/profile', headers: { 'x-user': 'bob' } })
  t.same([alice.headers['x-cache'], alice.json()], ['BYPASS', { user: 'alice' }])
  t.same([bob.headers['x-cache'], bob.json()], ['BYPASS', { user: 'bob' }])
  t.same(bypassReasons(lines), ['key-invalid', 'key-invalid'])
  t.equal(warnings(lines).length, 1)
  t.match(warnings(lines)[0], { responseCache: { route: 'GET /profile' }, err: { message: /^the key function answered an object;/ } })
})

t.test('a POST keyed by its body bypasses too, whether its bytes were seen before or not', async (t) => {
  const { lines, logger } = logCapture()
  let part: unknown = null
  const runs = counter()
  const app = await cachedApp(t, {}, { logger })
  app.post('/search', { config: { cache: { key: () => part as string } } }, async () => ({ run: runs.next() }))
  const search = { method: 'POST' as const, url: '/search', payload: { q: 'x' } }
  part = 'a'
  t.equal((await app.inject(search)).headers['x-cache'], 'MISS')
  t.equal((await app.inject(search)).headers['x-cache'], 'HIT', 'these bytes now lead to an entry')
  for (const value of [null, [1], false]) {
    part = value
    t.equal((await app.inject(search)).headers['x-cache'], 'BYPASS', String(value))
  }
  t.equal(runs.runs, 4)
  t.equal(warnings(lines).length, 1)
})

t.test('the function that throws still warns every time (key-error), apart from the once-per-route warning', async (t) => {
  const { lines, logger } = logCapture()
  let mode: 'throw' | 'null' = 'null'
  const app = await cachedApp(t, { tenant: () => { if (mode === 'throw') throw new Error('no tenant'); return null as unknown as string } }, { logger })
  app.get('/t', { config: { cache: true } }, async () => 'fine')
  for (const next of ['null', 'null', 'throw', 'throw'] as const) {
    mode = next
    t.equal((await app.inject('/t')).headers['x-cache'], 'BYPASS')
  }
  t.same(bypassReasons(lines), ['tenant-invalid', 'tenant-invalid', 'key-error', 'key-error'])
  t.equal(warnings(lines).length, 3)
})

t.test('app.cache takes a tenant that is a string or a finite number, nothing else', async (t) => {
  const app = await cachedApp(t)
  await app.ready()
  await app.cache.set('k', 'seven', { tenant: 7 })
  t.equal(await app.cache.get('k', { tenant: '7' }), 'seven')
  for (const tenant of [Number.NaN, Infinity, null, { id: 7 }] as unknown as string[]) {
    await t.rejects(app.cache.set('k', 'x', { tenant }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"tenant": expected a string or a finite number/ })
    await t.rejects(app.cache.invalidate({ tenant }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT' })
    await t.rejects(app.cache.list({ tenant }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT' })
  }
})

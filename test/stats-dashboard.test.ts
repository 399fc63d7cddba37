import t from 'tap'
import type { onRequestHookHandler } from 'fastify'
import { cachedApp, counter, logCapture } from './helpers/app.js'
import { CounterHistory, RECENT_WINDOW_S } from '../lib/observability/history.js'
import type { CounterSnapshot } from '../lib/observability/stats.js'

const TOKEN = 'Bearer dashboard-test'
const guard: onRequestHookHandler = async (request, reply) => {
  if (request.headers.authorization !== TOKEN) await reply.code(401).send({ error: 'Unauthorized' })
}
const auth = { authorization: TOKEN }

const counters = (hits: number, misses: number, extra: Partial<CounterSnapshot> = {}): CounterSnapshot =>
  ({ hits, misses, stale: 0, bypasses: 0, stores: 0, errors: 0, hitRatio: 0, ...extra })

t.test('CounterHistory: the recent counters are now minus the oldest sample within the window; the ring keeps only the window', async (t) => {
  let now = 1_000_000
  let routes: Record<string, CounterSnapshot> = {}
  const history = new CounterHistory(60, () => routes, () => now)
  t.same(history.recent(), { interval: 60, seconds: 0, routes: {} }, 'nothing sampled, nothing counted')
  history.sample()
  routes = { 'GET /a': counters(3, 1, { stale: 2, bypasses: 4, errors: 1 }) }
  now += 30_000
  t.same(history.recent(), {
    interval: 60,
    seconds: 30,
    routes: { 'GET /a': { hits: 3, stale: 2, misses: 1, bypasses: 4, errors: 1, hitRatio: 5 / 6 } }
  }, 'a route first seen after the sample counts from zero')
  // Six samples cover 300 s at 60 s each: one more than that and the oldest is overwritten.
  for (let i = 1; i <= 6; i++) {
    now += 60_000
    routes = { 'GET /a': counters(3 + i, 1), 'GET /b': counters(0, i) }
    history.sample()
  }
  t.equal(history.samples().length, RECENT_WINDOW_S / 60 + 1, 'the ring holds the window and one more')
  t.same(history.samples().map((sample) => sample.routes['GET /a']?.hits), [undefined, 4, 5, 6, 7, 8, 9].slice(1), 'oldest first, the first sample overwritten')
  routes = { 'GET /a': counters(19, 1), 'GET /b': counters(0, 6) }
  // The oldest sample (at now - 300 s) is within the window: what happened since it.
  t.same(history.recent().routes['GET /a'], { hits: 15, stale: 0, misses: 0, bypasses: 0, errors: 0, hitRatio: 1 })
  t.same(history.recent().routes['GET /b'], { hits: 0, stale: 0, misses: 5, bypasses: 0, errors: 0, hitRatio: 0 })
  t.equal(history.recent().seconds, 300)
  now += 1
  t.equal(history.recent().seconds, 240, 'a sample older than the window is not used')
  t.equal(history.recent().routes['GET /a'].hits, 14)
})

t.test('CounterHistory.start: one sample at once, then an unref\'d timer every interval, cleared by stop()', async (t) => {
  let reads = 0
  const history = new CounterHistory(7, () => { reads++; return {} })
  const before = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length
  history.start()
  t.teardown(() => { history.stop() })
  t.equal(reads, 1)
  t.equal(history.running, true)
  t.equal(process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length, before, 'the timer keeps no process alive')
  history.stop()
  t.equal(history.running, false)
})

t.test('the app starts sampling at ready() and stops at close(); JSON has recent counters only with the dashboard', async (t) => {
  const intervals: Array<{ ms: number | undefined, timer: NodeJS.Timeout }> = []
  const cleared: unknown[] = []
  const { setInterval: realSet, clearInterval: realClear } = globalThis
  globalThis.setInterval = ((fn: () => void, ms?: number) => {
    const timer = realSet(fn, ms)
    intervals.push({ ms, timer })
    return timer
  }) as typeof setInterval
  globalThis.clearInterval = ((timer: NodeJS.Timeout) => { cleared.push(timer); realClear(timer) }) as typeof clearInterval
  t.teardown(() => { globalThis.setInterval = realSet; globalThis.clearInterval = realClear })

  const app = await cachedApp(t, { statsRoute: { onRequest: guard, dashboard: { interval: 3 } } })
  app.get('/a', { config: { cache: true } }, async () => 'a')
  await app.ready()
  const ours = intervals.filter(({ ms }) => ms === 3000)
  t.equal(ours.length, 1, 'one timer, every interval')
  t.equal(ours[0].timer.hasRef(), false, 'unref\'d')
  await app.inject('/a')
  await app.inject('/a')
  await app.inject('/a')
  const body = (await app.inject({ url: '/cache/stats', headers: auth })).json()
  t.match(body.recent, { interval: 3, seconds: 0 })
  t.same(body.recent.routes['GET /a'], { hits: 2, stale: 0, misses: 1, bypasses: 0, errors: 0, hitRatio: 2 / 3 }, 'counted from the sample taken at ready()')
  await app.close()
  t.ok(cleared.includes(ours[0].timer), 'cleared on close')

  const plain = await cachedApp(t, { statsRoute: { onRequest: guard } })
  await plain.ready()
  t.notOk('recent' in (await plain.inject({ url: '/cache/stats', headers: auth })).json())
  t.equal((await plain.inject({ url: '/cache/stats/dashboard', headers: auth })).statusCode, 404, 'no page without dashboard')
})

t.test('dashboard without a guard: refused at ready() naming statsRoute.dashboard, unless public (which also silences the warning)', async (t) => {
  const refused = await cachedApp(t, { statsRoute: { dashboard: true } }).catch((error: Error) => error)
  t.match(refused, { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message: /"statsRoute.dashboard".*onRequest.*public: true/ })

  const { lines, logger } = logCapture('warn')
  const open = await cachedApp(t, { statsRoute: { dashboard: true, public: true } }, { logger })
  await open.ready()
  t.equal((await open.inject('/cache/stats/dashboard')).statusCode, 200)
  t.equal(lines.filter((line) => String(line.msg).includes('no onRequest guard')).length, 0, 'public: no warning')
})

t.test('the page, its script and style, entries and invalidation: each behind the guard', async (t) => {
  const app = await cachedApp(t, { statsRoute: { path: '/ops/cache', onRequest: guard, dashboard: true } })
  await app.ready()
  const routes = [
    ['GET', '/ops/cache/dashboard', 'text/html; charset=utf-8', /<script src="dashboard.js" defer><\/script>/],
    ['GET', '/ops/cache/dashboard.js', 'text/javascript; charset=utf-8', /textContent/],
    ['GET', '/ops/cache/dashboard.css', 'text/css; charset=utf-8', /table/],
    ['GET', '/ops/cache/dashboard.svg', 'image/svg+xml', /<svg/]
  ] as const
  for (const [method, url, type, body] of routes) {
    t.equal((await app.inject({ method, url })).statusCode, 401, `${url} is guarded`)
    const r = await app.inject({ method, url, headers: auth })
    t.equal(r.statusCode, 200)
    t.equal(r.headers['content-type'], type)
    t.equal(r.headers['cache-control'], 'no-store')
    t.match(r.body, body)
  }
  t.equal((await app.inject({ url: '/ops/cache/entries?tag=x' })).statusCode, 401, 'entries are guarded')
  t.equal((await app.inject({ method: 'POST', url: '/ops/cache/invalidate', payload: { tags: ['x'] } })).statusCode, 401, 'invalidation is guarded')
  const page = (await app.inject({ url: '/ops/cache/dashboard', headers: auth })).body
  t.notMatch(page, /<script>|<style|style=|\son[a-z]+=/, 'nothing inline')
  const script = (await app.inject({ url: '/ops/cache/dashboard.js', headers: auth })).body
  t.notMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, 'text only through textContent')
  t.doesNotThrow(() => new Function(script), 'the script parses') // eslint-disable-line no-new-func
})

t.test('entries: a page of app.cache.list; invalidation: how many were dropped; both validated', async (t) => {
  const runs = counter()
  const app = await cachedApp(t, { statsRoute: { onRequest: guard, dashboard: true } })
  app.get('/items/:id', { config: { cache: { tags: (request) => [`item:${(request.params as { id: string }).id}`, 'items'] } } }, async () => runs.next())
  await app.ready()
  for (const id of ['1', '2', '3']) await app.inject(`/items/${id}`)

  const first = await app.inject({ url: '/cache/stats/entries?tag=items&limit=2', headers: auth })
  t.equal(first.statusCode, 200)
  const page = first.json()
  t.equal(page.entries.length, 2)
  t.equal(page.source, 'memory')
  t.type(page.cursor, 'string')
  const rest = (await app.inject({ url: `/cache/stats/entries?tag=items&limit=2&cursor=${encodeURIComponent(page.cursor)}`, headers: auth })).json()
  t.same([...page.entries, ...rest.entries].map((entry: { path: string }) => entry.path).sort(), ['GET /items/1', 'GET /items/2', 'GET /items/3'])
  t.equal(rest.cursor, undefined)
  t.equal((await app.inject({ url: '/cache/stats/entries?route=GET%20/items/:id', headers: auth })).json().entries.length, 3)

  t.equal((await app.inject({ url: '/cache/stats/entries', headers: auth })).statusCode, 400, 'no selector: the client\'s mistake')
  t.equal((await app.inject({ url: '/cache/stats/entries?tag=items&cursor=forged', headers: auth })).statusCode, 400, 'a cursor list() did not answer')
  t.equal((await app.inject({ url: '/cache/stats/entries?tag=items&limit=0', headers: auth })).statusCode, 400)
  t.equal((await app.inject({ url: '/cache/stats/entries?tag=items&key=x', headers: auth })).json().entries.length, 3, 'unknown parameters are dropped')

  const post = async (payload: unknown, headers: Record<string, string> = {}): Promise<{ statusCode: number, json: () => { dropped: number } }> =>
    await app.inject({ method: 'POST', url: '/cache/stats/invalidate', headers: { ...auth, ...headers }, payload: payload as string })
  for (const bad of [{}, { tags: [] }, { tags: [{}] }, { tags: [''] }, { route: '' }, { tags: ['x'.repeat(257)] }]) {
    t.equal((await post(bad)).statusCode, 400, `refused: ${JSON.stringify(bad).slice(0, 40)}`)
  }
  t.equal((await post('tags=items', { 'content-type': 'application/x-www-form-urlencoded' })).statusCode, 415, 'JSON only: no cross-site form')
  t.equal((await post('{"tags":["items"]}', { 'content-type': 'text/plain' })).statusCode, 400, 'text/plain is not an object')
  t.equal(runs.runs, 3)

  const dropped = await post({ tags: ['item:1'] })
  t.equal(dropped.statusCode, 200)
  t.same(dropped.json(), { dropped: 1 })
  await app.inject('/items/1')
  t.equal(runs.runs, 4, 'the dropped entry is a miss')
  await app.inject('/items/2')
  t.equal(runs.runs, 4, 'the others are still hits')
  t.same((await post({ route: 'GET /items/:id' })).json(), { dropped: 3 })
  t.same((await post({ tags: ['nothing'] })).json(), { dropped: 0 })
})

t.test('the store cannot be asked: 503 from entries and invalidation', async (t) => {
  const failing = {
    name: 'failing',
    get: async () => undefined,
    set: async () => {},
    delete: async () => {},
    clear: async () => {},
    invalidateTags: async () => { throw new Error('down') },
    list: async () => { throw new Error('down') }
  }
  const app = await cachedApp(t, { store: failing as never, statsRoute: { onRequest: guard, dashboard: true } })
  await app.ready()
  const list = await app.inject({ url: '/cache/stats/entries?tag=items', headers: auth })
  t.equal(list.statusCode, 503)
  t.match(list.json(), { message: 'the store could not be asked' })
  const invalidate = await app.inject({ method: 'POST', url: '/cache/stats/invalidate', headers: auth, payload: { tags: ['items'] } })
  t.equal(invalidate.statusCode, 503)
})

t.test('a custom store without list: 501; a tag too long in bytes: 400 from app.cache.invalidate', async (t) => {
  const store = { name: 'plain', get: async () => undefined, set: async () => {}, delete: async () => true, invalidateTags: async () => 0, clear: async () => {} }
  const app = await cachedApp(t, { store, statsRoute: { onRequest: guard, dashboard: true } })
  await app.ready()
  const list = await app.inject({ url: '/cache/stats/entries?tag=items', headers: auth })
  t.equal(list.statusCode, 501)
  t.match(list.json(), { message: /no list\(\) method/ })
  const long = await app.inject({ method: 'POST', url: '/cache/stats/invalidate', headers: auth, payload: { tags: ['é'.repeat(200)] } })
  t.equal(long.statusCode, 400)
  t.match(long.json(), { message: /invalid argument "tags"/ })
})

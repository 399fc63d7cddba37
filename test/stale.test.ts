import type { FastifyRequest, InjectOptions } from 'fastify'
import t from 'tap'
import { cachedApp, counter } from './helpers/app.js'
import { deferred, eventually, until } from './helpers/events.js'
import { storeKinds } from './helpers/stores.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

for (const [kind, options] of await storeKinds(t)) {
  t.test(`${kind}: staleWhileRevalidate serves the stale entry at once and refreshes it once in the background`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    const refreshing = deferred()
    // The refresh answers only once all the stale answers have gone out. A 1 s TTL leaves room for
    // the HIT on the refreshed entry on a loaded machine.
    app.get('/swr', { config: { cache: { ttl: 1, staleWhileRevalidate: 30 } } }, async () => {
      const run = runs.next()
      if (run === 2) await refreshing.promise
      return { run }
    })
    await app.inject('/swr')
    await until(Date.now(), 1000)
    const stale = await Promise.all(Array.from({ length: 10 }, async () => await app.inject('/swr')))
    for (const r of stale) {
      t.equal(r.headers['x-cache'], 'STALE')
      t.same(JSON.parse(r.body), { run: 1 })
      t.ok(Number(r.headers.age) >= 1)
    }
    refreshing.resolve()
    t.ok(await eventually(() => app.cache.stats().total.stores === 2), 'the refresh stored a new entry')
    t.equal(runs.runs, 2, 'ten stale answers, one refresh')
    const hit = await app.inject('/swr')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.same(hit.json(), { run: 2 })
    t.equal(app.cache.stats().routes['GET /swr'].stale, 10)
  })

  t.test(`${kind}: a refresh replays the request: its tenant, its vary headers and its body`, async (t) => {
    const app = await cachedApp(t, { ...options(), tenant: (request) => request.headers['x-tenant'] as string | undefined })
    const runs = counter()
    const windows = { ttl: 1, staleWhileRevalidate: 30 }
    const seen = (request: FastifyRequest): object => ({
      tenant: request.headers['x-tenant'], lang: request.headers['accept-language'], body: request.body, run: runs.next()
    })
    app.get('/page', { config: { cache: { ...windows, vary: ['accept-language'] } } }, async (request) => seen(request))
    app.post('/search', { config: { cache: windows } }, async (request) => seen(request))
    const requests: InjectOptions[] = [
      { url: '/page', headers: { 'x-tenant': 'acme', 'accept-language': 'fr' } },
      { method: 'POST', url: '/search', headers: { 'x-tenant': 'acme' }, payload: { q: 'aspirin' } }
    ]
    for (const request of requests) t.equal((await app.inject(request)).headers['x-cache'], 'MISS')
    t.ok(await eventually(() => app.cache.stats().total.stores === 2), 'both entries stored')
    await until(Date.now(), 1000) // past the TTL
    for (const request of requests) t.equal((await app.inject(request)).headers['x-cache'], 'STALE')
    t.ok(await eventually(() => app.cache.stats().total.stores === 4), 'both refreshes stored an entry')
    const [page, search] = await Promise.all(requests.map(async (request) => await app.inject(request)))
    t.equal(page.headers['x-cache'], 'HIT', 'the refresh replaced the entry of the same tenant and language')
    t.match(page.json(), { tenant: 'acme', lang: 'fr' })
    t.equal(search.headers['x-cache'], 'HIT', 'and of the same body')
    t.match(search.json(), { tenant: 'acme', body: { q: 'aspirin' } })
    t.same([page.json().run, search.json().run].sort(), [3, 4], 'the refreshes\' own answers')
  })

  t.test(`${kind}: no header or query parameter can trigger or forge a refresh`, async (t) => {
    const app = await cachedApp(t, options())
    const runs = counter()
    app.get('/fixed', { config: { cache: { ttl: 60, staleWhileRevalidate: 60 } } }, async () => ({ run: runs.next() }))
    await app.inject('/fixed')
    const tricks = [
      { headers: { 'cache-control': 'no-cache' } }, { headers: { pragma: 'no-cache' } },
      { headers: { 'x-response-cache-refresh': '1', 'x-refresh': '1', 'x-cache': 'MISS' } },
      { headers: { 'cache-control': 'max-age=0, must-revalidate' } }
    ]
    for (const trick of tricks) t.equal((await app.inject({ url: '/fixed', ...trick })).headers['x-cache'], 'HIT')
    await sleep(50)
    t.equal(runs.runs, 1)
  })

  t.test(`${kind}: staleIfError serves the stale entry when the handler throws or answers 5xx`, async (t) => {
    const app = await cachedApp(t, options())
    let mode: 'ok' | 'throw' | '503' = 'ok'
    app.get('/sie', { config: { cache: { ttl: 0.1, staleIfError: 60 } } }, async (_request, reply) => {
      if (mode === 'throw') throw new Error('database down')
      if (mode === '503') return await reply.code(503).header('retry-after', '5').send({ error: 'busy' })
      return { good: true }
    })
    const good = await app.inject('/sie')
    await sleep(200)
    mode = 'throw'
    const thrown = await app.inject('/sie')
    t.equal(thrown.statusCode, 200)
    t.equal(thrown.headers['x-cache'], 'STALE')
    t.equal(thrown.body, good.body)
    t.equal(thrown.headers['content-type'], good.headers['content-type'])
    mode = '503'
    const busy = await app.inject('/sie')
    t.equal(busy.statusCode, 200)
    t.equal(busy.headers['x-cache'], 'STALE')
    t.equal(busy.headers['retry-after'], undefined, 'headers of the failed answer are dropped')
    const conditional = await app.inject({ url: '/sie', headers: { 'if-none-match': good.headers.etag as string } })
    t.equal(conditional.statusCode, 304)
    mode = 'ok'
    const fresh = await app.inject('/sie')
    t.equal(fresh.headers['x-cache'], 'MISS', 'a good answer replaces the stale entry')
  })

  t.test(`${kind}: past the staleIfError window the error reaches the client`, async (t) => {
    const app = await cachedApp(t, options())
    let fail = false
    app.get('/late', { config: { cache: { ttl: 0.1, staleIfError: 0.2 } } }, async () => {
      if (fail) throw new Error('down')
      return 'ok'
    })
    await app.inject('/late')
    await sleep(400)
    fail = true
    const r = await app.inject('/late')
    t.equal(r.statusCode, 500)
    t.equal(r.headers['x-cache'], 'MISS')
  })

  t.test(`${kind}: the error behind a stale answer is still logged`, async (t) => {
    const lines: string[] = []
    const app = await cachedApp(t, options(), { logger: { level: 'error', stream: { write: (line: string) => { lines.push(line) } } } })
    let fail = false
    app.get('/logged', { config: { cache: { ttl: 0.05, staleIfError: 60 } } }, async () => {
      if (fail) throw new Error('upstream exploded')
      return 'ok'
    })
    await app.inject('/logged')
    await sleep(100)
    fail = true
    t.equal((await app.inject('/logged')).headers['x-cache'], 'STALE')
    t.match(lines.join(''), /upstream exploded/)
  })
}

t.test('honorClientNoCache: off by default; when on, no-cache refreshes the entry', async (t) => {
  const app = await cachedApp(t, { honorClientNoCache: true })
  const runs = counter()
  app.get('/n', { config: { cache: true } }, async () => ({ run: runs.next() }))
  await app.inject('/n')
  for (const headers of [{ 'cache-control': 'no-cache' }, { 'cache-control': 'max-age=0' }, { pragma: 'no-cache' }]) {
    const r = await app.inject({ url: '/n', headers })
    t.equal(r.headers['x-cache'], 'MISS')
  }
  t.equal(runs.runs, 4)
  const after = await app.inject('/n')
  t.equal(after.headers['x-cache'], 'HIT')
  t.same(JSON.parse(after.body), { run: 4 }, 'the refreshed answer was stored')
  t.equal((await app.inject({ url: '/n', headers: { 'cache-control': 'max-age=60' } })).headers['x-cache'], 'HIT')
})

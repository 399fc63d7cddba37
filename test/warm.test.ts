import t from 'tap'
import { cachedApp } from './helpers/app.js'
import { storeKinds } from './helpers/stores.js'

const kinds = await storeKinds(t)

for (const [kind, options] of kinds) {
  t.test(`${kind}: warm fills entries and reports what was stored and what was not`, async (t) => {
    const app = await cachedApp(t, options())
    const runs: Record<string, number> = {}
    const ran = (name: string): number => (runs[name] = (runs[name] ?? 0) + 1)
    app.get('/products/:id', { config: { cache: true } }, async (request) => ({ id: (request.params as { id: string }).id, run: ran('product') }))
    app.post('/search', { config: { cache: true } }, async (request) => ({ q: (request.body as { q: string }).q, run: ran('search') }))
    app.get('/fails', { config: { cache: true } }, async (request, reply) => await reply.code(503).send('later'))
    app.get('/personal', { config: { cache: true } }, async (request, reply) => await reply.header('set-cookie', 'a=1').send('mine'))
    app.get('/plain', async () => 'not cached')
    await app.ready()

    const report = await app.cache.warm([
      '/products/1',
      { url: '/products/2', headers: { 'accept-language': 'en' } },
      { method: 'POST', url: '/search', body: { q: 'aspirin' } },
      '/fails',
      '/personal',
      '/plain',
      '/nowhere',
      { url: '/products/3', headers: { authorization: 'Bearer secret' } }
    ])
    t.same(report.stored, [
      { method: 'GET', url: '/products/1', status: 200 },
      { method: 'GET', url: '/products/2', status: 200 },
      { method: 'POST', url: '/search', status: 200 }
    ])
    t.same(report.failed.sort((a, b) => a.url.localeCompare(b.url)), [
      { method: 'GET', url: '/fails', status: 503, reason: 'status' },
      { method: 'GET', url: '/nowhere', status: 404, reason: 'not-cached' },
      { method: 'GET', url: '/personal', status: 200, reason: 'set-cookie' },
      { method: 'GET', url: '/plain', status: 200, reason: 'not-cached' },
      { method: 'GET', url: '/products/3', status: 200, reason: 'bypass' }
    ])
    t.notMatch(JSON.stringify(report), /secret/, 'request headers are not echoed')

    t.equal((await app.inject('/products/1')).headers['x-cache'], 'HIT')
    t.equal((await app.inject({ method: 'POST', url: '/search', payload: { q: 'aspirin' } })).headers['x-cache'], 'HIT')
    t.equal(runs.product, 3)

    const again = await app.cache.warm(['/products/1'])
    t.equal(again.stored.length, 1)
    t.equal(runs.product, 4, 'warming an entry that is there computes it again')
    t.same((await app.inject('/products/1')).json(), { id: '1', run: 4 }, 'and replaces it')
  })
}

t.test('warm with nothing to do, and with wrong input', async (t) => {
  const app = await cachedApp(t)
  await app.ready()
  t.same(await app.cache.warm([]), { stored: [], failed: [] })
  await t.rejects(app.cache.warm('/x' as unknown as string[]), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT' })
  await t.rejects(app.cache.warm(['no-slash']), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT', message: /"warm"/ })
  await t.rejects(app.cache.warm([{ url: 5 } as unknown as string]), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT' })
})

t.test('a warm request whose handler throws is reported, not thrown', async (t) => {
  const app = await cachedApp(t)
  app.get('/boom', { config: { cache: true } }, async () => { throw new Error('upstream down') })
  await app.ready()
  const report = await app.cache.warm(['/boom'])
  t.same(report, { stored: [], failed: [{ method: 'GET', url: '/boom', status: 500, reason: 'status' }] })
})

import Fastify from 'fastify'
import t from 'tap'
import responseCache from '../lib/index.js'
import { cachedApp } from './helpers/app.js'

const bad: Array<[string, unknown, RegExp]> = [
  ['a string', 'yes', /route "GET \/r": "cache" expected true, false or an object, got "yes"/],
  ['ttl 0', { ttl: 0 }, /route "GET \/r": "ttl" expected a number of seconds greater than 0, or 'origin', got 0/],
  ['negative staleIfError', { staleIfError: -5 }, /"staleIfError" expected staleIfError: a number of seconds, 0 or more, got -5/],
  ['negative staleWhileRevalidate', { staleWhileRevalidate: -5 }, /"staleWhileRevalidate" expected staleWhileRevalidate: a number of seconds, 0 or more, got -5/],
  ['vary not an array', { vary: 'accept' }, /"vary" expected an array of request header names/],
  ['vary with a bad name', { vary: ['bad header'] }, /"vary"/],
  ['tags of numbers', { tags: [1] }, /"tags" expected an array of non-empty strings or a function/],
  ['empty tag', { tags: [''] }, /"tags"/],
  ['key not a function', { key: 'x-user' }, /"key" expected a function of the request/],
  ['invalidate as a string', { invalidate: 'items' }, /"invalidate"/],
  ['statusCodes with a 5xx', { statusCodes: [200, 503] }, /"statusCodes" expected a non-empty array of statuses from 200 to 499/],
  ['statusCodes empty', { statusCodes: [] }, /"statusCodes"/],
  ['ignoreCookies not boolean', { ignoreCookies: 'yes' }, /"ignoreCookies" expected a boolean/],
  ['ttlJitter past 1', { ttlJitter: 2 }, /route "GET \/r": "ttlJitter" expected a fraction from 0 to 1, got 2/],
  ['ttlJitter negative', { ttlJitter: -1 }, /"ttlJitter" expected a fraction from 0 to 1, got -1/],
  ['eagerRefresh of 1', { eagerRefresh: 1 }, /route "GET \/r": "eagerRefresh" expected a fraction strictly between 0 and 1 \(such as 0.8\), or false, got 1/],
  ['eagerRefresh of 0', { eagerRefresh: 0 }, /route "GET \/r": "eagerRefresh" expected a fraction strictly between 0 and 1 \(such as 0.8\), or false, got 0/],
  ['eagerRefresh as a percentage', { eagerRefresh: 80 }, /"eagerRefresh" expected a fraction strictly between 0 and 1 \(such as 0.8\), or false, got 80/],
  ['eagerRefresh true', { eagerRefresh: true }, /"eagerRefresh" expected a fraction strictly between 0 and 1 \(such as 0.8\), or false, got true/],
  ['unknown field', { tll: 5 }, /"tll" is not a known option/]
]

for (const [name, cache, message] of bad) {
  t.test(`bad route config (${name}) fails ready() naming the route`, async (t) => {
    const app = await cachedApp(t)
    app.get('/r', { config: { cache: cache as boolean } }, async () => 'x')
    await t.rejects(async () => await app.ready(), { code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG', message })
  })
}

t.test('a bad route config inside a child plugin fails ready() too', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(responseCache)
  app.register(async (child) => {
    child.post('/search', { config: { cache: { ttl: -1 } } }, async () => 'x')
  }, { prefix: '/api' })
  await t.rejects(async () => await app.ready(), { message: /route "POST \/api\/search": "ttl"/ })
})

t.test('a multi-method route is named with all its methods', async (t) => {
  const app = await cachedApp(t)
  app.route({ method: ['GET', 'POST'], url: '/m', config: { cache: { ttl: 'x' as unknown as number } }, handler: async () => 'x' })
  await t.rejects(async () => await app.ready(), { message: /route "GET,POST \/m"/ })
})

t.test('good route configs are accepted', async (t) => {
  const app = await cachedApp(t)
  app.get('/a', { config: { cache: true } }, async () => 'a')
  app.get('/b', {
    config: {
      cache: {
        ttl: 30,
        staleWhileRevalidate: 10,
        staleIfError: 60,
        vary: ['Accept-Language'],
        tags: (request) => [`x:${request.url}`],
        key: (request) => request.headers['x-user'] as string,
        invalidate: ['x'],
        statusCodes: [200, 404],
        ignoreCookies: true
      }
    }
  }, async () => 'b')
  await t.resolves(async () => await app.ready())
})

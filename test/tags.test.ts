import t from 'tap'
import { tenantSegment } from '../lib/key.js'
import { countedGroups, ENTRY_METHODS, entryTags, pathGroup, selectorTags } from '../lib/tags.js'
import { cachedApp } from './helpers/app.js'

// The store only sees these strings: what an entry is recorded under, and what an invalidation asks
// for, must meet exactly, and must never meet across kinds (tag, route, path) or tenants.

const acme = tenantSegment('acme')
const other = tenantSegment('other')

t.test('pathGroup: host and path hashed into a fixed-width, delimiter-free group', async (t) => {
  const group = pathGroup('example.com', '/items/1')
  t.match(group, /^p:[A-Za-z0-9_-]{22}$/)
  t.equal(pathGroup('example.com', '/items/1'), group, 'the same host and path give the same group')
  t.not(pathGroup('example.com', '/items/2'), group, 'another path')
  t.not(pathGroup('other.example', '/items/1'), group, 'another host')
  t.not(pathGroup('example.com/items', '/1'), pathGroup('example.com', '/items/1'), 'host and path cannot be shifted into each other')
  t.equal(pathGroup('h', 'x'.repeat(10_000)).length, 24)
})

t.test('countedGroups: every value, then the route set of each route', async (t) => {
  t.same(countedGroups([]), ['g:v'])
  t.same(countedGroups(['GET /a', 'POST /b']), ['g:v', 'g:r:GET /a', 'g:r:POST /b'])
  t.same(countedGroups(new Set(['GET /a'])), ['g:v', 'g:r:GET /a'])
})

t.test('entryTags: a response entry of no tenant is recorded in the global sets only', async (t) => {
  const path = pathGroup('h', '/items/1')
  t.same(entryTags({ tenant: '-', tags: ['item:1', 'items'], route: 'GET /items/:id', path }), [
    'g:t:item:1', 'g:t:items', 'g:r:GET /items/:id', 'g:' + path
  ])
  t.same(entryTags({ tenant: '-' }), [], 'nothing to record')
  t.same(entryTags({ tenant: '-', tags: [] }), [])
})

t.test('entryTags: a tenant\'s entry is also recorded per tenant, and in the tenant\'s "all" set', async (t) => {
  t.same(entryTags({ tenant: acme, tags: ['a'], route: 'POST /search' }), [
    'g:t:a', 'g:r:POST /search',
    `s:${acme}:t:a`, `s:${acme}:r:POST /search`, `s:${acme}:all`
  ])
  t.same(entryTags({ tenant: acme }), [`s:${acme}:all`], 'even with no tag, the tenant can drop it')
})

t.test('entryTags: a value is in the values set, never in a route or path set', async (t) => {
  t.same(entryTags({ tenant: '-', value: true }), ['g:v'])
  t.same(entryTags({ tenant: '-', value: false, tags: ['x'] }), ['g:t:x'], 'value: false is a response')
  t.same(entryTags({ tenant: acme, value: true, tags: ['drug:a'] }), [
    'g:v', 'g:t:drug:a', `s:${acme}:v`, `s:${acme}:t:drug:a`, `s:${acme}:all`
  ])
})

t.test('selectorTags: tags, routes and paths of every tenant', async (t) => {
  t.same(selectorTags({}), [], 'selects nothing')
  t.same(selectorTags({ tags: [] }), [])
  t.same(selectorTags({ tags: ['item:1', 'items'] }), ['g:t:item:1', 'g:t:items'])
  t.same(selectorTags({ tags: ['x'], tenant: '-' }), ['g:t:x'], "'-' is no tenant")
  t.same(selectorTags({ route: 'GET /items/:id' }), ['g:r:GET /items/:id'])
  t.same(selectorTags({ route: 'post /search' }), ['g:r:POST /search'], 'the method is upper-cased')
  t.same(selectorTags({ route: 'HEAD /items/:id' }), ['g:r:GET /items/:id'], 'HEAD names the GET entries')
  t.same(selectorTags({ route: 'head /items/:id' }), ['g:r:GET /items/:id'])
  t.same(selectorTags({ route: '/items/:id' }), ENTRY_METHODS.map((method) => `g:r:${method} /items/:id`), 'no method: every method an entry can have')
  t.same([...ENTRY_METHODS], ['GET', 'POST', 'QUERY'])
  t.same(selectorTags({ route: 'GET /a b' }), ['g:r:GET /a b'], 'only the first space splits')
  t.same(selectorTags({ groups: ['p:abc'] }), ['g:p:abc'])
  t.same(selectorTags({ tags: ['a'], route: 'GET /x', groups: ['p:abc'] }), ['g:t:a', 'g:r:GET /x', 'g:p:abc'])
})

t.test('selectorTags: a tenant narrows every selector to its own sets, and alone selects all of it', async (t) => {
  t.same(selectorTags({ tenant: acme }), [`s:${acme}:all`])
  t.same(selectorTags({ tenant: acme, tags: ['a', 'b'] }), [`s:${acme}:t:a`, `s:${acme}:t:b`])
  t.same(selectorTags({ tenant: acme, tags: [] }), [], 'an empty list narrowed to a tenant selects nothing, not the whole tenant')
  t.same(selectorTags({ tenant: acme, route: 'GET /x' }), [`s:${acme}:r:GET /x`])
  t.same(selectorTags({ tenant: acme, groups: ['p:abc'] }), [`s:${acme}:p:abc`])
  t.same(selectorTags({ tenant: acme, groups: [] }), [], 'a write with nothing to drop drops nothing of its tenant')
})

t.test('what an entry is recorded under and what a selector asks for meet exactly', async (t) => {
  const path = pathGroup('h', '/items/1')
  const recorded = new Set(entryTags({ tenant: acme, tags: ['item:1'], route: 'GET /items/:id', path }))
  const meets = (selected: string[]): boolean => selected.some((tag) => recorded.has(tag))
  t.ok(meets(selectorTags({ tags: ['item:1'] })))
  t.ok(meets(selectorTags({ tags: ['item:1'], tenant: acme })))
  t.notOk(meets(selectorTags({ tags: ['item:1'], tenant: other })), 'another tenant')
  t.ok(meets(selectorTags({ route: 'GET /items/:id' })))
  t.ok(meets(selectorTags({ route: '/items/:id', tenant: acme })))
  t.notOk(meets(selectorTags({ route: 'GET /items/:id', tenant: other })))
  t.ok(meets(selectorTags({ groups: [path], tenant: acme })))
  t.notOk(meets(selectorTags({ groups: [pathGroup('h', '/items/2')] })))
  t.ok(meets(selectorTags({ tenant: acme })))
  t.notOk(meets(selectorTags({ tenant: other })))
  t.notOk(meets(selectorTags({ tags: ['r:GET /items/:id'] })), 'a user tag cannot name a route')
  t.notOk(meets(selectorTags({ tags: [path] })), 'nor a path')
  t.notOk(meets(selectorTags({ tags: ['all'], tenant: acme })), 'nor a tenant')
  t.notOk(meets(selectorTags({ tags: ['v'] })), 'nor the values')
})

t.test('through the plugin: route selectors by method, HEAD and no method; a tenant alone drops its values too', async (t) => {
  const app = await cachedApp(t, { tenant: (request) => request.headers['x-tenant'] as string | undefined })
  app.route({ method: ['GET', 'POST'], url: '/r', config: { cache: true }, handler: async (request) => `${request.method} ${request.body === undefined ? '' : JSON.stringify(request.body)}` })
  // POST first: a POST the handler answers drops the GET entries of its path (RFC 9111 4.4).
  const fill = async (): Promise<void> => {
    await app.inject({ method: 'POST', url: '/r', payload: { q: 1 } })
    await app.inject('/r')
  }
  await fill()
  t.equal(await app.cache.invalidate({ route: 'post /r' }), 1, 'one method, named in lower case')
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  await fill()
  t.equal(await app.cache.invalidate({ route: 'HEAD /r' }), 1, 'HEAD drops the GET entry')
  t.equal((await app.inject({ method: 'POST', url: '/r', payload: { q: 1 } })).headers['x-cache'], 'HIT')
  await fill()
  t.equal(await app.cache.invalidate({ route: '/r' }), 2, 'no method: GET and POST')

  await app.inject({ url: '/r', headers: { 'x-tenant': 'acme' } })
  await app.inject({ url: '/r', headers: { 'x-tenant': 'other' } })
  await app.cache.set('v', 1, { tenant: 'acme' })
  await app.cache.set('v', 2, { tenant: 'other' })
  t.equal(await app.cache.invalidate({ tenant: 'acme', tags: [] }), 0, 'an empty tag list within a tenant drops nothing')
  t.equal(await app.cache.invalidate({ tenant: 'acme' }), 2, 'the tenant\'s response and value')
  t.equal(await app.cache.get('v', { tenant: 'other' }), 2)
  t.equal((await app.inject({ url: '/r', headers: { 'x-tenant': 'other' } })).headers['x-cache'], 'HIT')
  t.equal((await app.inject({ url: '/r', headers: { 'x-tenant': 'acme' } })).headers['x-cache'], 'MISS')
})

import Fastify from 'fastify'
import t, { type Test } from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MEMORY_MAX_BYTES, resolveOptions, resolveRouteOptions } from '../lib/options.js'

async function readyWith (options: unknown): Promise<void> {
  const app = Fastify()
  try {
    await app.register(responseCache, options as ResponseCacheOptions)
    await app.ready()
  } finally {
    await app.close()
  }
}

t.test('defaults', async (t) => {
  const o = resolveOptions(undefined)
  t.equal(o.store, 'memory')
  t.equal(o.namespace, 'rc')
  t.equal(o.ttl, 60)
  t.equal(o.staleWhileRevalidate, 0)
  t.equal(o.staleIfError, 0)
  t.equal(o.maxEntryBytes, DEFAULT_MAX_ENTRY_BYTES)
  t.equal(o.memoryMaxBytes, DEFAULT_MEMORY_MAX_BYTES)
  t.equal(o.timeoutMs, 100)
  t.equal(o.statsRoute, false)
})

const plainRoute = { dashboard: false, public: false }

t.test('statsRoute forms', async (t) => {
  t.same(resolveOptions({ statsRoute: true }).statsRoute, { path: '/cache/stats', onRequest: [], ...plainRoute })
  const hook = (): void => {}
  t.same(resolveOptions({ statsRoute: { onRequest: hook } }).statsRoute, { path: '/cache/stats', onRequest: [hook], ...plainRoute })
  t.same(resolveOptions({ statsRoute: { path: '/s', onRequest: [hook] } }).statsRoute, { path: '/s', onRequest: [hook], ...plainRoute })
})

t.test('statsRoute.dashboard: true or { interval }, with a guard or public', async (t) => {
  const hook = (): void => {}
  t.strictSame(resolveOptions({ statsRoute: { onRequest: hook, dashboard: true } }).statsRoute,
    { path: '/cache/stats', onRequest: [hook], dashboard: { interval: 10 }, public: false })
  t.strictSame(resolveOptions({ statsRoute: { onRequest: hook, dashboard: { interval: 2 } } }).statsRoute,
    { path: '/cache/stats', onRequest: [hook], dashboard: { interval: 2 }, public: false })
  t.strictSame(resolveOptions({ statsRoute: { onRequest: hook, dashboard: {} } }).statsRoute,
    { path: '/cache/stats', onRequest: [hook], dashboard: { interval: 10 }, public: false })
  t.strictSame(resolveOptions({ statsRoute: { dashboard: true, public: true } }).statsRoute,
    { path: '/cache/stats', onRequest: [], dashboard: { interval: 10 }, public: true })
  t.strictSame(resolveOptions({ statsRoute: { dashboard: false } }).statsRoute,
    { path: '/cache/stats', onRequest: [], dashboard: false, public: false })
  const refused = /"statsRoute.dashboard": lists cached URLs and invalidates entries: give statsRoute.onRequest a guard, or set statsRoute.public: true/
  t.throws(() => resolveOptions({ statsRoute: { dashboard: true } }), refused)
  t.throws(() => resolveOptions({ statsRoute: { dashboard: true, onRequest: [] } }), refused)
  t.throws(() => resolveOptions({ statsRoute: { dashboard: true, public: false } }), refused)
})

const bad: Array<[string, unknown, RegExp]> = [
  ['ttl', { ttl: 0 }, /"ttl": expected a number of seconds greater than 0, or 'origin', got 0/],
  ['ttl', { ttl: '60' }, /"ttl".*got "60"/],
  ['staleWhileRevalidate', { staleWhileRevalidate: -1 }, /"staleWhileRevalidate"/],
  ['staleIfError', { staleIfError: Number.NaN }, /"staleIfError"/],
  ['ttlJitter', { ttlJitter: 1.5 }, /"ttlJitter": expected a fraction from 0 to 1, got 1.5/],
  ['ttlJitter', { ttlJitter: -0.1 }, /"ttlJitter": expected a fraction from 0 to 1/],
  ['ttlJitter', { ttlJitter: '0.1' }, /"ttlJitter": expected a fraction from 0 to 1/],
  ['eagerRefresh', { eagerRefresh: 1 }, /"eagerRefresh": expected a fraction strictly between 0 and 1 \(such as 0.8\), or false, got 1/],
  ['eagerRefresh', { eagerRefresh: 0 }, /"eagerRefresh": expected a fraction strictly between 0 and 1 \(such as 0.8\), or false, got 0/],
  ['eagerRefresh', { eagerRefresh: 80 }, /"eagerRefresh": expected a fraction strictly between 0 and 1/],
  ['eagerRefresh', { eagerRefresh: true }, /"eagerRefresh": expected a fraction strictly between 0 and 1 \(such as 0.8\), or false, got true/],
  ['eagerRefresh', { eagerRefresh: '0.8' }, /"eagerRefresh": expected a fraction strictly between 0 and 1/],
  ['namespace', { namespace: 'a:b' }, /"namespace": expected a string of 1 to 64/],
  ['namespace', { namespace: '' }, /"namespace"/],
  ['namespace', { namespace: 'x'.repeat(65) }, /"namespace".*…/],
  ['store', { store: 'layered' }, /"store": expected 'memory', 'redis', 'tiered' or a store object/],
  ['tenant', { tenant: 'x-tenant-id' }, /"tenant": expected a function/],
  ['maxEntryBytes', { maxEntryBytes: 1.5 }, /"maxEntryBytes": expected a whole number/],
  ['memory', { memory: 5 }, /"memory": expected an object/],
  ['memory.maxBytes', { memory: { maxBytes: 10 } }, /"memory.maxBytes": expected a whole number of bytes, 1024 or more, got 10/],
  ['memory.size', { memory: { size: 10 } }, /"memory.size": is not a known option/],
  ['timeout', { timeout: 0 }, /"timeout": expected milliseconds/],
  ['statsRoute', { statsRoute: 'yes' }, /"statsRoute"/],
  ['statsRoute.path', { statsRoute: { path: 'stats' } }, /"statsRoute.path": expected a path starting with "\/"/],
  ['statsRoute.onRequest', { statsRoute: { onRequest: [1] } }, /"statsRoute.onRequest"/],
  ['statsRoute.dashboard', { statsRoute: { dashboard: true } }, /"statsRoute.dashboard": .*statsRoute.onRequest/],
  ['redis', { redis: 'redis://:secret@localhost' }, /"redis": expected an ioredis/],
  ['perRequestHeaders', { perRequestHeaders: ['x-request-id', 'ETag'] }, /"perRequestHeaders": may not list "etag": it describes the stored response/],
  ['perRequestHeaders', { perRequestHeaders: ['x:id'] }, /"perRequestHeaders": expected an array of response header names, got an array/],
  ['typo', { tll: 5 }, /"tll": is not a known option/],
  ['options', 'memory', /"options": expected an object/]
]

for (const [name, options, message] of bad) {
  t.test(`bad option ${name} fails ready() naming it`, async (t) => {
    await t.rejects(readyWith(options), { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message })
  })
}

t.test('a bad option never echoes a credential-looking value in full', async (t) => {
  const err = await readyWith({ redis: 'redis://user:verylongsecretpassword123456789012345@host' }).catch((e: Error) => e)
  t.notMatch(String((err as Error).message), /verylongsecretpassword123456789012345@host/)
})

t.test('a custom store must have the methods the plugin calls', async (t) => {
  await t.rejects(readyWith({ store: { name: 'x', get () {} } }), {
    code: 'FST_RESPONSE_CACHE_INVALID_STORE',
    message: /"store": a custom store must have a set\(\) method/
  })
})

t.test("store 'redis' without a client fails ready() saying how to give one", async (t) => {
  await t.rejects(readyWith({ store: 'redis' }), {
    code: 'FST_RESPONSE_CACHE_NO_REDIS_CLIENT',
    message: /"redis": store 'redis' needs an ioredis client: pass one as "redis" or register @fastify\/redis/
  })
  await t.rejects(readyWith({ store: 'redis', redis: { getBuffer () {} } }), {
    code: 'FST_RESPONSE_CACHE_NO_REDIS_CLIENT',
    message: /expected an ioredis Redis or Cluster client, which has set\(\)/
  })
})

t.test('credentials in a string option are masked in the error', async (t) => {
  const err = await readyWith({ redis: 'redis://user:pw@h' }).catch((e: Error) => e)
  t.match(String((err as Error).message), /redis:\/\/\*\*\*@h/)
  t.notMatch(String((err as Error).message), /pw/)
})

t.test('good options register', async (t) => {
  await t.resolves(readyWith({
    namespace: 'app.v1',
    ttl: 0.5,
    tenant: () => undefined,
    maxEntryBytes: 10,
    memory: { maxBytes: 2048 },
    timeout: 50,
    statsRoute: { path: '/s' }
  }))
})

// resolveOptions and resolveRouteOptions on their own: each default, each value passed through,
// each bound on both sides, and the message that names what is wrong.

const invalid = (t: Test, options: unknown, message: string): void => {
  t.throws(() => resolveOptions(options), { code: 'FST_RESPONSE_CACHE_INVALID_OPTION', message: `fastify-response-cache: invalid option ${message}` }, message)
}

t.test('every default, and every value passed through', async (t) => {
  t.match(resolveOptions({}), {
    store: 'memory',
    redis: undefined,
    namespace: 'rc',
    ttl: 60,
    staleWhileRevalidate: 0,
    eagerRefresh: undefined,
    staleIfError: 0,
    ttlJitter: 0,
    tenant: undefined,
    maxEntryBytes: 1_048_576,
    memoryMaxBytes: 67_108_864,
    timeoutMs: 100,
    readyTimeoutMs: 3000,
    localTtlMs: 60_000,
    coalesceTimeoutMs: 5000,
    honorClientNoCache: false,
    registry: undefined,
    statsRoute: false
  })
  t.strictSame(resolveOptions(null).namespace, 'rc', 'null is no options')
  const tenant = (): string => 't'
  const registry = { registerMetric () {} }
  const store = { get () {}, set () {}, delete () {}, invalidateTags () {}, clear () {} }
  const redis = { fake: 'client' }
  const given = resolveOptions({
    store,
    redis,
    namespace: 'ns',
    ttl: 5,
    staleWhileRevalidate: 3,
    staleIfError: 4,
    tenant,
    maxEntryBytes: 10,
    memory: { maxBytes: 4096 },
    timeout: 7,
    readyTimeout: 6,
    coalesceTimeout: 8,
    honorClientNoCache: true,
    registry,
    statsRoute: false
  })
  t.match(given, {
    namespace: 'ns',
    ttl: 5,
    staleWhileRevalidate: 3,
    staleIfError: 4,
    maxEntryBytes: 10,
    memoryMaxBytes: 4096,
    timeoutMs: 7,
    readyTimeoutMs: 6,
    coalesceTimeoutMs: 8,
    honorClientNoCache: true,
    statsRoute: false
  })
  t.equal(given.store, store)
  t.equal(given.redis, redis)
  t.equal(given.tenant, tenant)
  t.equal(given.registry, registry)
  t.equal(resolveOptions({ store: 'redis' }).store, 'redis')
  t.equal(resolveOptions({ memory: {} }).memoryMaxBytes, DEFAULT_MEMORY_MAX_BYTES, 'an empty memory object keeps the default')
  t.equal(resolveOptions({ ttl: undefined }).ttl, 60, 'an option given as undefined is not given')
  t.equal(resolveOptions({ coalesceTimeout: 0 }).coalesceTimeoutMs, 0)
  t.equal(resolveOptions({ readyTimeout: 0 }).readyTimeoutMs, 0, 'ready() need not wait at all')
  t.equal(resolveOptions({ store: 'tiered', tiered: { localTtl: 1.5 } }).localTtlMs, 1500)
  t.equal(resolveOptions({ tiered: {} }).localTtlMs, 60_000)
  t.equal(resolveOptions({ staleWhileRevalidate: 0 }).staleWhileRevalidate, 0)
})

t.test('each bound is checked on both sides', async (t) => {
  const good = [
    { ttl: 0.001 }, { staleWhileRevalidate: 0 }, { staleIfError: 0 }, { maxEntryBytes: 1 }, { memory: { maxBytes: 1024 } },
    { timeout: 0.5 }, { timeout: 60_000 }, { coalesceTimeout: 600_000 }, { readyTimeout: 600_000 }, { namespace: 'x'.repeat(64) }, { namespace: 'A-z_0.9' },
    { honorClientNoCache: false }, { statsRoute: true }, { statsRoute: {} }, { statsRoute: { onRequest: [] } }
  ]
  for (const options of good) t.doesNotThrow(() => resolveOptions(options), JSON.stringify(options).slice(0, 60))
  invalid(t, { ttl: -1 }, '"ttl": expected a number of seconds greater than 0, or \'origin\', got -1')
  invalid(t, { staleWhileRevalidate: -0.5 }, '"staleWhileRevalidate": expected staleWhileRevalidate: a number of seconds, 0 or more, got -0.5')
  invalid(t, { staleIfError: 'long' }, '"staleIfError": expected staleIfError: a number of seconds, 0 or more, got "long"')
  invalid(t, { maxEntryBytes: 0 }, '"maxEntryBytes": expected a whole number of bytes, 1 or more, got 0')
  invalid(t, { memory: { maxBytes: 1023 } }, '"memory.maxBytes": expected a whole number of bytes, 1024 or more, got 1023')
  invalid(t, { memory: [] }, '"memory": expected an object { maxBytes }, got an array')
  invalid(t, { timeout: 60_001 }, '"timeout": expected milliseconds, more than 0 and at most 60000, got 60001')
  invalid(t, { coalesceTimeout: 600_001 }, '"coalesceTimeout": expected milliseconds, 0 to 600000, got 600001')
  invalid(t, { readyTimeout: 600_001 }, '"readyTimeout": expected milliseconds, 0 to 600000, got 600001')
  invalid(t, { tiered: { localTtl: 0 } }, '"tiered.localTtl": expected a number of seconds greater than 0, at most 86400, got 0')
  invalid(t, { tiered: { localTtl: 86_401 } }, '"tiered.localTtl": expected a number of seconds greater than 0, at most 86400, got 86401')
  invalid(t, { tiered: { ttl: 5 } }, '"tiered.ttl": is not a known option')
  invalid(t, { readyTimeout: -1 }, '"readyTimeout": expected milliseconds, 0 to 600000, got -1')
  invalid(t, { coalesceTimeout: -1 }, '"coalesceTimeout": expected milliseconds, 0 to 600000, got -1')
  invalid(t, { namespace: 'x'.repeat(65) }, `"namespace": expected a string of 1 to 64 letters, digits, "_", "-" or ".", got "${'x'.repeat(40)}…"`)
  invalid(t, { namespace: 'rc:' }, '"namespace": expected a string of 1 to 64 letters, digits, "_", "-" or ".", got "rc:"')
  invalid(t, { namespace: 'a\nb' }, '"namespace": expected a string of 1 to 64 letters, digits, "_", "-" or ".", got "a\nb"')
  invalid(t, { honorClientNoCache: 1 }, '"honorClientNoCache": expected a boolean, got 1')
  invalid(t, { store: null }, '"store": expected \'memory\', \'redis\', \'tiered\' or a store object, got null')
  invalid(t, { store: true }, '"store": expected \'memory\', \'redis\', \'tiered\' or a store object, got true')
  invalid(t, { redis: 'localhost' }, '"redis": expected an ioredis Redis or Cluster client, got "localhost"')
  invalid(t, { tenant: {} }, '"tenant": expected a function of the request returning a string, a number or undefined, got an object')
  invalid(t, { registry: 'default' }, '"registry": expected a prom-client Registry, got "default"')
  invalid(t, { registry: {} }, '"registry": expected a prom-client Registry, got an object')
  invalid(t, { registry: { registerMetric: true } }, '"registry": expected a prom-client Registry, got an object')
  invalid(t, { statsRoute: 1 }, '"statsRoute": expected true, false or an object { path, onRequest, dashboard, public }, got 1')
  invalid(t, { statsRoute: [] }, '"statsRoute": expected true, false or an object { path, onRequest, dashboard, public }, got an array')
  invalid(t, { statsRoute: { dashboard: 'yes' } }, '"statsRoute.dashboard": expected true, false or an object { interval }, got "yes"')
  invalid(t, { statsRoute: { dashboard: { interval: 0 } } }, '"statsRoute.dashboard": expected true, false or an object { interval }, got an object')
  invalid(t, { statsRoute: { dashboard: { interval: 61 } } }, '"statsRoute.dashboard": expected true, false or an object { interval }, got an object')
  invalid(t, { statsRoute: { dashboard: { every: 5 } } }, '"statsRoute.dashboard": expected true, false or an object { interval }, got an object')
  invalid(t, { statsRoute: { public: 'yes' } }, '"statsRoute.public": expected a boolean, got "yes"')
  invalid(t, { statsRoute: { path: 5 } }, '"statsRoute.path": expected a path starting with "/", got 5')
  invalid(t, { statsRoute: { onRequest: 'hook' } }, '"statsRoute.onRequest": expected a hook function or an array of them, got "hook"')
  invalid(t, { statsRoute: { open: true } }, '"statsRoute.open": is not a known option')
  invalid(t, { memory: { maxBytes: 2048, evict: 'lru' } }, '"memory.evict": is not a known option')
  invalid(t, { redis: 'x'.repeat(40) }, `"redis": expected an ioredis Redis or Cluster client, got "${'x'.repeat(40)}"`)
  invalid(t, { redis: 'x'.repeat(41) }, `"redis": expected an ioredis Redis or Cluster client, got "${'x'.repeat(40)}…"`)
  invalid(t, [], '"options": expected an object, got an array')
  invalid(t, 5, '"options": expected an object, got 5')
})

t.test('statsRoute: false, true, a hook alone or a list; the default path', async (t) => {
  const hook = (): void => {}
  t.equal(resolveOptions({ statsRoute: false }).statsRoute, false)
  t.strictSame(resolveOptions({ statsRoute: {} }).statsRoute, { path: '/cache/stats', onRequest: [], ...plainRoute })
  t.strictSame(resolveOptions({ statsRoute: { path: '/x' } }).statsRoute, { path: '/x', onRequest: [], ...plainRoute })
  t.strictSame(resolveOptions({ statsRoute: { onRequest: [hook, hook] } }).statsRoute, { path: '/cache/stats', onRequest: [hook, hook], ...plainRoute })
})

t.test('route options: defaults from the plugin, values passed through, vary and perRequestHeaders lower-cased once each', async (t) => {
  const defaults = resolveOptions({ ttl: 9, staleWhileRevalidate: 2, eagerRefresh: 0.8, staleIfError: 3, ttlJitter: 0.25, perRequestHeaders: ['X-Request-Id', 'x-request-id'] })
  t.equal(resolveRouteOptions(undefined, defaults, 'GET /r'), undefined)
  t.equal(resolveRouteOptions(false, defaults, 'GET /r'), undefined)
  const plain = resolveRouteOptions(true, defaults, 'GET /r')
  t.strictSame(plain, {
    ttl: 9,
    heuristicMaxTtl: undefined,
    keepForRevalidation: 0,
    staleWhileRevalidate: 2,
    eagerRefresh: 0.8,
    staleIfError: 3,
    ttlJitter: 0.25,
    vary: [],
    tags: undefined,
    key: undefined,
    invalidate: undefined,
    statusCodes: new Set([200]),
    ignoreCookies: false,
    compress: defaults.compress,
    perRequestHeaders: ['x-request-id'],
    cacheStatus: 'fastify-response-cache',
    xCache: true,
    surrogateKeys: undefined
  })
  t.strictSame(resolveRouteOptions({}, defaults, 'GET /r'), plain)
  t.equal(resolveRouteOptions({ eagerRefresh: 0.5 }, defaults, 'GET /r')?.eagerRefresh, 0.5, "a route's own eagerRefresh over the plugin's")
  t.equal(resolveOptions({ eagerRefresh: false }).eagerRefresh, undefined, 'eagerRefresh: false is off')
  const tags = (): string[] => ['t']
  const key = (): string => 'k'
  const given = resolveRouteOptions({
    ttl: 1, staleWhileRevalidate: 0, eagerRefresh: false, staleIfError: 0, ttlJitter: 0, vary: ['Accept-Language', 'accept-language', 'X-A'], tags, key, invalidate: ['i'], statusCodes: [200, 404], ignoreCookies: true, perRequestHeaders: ['Server-Timing', 'X-REQUEST-ID']
  }, defaults, 'GET /r')
  t.strictSame(given, {
    ttl: 1,
    heuristicMaxTtl: undefined,
    keepForRevalidation: 0,
    staleWhileRevalidate: 0,
    eagerRefresh: undefined,
    staleIfError: 0,
    ttlJitter: 0,
    vary: ['accept-language', 'x-a'],
    tags,
    key,
    invalidate: ['i'],
    statusCodes: new Set([200, 404]),
    ignoreCookies: true,
    compress: defaults.compress,
    perRequestHeaders: ['x-request-id', 'server-timing'],
    cacheStatus: 'fastify-response-cache',
    xCache: true,
    surrogateKeys: undefined
  })
})

t.test('route options: each bound, and the message names the route and the field', async (t) => {
  const defaults = resolveOptions({})
  const invalidRoute = (config: unknown, message: string): void => {
    t.throws(() => resolveRouteOptions(config, defaults, 'GET /r'), {
      code: 'FST_RESPONSE_CACHE_INVALID_ROUTE_CONFIG',
      message: `fastify-response-cache: invalid config.cache on route "GET /r": ${message}`
    }, message)
  }
  for (const config of [{ statusCodes: [200, 499] }, { vary: [] }, { vary: Array(32).fill('x-a') }, { tags: [] }, { tags: ['x'.repeat(256)] }, { tags: ['é'.repeat(128)] }, { tags: Array.from({ length: 64 }, (_, i) => `t${i}`) }, { tags: Array(100).fill('t') }, { invalidate: () => [] }]) {
    t.doesNotThrow(() => resolveRouteOptions(config, defaults, 'GET /r'), JSON.stringify(config).slice(0, 60))
  }
  invalidRoute([], '"cache" expected true, false or an object, got an array')
  invalidRoute(null, '"cache" expected true, false or an object, got null')
  invalidRoute(1, '"cache" expected true, false or an object, got 1')
  invalidRoute({ statusCodes: [199] }, '"statusCodes" expected a non-empty array of statuses from 200 to 499 (5xx is never stored), got an array')
  invalidRoute({ statusCodes: [500] }, '"statusCodes" expected a non-empty array of statuses from 200 to 499 (5xx is never stored), got an array')
  invalidRoute({ statusCodes: [200.5] }, '"statusCodes" expected a non-empty array of statuses from 200 to 499 (5xx is never stored), got an array')
  invalidRoute({ vary: Array(33).fill('x-a') }, '"vary" expected an array of request header names, got an array')
  invalidRoute({ vary: ['x:a'] }, '"vary" expected an array of request header names, got an array')
  invalidRoute({ tags: ['x'.repeat(257)] }, '"tags" expected tags of at most 256 bytes (UTF-8) each')
  invalidRoute({ tags: ['é'.repeat(129)] }, '"tags" expected tags of at most 256 bytes (UTF-8) each')
  invalidRoute({ tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }, '"tags" expected at most 64 tags')
  invalidRoute({ tags: Array(1001).fill('t') }, '"tags" expected an array of non-empty strings or a function of the request, got an array')
  invalidRoute({ invalidate: ['x'.repeat(257)] }, '"invalidate" expected tags of at most 256 bytes (UTF-8) each')
  invalidRoute({ invalidate: [''] }, '"invalidate" expected an array of non-empty strings or a function of the request, got an array')
  invalidRoute({ key: 'k' }, '"key" expected a function of the request, got "k"')
  invalidRoute({ staleWhileRevalidate: -1 }, '"staleWhileRevalidate" expected staleWhileRevalidate: a number of seconds, 0 or more, got -1')
  invalidRoute({ ttl: null }, '"ttl" expected a number of seconds greater than 0, or \'origin\', got null')
  invalidRoute({ perRequestHeaders: ['Vary'] }, '"perRequestHeaders" may not list "vary": it describes the stored response (etag, last-modified, vary, date, age, x-cache, cache-status, cache-control, cdn-cache-control, expires, content-type, content-encoding, content-length, content-range are stored with it)')
})

t.test('keepForRevalidation: 600 by default for routes in origin mode, a route may set its own; 0 in the default mode', async (t) => {
  const defaults = resolveOptions({ ttl: 'origin' })
  t.equal(defaults.keepForRevalidation, 600)
  t.equal(resolveRouteOptions(true, defaults, 'GET /r')?.keepForRevalidation, 600)
  t.equal(resolveRouteOptions({ keepForRevalidation: 30 }, defaults, 'GET /r')?.keepForRevalidation, 30)
  t.equal(resolveRouteOptions({ ttl: 10 }, defaults, 'GET /r')?.keepForRevalidation, 0, 'a route of its own seconds keeps nothing to revalidate')
  t.equal(resolveRouteOptions(true, resolveOptions({ keepForRevalidation: 5 }), 'GET /r')?.keepForRevalidation, 0)
})

t.test('surrogateKeys: off by default; true, { keep } plugin-wide; a route overrides it either way', async (t) => {
  t.equal(resolveOptions({}).surrogateKeys, undefined)
  t.strictSame(resolveOptions({ surrogateKeys: true }).surrogateKeys, { keep: false })
  t.strictSame(resolveOptions({ surrogateKeys: {} }).surrogateKeys, { keep: false })
  t.strictSame(resolveOptions({ surrogateKeys: { keep: true } }).surrogateKeys, { keep: true })
  const on = resolveOptions({ surrogateKeys: true })
  t.strictSame(resolveRouteOptions(true, on, 'GET /r')?.surrogateKeys, { keep: false }, 'the plugin\'s')
  t.equal(resolveRouteOptions({ surrogateKeys: false }, on, 'GET /r')?.surrogateKeys, undefined)
  t.strictSame(resolveRouteOptions({ surrogateKeys: { keep: true } }, resolveOptions({}), 'GET /r')?.surrogateKeys, { keep: true })
  t.throws(() => resolveOptions({ surrogateKeys: 'yes' }), { message: /"surrogateKeys": expected a boolean or an object \{ keep: boolean \}, got "yes"/ })
  t.strictSame(resolveOptions({ purgeRoute: { public: true } }).purgeRoute, { path: '/cache/purge', onRequest: [], purgeMethod: false })
})

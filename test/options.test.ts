import Fastify from 'fastify'
import t from 'tap'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MEMORY_MAX_BYTES, resolveOptions } from '../lib/options.js'

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

t.test('statsRoute forms', async (t) => {
  t.same(resolveOptions({ statsRoute: true }).statsRoute, { path: '/cache/stats', onRequest: [] })
  const hook = (): void => {}
  t.same(resolveOptions({ statsRoute: { onRequest: hook } }).statsRoute, { path: '/cache/stats', onRequest: [hook] })
  t.same(resolveOptions({ statsRoute: { path: '/s', onRequest: [hook] } }).statsRoute, { path: '/s', onRequest: [hook] })
})

const bad: Array<[string, unknown, RegExp]> = [
  ['ttl', { ttl: 0 }, /"ttl": expected a number of seconds greater than 0, got 0/],
  ['ttl', { ttl: '60' }, /"ttl".*got "60"/],
  ['staleWhileRevalidate', { staleWhileRevalidate: -1 }, /"staleWhileRevalidate"/],
  ['staleIfError', { staleIfError: Number.NaN }, /"staleIfError"/],
  ['namespace', { namespace: 'a:b' }, /"namespace": expected a string of 1 to 64/],
  ['namespace', { namespace: '' }, /"namespace"/],
  ['namespace', { namespace: 'x'.repeat(65) }, /"namespace".*…/],
  ['store', { store: 'tiered' }, /"store": expected 'memory', 'redis' or a store object/],
  ['tenant', { tenant: 'x-tenant-id' }, /"tenant": expected a function/],
  ['maxEntryBytes', { maxEntryBytes: 1.5 }, /"maxEntryBytes": expected a whole number/],
  ['memory', { memory: 5 }, /"memory": expected an object/],
  ['memory.maxBytes', { memory: { maxBytes: 10 } }, /"memory.maxBytes": expected a whole number of bytes, 1024 or more, got 10/],
  ['memory.size', { memory: { size: 10 } }, /"memory.size": is not a known option/],
  ['timeout', { timeout: 0 }, /"timeout": expected milliseconds/],
  ['statsRoute', { statsRoute: 'yes' }, /"statsRoute"/],
  ['statsRoute.path', { statsRoute: { path: 'stats' } }, /"statsRoute.path": expected a path starting with "\/"/],
  ['statsRoute.onRequest', { statsRoute: { onRequest: [1] } }, /"statsRoute.onRequest"/],
  ['redis', { redis: 'redis://:secret@localhost' }, /"redis": expected an ioredis/],
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

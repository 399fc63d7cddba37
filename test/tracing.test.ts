// Tracing channels (issue 28 point 2): a subscriber as docs/API.md "Tracing" shows turns them into
// OpenTelemetry spans, which land under the request's span of @fastify/otel (registered as its README
// shows), with the route, the result, the store and the bytes, and nothing of a key, a tenant or a body.
import { AsyncLocalStorage } from 'node:async_hooks'
import diagnostics from 'node:diagnostics_channel'
import { context, ROOT_CONTEXT, trace, type Context, type ContextManager, type Span } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { request as send } from 'undici'
import responseCache, { type ResponseCacheOptions } from '../lib/index.js'
import { traceStart, type CacheTraceContext } from '../lib/observability/tracing.js'
import { eventually } from './helpers/events.js'
import { startRedis } from './helpers/redis.js'

/** The AsyncLocalStorage context manager of @opentelemetry/context-async-hooks, in a few lines. */
class StorageContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>()
  active (): Context { return this.#storage.getStore() ?? ROOT_CONTEXT }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.apply(thisArg, args))
  }

  bind<T>(_ctx: Context, target: T): T { return target }
  enable (): this { return this }
  disable (): this { this.#storage.disable(); return this }
}

context.setGlobalContextManager(new StorageContextManager())
const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
trace.setGlobalTracerProvider(provider)

// The subscriber of docs/API.md "Tracing".
const tracer = trace.getTracer('fastify-response-cache')
const spans = new WeakMap<object, Span>()
const finish = (message: unknown): void => {
  const ctx = message as CacheTraceContext
  const span = spans.get(ctx)
  if (span === undefined) return
  spans.delete(ctx)
  span.setAttributes({
    'cache.operation': ctx.operation,
    'cache.store': ctx.store,
    ...(ctx.route === undefined ? {} : { 'cache.route': ctx.route }),
    ...(ctx.result === undefined ? {} : { 'cache.result': ctx.result }),
    ...(ctx.reason === undefined ? {} : { 'cache.reason': ctx.reason }),
    ...(ctx.bytes === undefined ? {} : { 'cache.bytes': ctx.bytes }),
    ...(ctx.tags === undefined ? {} : { 'cache.tags': ctx.tags })
  })
  span.end()
}
const subscribers = ['lookup', 'store', 'invalidate', 'wrap'].map((name) => {
  const channel = diagnostics.tracingChannel(`fastify-response-cache:${name}`)
  const handlers = {
    start: (message: unknown) => { spans.set(message as object, tracer.startSpan(`cache ${name}`)) },
    end: (message: unknown) => { if ((message as CacheTraceContext).result !== undefined) finish(message) },
    asyncStart: () => {},
    asyncEnd: finish,
    error: () => {}
  }
  channel.subscribe(handlers)
  return () => { channel.unsubscribe(handlers) }
})
t.teardown(() => { for (const unsubscribe of subscribers) unsubscribe() })

const redisServer = await startRedis(t)
const redis = new Redis(`redis://${await redisServer.getHost()}:${await redisServer.getPort()}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
t.teardown(() => { redis.disconnect() })

const SECRET_ID = 'user-7f3a9c'
const SECRET_TENANT = 'tenant-acme-9921'
const SECRET_BODY = 'body-value-5521'

for (const [kind, options] of [['memory', {}], ['redis', { store: 'redis', redis, namespace: 'trace' }]] as Array<[string, ResponseCacheOptions]>) {
  t.test(`${kind}: cache spans under the request's span, with their attributes, and no key, tenant or value`, async (t) => {
    exporter.reset()
    const instrumentation = new FastifyOtelInstrumentation()
    instrumentation.setTracerProvider(provider)
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(instrumentation.plugin())
    await app.register(responseCache, { ...options, tenant: (request) => request.headers['x-tenant'] as string | undefined })
    app.get('/items/:id', { config: { cache: true } }, async (request) => ({ id: (request.params as { id: string }).id, value: SECRET_BODY }))
    app.get('/cookie', { config: { cache: true } }, async (_request, reply) => {
      reply.header('set-cookie', 'a=1')
      return 'x'
    })
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    const get = async (path: string, headers: Record<string, string> = {}): Promise<string | undefined> => {
      const response = await send(address + path, { headers: { 'x-tenant': SECRET_TENANT, ...headers } })
      await response.body.text()
      return response.headers['x-cache'] as string | undefined
    }
    const SECRET_KEY = 'value-key-3318'
    const SECRET_TAG = 'tag-8812'
    await app.cache.wrap(SECRET_KEY, () => SECRET_BODY, { tags: [SECRET_TAG] })
    await Promise.all([app.cache.wrap(`${SECRET_KEY}-2`, async () => SECRET_BODY), app.cache.wrap(`${SECRET_KEY}-2`, async () => SECRET_BODY)])
    await app.cache.wrap(SECRET_KEY, () => SECRET_BODY)
    await app.cache.invalidate({ tags: [SECRET_TAG] })
    t.equal(await get(`/items/${SECRET_ID}`), 'MISS')
    t.ok(await eventually(async () => await get(`/items/${SECRET_ID}`) === 'HIT'))
    await get('/cookie')
    await get(`/items/${SECRET_ID}`, { authorization: 'Bearer x' })

    t.ok(await eventually(() => exporter.getFinishedSpans().filter((span) => span.name === 'cache store').length >= 2), 'the store spans end')
    const finished = exporter.getFinishedSpans()
    const requests = new Map(finished.filter((span) => span.name === 'request').map((span) => [span.spanContext().spanId, span]))
    const cache = finished.filter((span) => span.name.startsWith('cache '))
    for (const span of cache) {
      // app.cache is called outside any request here.
      if (span.name === 'cache lookup' || span.name === 'cache store') t.ok(requests.has(span.parentSpanContext?.spanId ?? ''), `${span.name} (${String(span.attributes['cache.result'])}) is a child of a request span`)
      const values = Object.values(span.attributes).map(String).join(' ')
      t.notOk([SECRET_ID, SECRET_TENANT, SECRET_BODY, SECRET_KEY, SECRET_TAG].some((secret) => values.includes(secret)), `${span.name}: no key part, tenant or body in ${values}`)
    }
    const seen = cache.map((span) => [span.name, span.attributes['cache.result'], span.attributes['cache.reason'] ?? null, span.attributes['cache.route'] ?? null])
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache lookup', 'miss', null, 'GET /items/:id'])), JSON.stringify(['cache lookup', 'miss', null, 'GET /items/:id']))
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache store', 'stored', null, 'GET /items/:id'])), JSON.stringify(['cache store', 'stored', null, 'GET /items/:id']))
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache lookup', 'hit', null, 'GET /items/:id'])), JSON.stringify(['cache lookup', 'hit', null, 'GET /items/:id']))
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache store', 'not-stored', 'set-cookie', 'GET /cookie'])), JSON.stringify(['cache store', 'not-stored', 'set-cookie', 'GET /cookie']))
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache lookup', 'bypass', 'authorization', 'GET /items/:id'])), JSON.stringify(['cache lookup', 'bypass', 'authorization', 'GET /items/:id']))
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache wrap', 'miss', null, null])), 'wrap miss')
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache wrap', 'collapsed', null, null])), 'wrap collapsed')
    t.ok(seen.some((one) => JSON.stringify(one) === JSON.stringify(['cache wrap', 'hit', null, null])), 'wrap hit')
    const invalidation = cache.find((span) => span.name === 'cache invalidate')
    t.same([invalidation?.attributes['cache.result'], invalidation?.attributes['cache.tags'], invalidation?.attributes['cache.store']], ['done', 1, kind])
    const hit = cache.find((span) => span.name === 'cache lookup' && span.attributes['cache.result'] === 'hit')
    t.equal(hit?.attributes['cache.store'], kind)
    t.ok(Number(hit?.attributes['cache.bytes']) > 0, 'a hit carries its bytes')
    const stored = cache.find((span) => span.attributes['cache.result'] === 'stored')
    t.ok(Number(stored?.attributes['cache.bytes']) > 0, 'a store carries its bytes')
  })
}

t.test('nothing is built without a subscriber', async (t) => {
  for (const unsubscribe of subscribers) unsubscribe()
  exporter.reset()
  t.equal(traceStart('lookup', 'memory', 'GET /r'), undefined, 'no context is made')
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(responseCache)
  app.get('/r', { config: { cache: true } }, async () => 'r')
  await app.inject('/r')
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  t.equal(exporter.getFinishedSpans().length, 0)
})

import Fastify from 'fastify'
import { Registry } from 'prom-client'
import t from 'tap'
import responseCache from '../lib/index.js'
import { cachedApp } from './helpers/app.js'

/** The value of one sample line, or undefined when the line is missing. */
function sample (text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(line + ' '))
  return found === undefined ? undefined : Number(found.slice(line.length + 1))
}

t.test('the stats route answers Prometheus text when asked for text/plain', async (t) => {
  const app = await cachedApp(t, {
    statsRoute: true,
    tenant: (request) => request.headers['x-tenant'] as string | undefined
  })
  app.get('/items/:id', { config: { cache: true } }, async () => 'item')
  await app.inject({ url: '/items/secret-item', headers: { 'x-tenant': 'tenant-acme' } })
  await app.inject({ url: '/items/secret-item', headers: { 'x-tenant': 'tenant-acme' } })
  await app.inject({ url: '/items/2', headers: { authorization: 'Bearer token-xyz' } })
  await app.cache.wrap('drug:aspirin', async () => 'analysis')

  const r = await app.inject({ url: '/cache/stats', headers: { accept: 'text/plain' } })
  t.equal(r.statusCode, 200)
  t.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text = r.body
  t.equal(sample(text, 'response_cache_requests_total{namespace="rc",route="GET /items/:id",result="hit"}'), 1)
  t.equal(sample(text, 'response_cache_requests_total{namespace="rc",route="GET /items/:id",result="miss"}'), 1)
  t.equal(sample(text, 'response_cache_requests_total{namespace="rc",route="GET /items/:id",result="bypass"}'), 1)
  t.equal(sample(text, 'response_cache_requests_total{namespace="rc",route="app.cache",result="miss"}'), 1)
  t.equal(sample(text, 'response_cache_stores_total{namespace="rc",route="GET /items/:id"}'), 1)
  t.equal(sample(text, 'response_cache_errors_total{namespace="rc",route="GET /items/:id"}'), 0)
  t.equal(sample(text, 'response_cache_entries{namespace="rc",store="memory"}'), 2)
  t.ok((sample(text, 'response_cache_bytes{namespace="rc",store="memory"}') ?? 0) > 0)
  t.equal(sample(text, 'response_cache_evictions_total{namespace="rc",store="memory"}'), 0)
  t.equal(sample(text, 'response_cache_store_up{namespace="rc",store="memory"}'), 1)
  t.match(text, /# TYPE response_cache_requests_total counter/)
  t.notMatch(text, /tenant-acme|secret-item|token-xyz|drug|aspirin|rc:/, 'no keys, values, tenant ids or credentials')

  const scraper = await app.inject({ url: '/cache/stats', headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' } })
  t.match(scraper.headers['content-type'], /^text\/plain/, 'what Prometheus itself sends')
  const json = await app.inject({ url: '/cache/stats', headers: { accept: 'application/json' } })
  t.equal(json.json().values.misses, 1, 'JSON otherwise, with the value counters')
})

t.test('response_cache_evictions_total counts the entries the memory bound pushed out', async (t) => {
  const app = await cachedApp(t, { statsRoute: true, memory: { maxBytes: 8192 } })
  app.get('/big/:id', { config: { cache: true } }, async () => 'x'.repeat(2000))
  for (let i = 0; i < 10; i++) await app.inject(`/big/${i}`)
  const text = (await app.inject({ url: '/cache/stats', headers: { accept: 'text/plain' } })).body
  const entries = sample(text, 'response_cache_entries{namespace="rc",store="memory"}') ?? 0
  t.ok(entries > 0 && entries < 10, `${entries} entries fit`)
  t.equal(sample(text, 'response_cache_evictions_total{namespace="rc",store="memory"}'), 10 - entries)
})

t.test('an app registry gets the counters too, one set for any number of plugin instances', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(async (scope) => {
    await scope.register(responseCache, { namespace: 'pages', registry })
    scope.get('/pages', { config: { cache: true } }, async () => 'pages')
  })
  await app.register(async (scope) => {
    await scope.register(responseCache, { namespace: 'api', registry })
    scope.get('/api', { config: { cache: true } }, async () => 'api')
  })
  await app.inject('/pages')
  await app.inject('/pages')
  await app.inject('/api')
  const text = await registry.metrics()
  t.equal(sample(text, 'response_cache_requests_total{namespace="pages",route="GET /pages",result="hit"}'), 1)
  t.equal(sample(text, 'response_cache_requests_total{namespace="api",route="GET /api",result="miss"}'), 1)
  t.equal(text.match(/# TYPE response_cache_requests_total/g)?.length, 1)
  await app.close()
  t.notMatch(await registry.metrics(), /namespace="pages"/, 'a closed instance leaves the registry')
})

t.test('a registry that is not a prom-client Registry fails ready() naming the option', async (t) => {
  const app = Fastify()
  app.register(responseCache, { registry: {} as Registry })
  await t.rejects(async () => await app.ready(), {
    code: 'FST_RESPONSE_CACHE_INVALID_OPTION',
    message: /"registry": expected a prom-client Registry/
  })
})

t.test('response_cache_store_ping_seconds: the latency of the ping store_up takes, one ping per scrape; absent while the store does not answer', async (t) => {
  let pings = 0
  let down = false
  const store = {
    name: 'pinged',
    get: async () => undefined,
    set: async () => {},
    delete: async () => true,
    invalidateTags: async () => 0,
    clear: async () => {},
    ping: async () => {
      pings++
      if (down) throw new Error('gone')
    }
  }
  const app = await cachedApp(t, { store, statsRoute: true })
  const scrape = async (): Promise<string> => (await app.inject({ url: '/cache/stats', headers: { accept: 'text/plain' } })).body
  let text = await scrape()
  t.equal(pings, 1, 'store_up and the latency share one ping')
  t.equal(sample(text, 'response_cache_store_up{namespace="rc",store="pinged"}'), 1)
  const seconds = sample(text, 'response_cache_store_ping_seconds{namespace="rc",store="pinged"}')
  t.ok(seconds !== undefined && seconds >= 0 && seconds < 5, `${String(seconds)} s`)
  t.match(text, /# TYPE response_cache_store_ping_seconds gauge/)
  down = true
  text = await scrape()
  t.equal(pings, 2)
  t.equal(sample(text, 'response_cache_store_up{namespace="rc",store="pinged"}'), 0)
  t.notMatch(text, /response_cache_store_ping_seconds\{/, 'no latency without an answer')
})

t.test('docs/grafana-dashboard.json queries only metrics the plugin registers', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const dashboard = JSON.parse(await readFile(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
    panels: Array<{ title: string, targets?: Array<{ expr: string }> }>
  }
  const exprs = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })))
  t.ok(exprs.length >= 5, `${exprs.length} queries`)

  const app = await cachedApp(t, { statsRoute: true })
  app.get('/items/:id', { config: { cache: true } }, async () => 'item')
  await app.inject('/items/1')
  await app.inject('/items/1')
  await app.inject({ url: '/items/2', headers: { authorization: 'x' } })
  const text = (await app.inject({ url: '/cache/stats', headers: { accept: 'text/plain' } })).body
  // Metric names as the plugin's text declares them (a histogram's would add _bucket, _sum, _count).
  const declared = new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((match) => match[1]))
  const labels = new Set([...text.matchAll(/[{,](\w+)="/g)].map((match) => match[1]))
  for (const { panel, expr } of exprs) {
    // A metric is a name not followed by "(" (a function) and not inside {...} or by/without (...).
    const stripped = expr.replace(/\{[^}]*\}/g, '').replace(/\b(by|without)\s*\([^)]*\)/g, '').replace(/\[[^\]]*\]/g, '')
    const names = [...stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
      .filter((match) => !/^\s*\(/.test(stripped.slice((match.index ?? 0) + match[0].length)))
      .map((match) => match[0])
      .filter((name) => !['or', 'and', 'unless', 'on', 'ignoring', 'bool'].includes(name))
    const metrics = names.filter((name) => name.startsWith('response_cache_'))
    t.ok(metrics.length > 0, `${panel}: queries a metric of the plugin`)
    t.same(names.filter((name) => !name.startsWith('response_cache_') && !/^\d/.test(name)), [], `${panel}: no other name in ${expr}`)
    for (const name of metrics) t.ok(declared.has(name), `${panel}: ${name} is registered`)
    for (const [, name] of expr.matchAll(/(\w+)\s*(?:=~|!~|!=|=)\s*"/g)) t.ok(labels.has(name), `${panel}: label ${name} exists`)
    for (const group of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
      for (const name of group[1].split(',').map((label) => label.trim())) t.ok(labels.has(name), `${panel}: label ${name} exists`)
    }
  }
})

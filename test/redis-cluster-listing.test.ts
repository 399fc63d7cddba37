import t from 'tap'
import { Cluster, type Redis } from 'ioredis'
import type { EntryPage, ListedEntry, ResponseCacheOptions } from '../lib/index.js'
import { cachedApp } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { writesSent } from './helpers/redis.js'

const cluster = await startCluster(t)
const masters = cluster.nodes('master') as Redis[]
const prefixed = new Cluster(masters.map((node) => ({ host: node.options.host, port: node.options.port })), { keyPrefix: 'app:', redisOptions: { maxRetriesPerRequest: 1 } })
t.teardown(() => { prefixed.disconnect() })
await new Promise((resolve) => prefixed.once('ready', resolve))

for (const [kind, options] of [
  ['Cluster', { store: 'redis', redis: cluster, namespace: 'cl' }],
  ['Cluster with keyPrefix', { store: 'redis', redis: prefixed, namespace: 'cp' }],
  ['tiered on a Cluster', { store: 'tiered', redis: cluster, namespace: 'ct' }]
] as Array<[string, ResponseCacheOptions]>) {
  t.test(`${kind}: entries spread over every master are listed in pages, each once; version-stale ones are not`, async (t) => {
    const app = await cachedApp(t, { ...options, timeout: 2000 })
    app.get('/items/:id', { config: { cache: { tags: ['items'] } } }, async (request) => request.params)
    for (let i = 0; i < 40; i++) await app.inject(`/items/${i}`)
    await writesSent()
    const seen: ListedEntry[] = []
    let pages = 0
    let cursor: string | undefined
    do {
      const page = await app.cache.list({ route: 'GET /items/:id', limit: 7, cursor }) as EntryPage
      t.ok(page.entries.length <= 7)
      seen.push(...page.entries)
      cursor = page.cursor
      pages++
    } while (cursor !== undefined)
    t.equal(pages, 6)
    t.same(seen.map((entry) => entry.path).sort(), Array.from({ length: 40 }, (_, i) => `GET /items/${i}`).sort())
    t.ok(seen.every((entry) => entry.route === 'GET /items/:id' && entry.size > 0 && entry.tags[0] === 'items'))

    // What eviction under maxmemory can do: the route's versions go while entries and sets stay.
    let dropped = 0
    for (const node of masters) {
      for (const key of await node.keys(`*${options.namespace as string}:*:ver:g%3Ar%3AGET*`)) dropped += await node.del(key)
    }
    t.ok(dropped > 1, `${dropped} versions dropped`)
    t.same((await app.cache.list({ tag: 'items' }) as EntryPage).entries, [], 'entries written under a version that is gone are not listed')
  })

  t.test(`${kind}: a cursor goes on on another instance, ends another listing, and throws once edited`, async (t) => {
    const namespace = `${options.namespace as string}-cursors`
    // Another instance: its own Cluster client, as another process would make it.
    const keyPrefix = (options.redis as Cluster).options.keyPrefix
    const other = new Cluster(masters.map((node) => ({ host: node.options.host, port: node.options.port })), keyPrefix === undefined ? {} : { keyPrefix })
    t.teardown(() => { other.disconnect() })
    const a = await cachedApp(t, { ...options, namespace, timeout: 2000 })
    const b = await cachedApp(t, { ...options, redis: other, namespace, timeout: 2000 })
    for (const app of [a, b]) app.get('/items/:id', { config: { cache: { tags: ['items'] } } }, async (request) => request.params)
    await b.ready()
    for (let i = 0; i < 20; i++) await a.inject(`/items/${i}`)
    await writesSent()
    const first = await a.cache.list({ route: 'GET /items/:id', limit: 7 }) as EntryPage
    t.same(await b.cache.list({ tag: 'items', cursor: first.cursor }), { entries: [], cursor: undefined, source: a.cache.stats().store.name }, 'another listing\'s cursor')
    const [, ...rest] = (first.cursor as string).split('.')
    const edited = [Buffer.from(JSON.stringify([-1, 0, '0', ''])).toString('base64url'), ...rest].join('.')
    await t.rejects(b.cache.list({ route: 'GET /items/:id', cursor: edited }), { code: 'FST_RESPONSE_CACHE_INVALID_ARGUMENT' })
    const seen = [...first.entries]
    let cursor = first.cursor
    for (let page = 1; cursor !== undefined; page++) {
      const next = await (page % 2 === 1 ? b : a).cache.list({ route: 'GET /items/:id', limit: 7, cursor }) as EntryPage
      seen.push(...next.entries)
      cursor = next.cursor
    }
    t.same(seen.map((entry) => entry.path).sort(), Array.from({ length: 20 }, (_, i) => `GET /items/${i}`).sort(), 'each entry once, paged through both instances')
  })
}

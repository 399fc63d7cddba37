import Fastify from 'fastify'
import { Cluster } from 'ioredis'
import { setImmediate } from 'node:timers/promises'
import t from 'tap'
import { decodeEntry } from '../lib/entry.js'
import responseCache from '../lib/index.js'
import { SHARD_SLOTS } from '../lib/stores/redis.js'
import { entryBytes } from '../lib/stores/versions.js'
import { clusterOk, startClusterNodes } from './helpers/cluster.js'
import { eventually } from './helpers/events.js'

// A six-node Cluster (three masters, a replica each) as an operator runs one, and the client as the
// README shows it: `new Cluster(nodes)`. One master is killed under load; its replica takes over.
// `cluster-require-full-coverage no` keeps the live masters answering while the dead one's slots
// are uncovered (with Redis's default, every node refuses every key for that second or so).

t.test('a dead Cluster master pauses only its own keys, and they hit again once its replica has taken over', async (t) => {
  const { ports, nodes } = await startClusterNodes(t, { replicas: 1, nodeTimeout: 2000, args: ['--cluster-require-full-coverage', 'no'] })
  const cluster = new Cluster(ports.slice(0, 3).map((port) => ({ host: '127.0.0.1', port })))
  cluster.on('error', () => {})
  t.teardown(() => { cluster.disconnect() })
  const app = Fastify()
  t.teardown(() => app.close())
  // 500 ms rather than 100: run beside the other Cluster test on a loaded machine, a live master's
  // answer took over 100 ms, which made a live key BYPASS; a dead master's keys fail fast either way.
  await app.register(responseCache, { store: 'redis', redis: cluster, namespace: 'failover', timeout: 500 })
  app.get('/patients/:id', { config: { cache: { ttl: 600 } } }, async (request) => ({ id: (request.params as { id: string }).id }))
  await app.ready()

  const ids = Array.from({ length: 48 }, (_, i) => String(i))
  for (const id of ids) t.equal((await app.inject(`/patients/${id}`)).headers['x-cache'], 'MISS')
  for (const id of ids) t.equal((await app.inject(`/patients/${id}`)).headers['x-cache'], 'HIT')

  // Which master holds each id's entry, read from the entries themselves.
  const masterOf = new Map<string, number>()
  for (const node of cluster.nodes('master')) {
    for (const key of await node.keys('failover:*')) {
      if (await node.type(key) !== 'string' || /:(lock|ver):|:gen$/.test(key)) continue
      const { body } = decodeEntry(entryBytes(await node.getBuffer(key) as Buffer))
      masterOf.set((JSON.parse(body.toString()) as { id: string }).id, node.options.port as number)
    }
  }
  t.equal(masterOf.size, ids.length)
  const victim = cluster.nodes('master')[0].options.port as number
  const onVictim = new Set(ids.filter((id) => masterOf.get(id) === victim))
  t.ok(onVictim.size > 0 && onVictim.size < ids.length, `${onVictim.size} of ${ids.length} keys on the master to kill`)

  // Lookups the plugin sends to the client, counted on their way through (each still reaches Redis).
  const client = cluster as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  const lookup = client.responseCacheGetOrLockBuffer.bind(cluster)
  let lookups = 0
  client.responseCacheGetOrLockBuffer = async (...args: unknown[]) => { lookups++; return await lookup(...args) }

  const answers: Array<{ id: string, status: number, cache: unknown, body: string, afterFailover: boolean }> = []
  const load = { running: true, failedOver: false }
  const workers = Promise.all(Array.from({ length: 8 }, async (_, worker) => {
    for (let i = worker; load.running; i += 8) {
      const id = ids[i % ids.length]
      const r = await app.inject(`/patients/${id}`)
      answers.push({ id, status: r.statusCode, cache: r.headers['x-cache'], body: r.body, afterFailover: load.failedOver })
      await setImmediate()
    }
  }))

  await (nodes.get(victim) as { kill: () => Promise<void> }).kill()
  // The failover is over when the client's slot map names a new master for the dead one's slots.
  const victimSlots = SHARD_SLOTS.filter((slot) => cluster.slots[slot]?.[0] === `127.0.0.1:${victim}`)
  t.ok(victimSlots.length > 0)
  await new Promise<void>((resolve) => {
    const refreshed = (): void => {
      if (!victimSlots.every((slot) => cluster.slots[slot]?.[0] !== undefined && cluster.slots[slot][0] !== `127.0.0.1:${victim}`)) return
      cluster.off('refresh', refreshed)
      resolve()
    }
    cluster.on('refresh', refreshed)
  })
  load.failedOver = true
  const failedOver = [...onVictim][0]
  const next = await app.inject(`/patients/${failedOver}`)
  t.not(next.headers['x-cache'], 'BYPASS', 'the failed-over keys are used from the next request, not after the breaker\'s pause')
  t.ok(await eventually(async () => (await app.inject(`/patients/${failedOver}`)).headers['x-cache'] === 'HIT'), 'and hit, from the promoted replica')
  load.running = false
  await workers
  await clusterOk(ports.filter((port) => port !== victim))

  t.ok(answers.length > 100, `${answers.length} answers under load`)
  t.same(answers.filter((a) => a.status !== 200), [], 'no request failed')
  t.same(answers.filter((a) => JSON.parse(a.body).id !== a.id), [], 'no wrong body')
  const live = answers.filter((a) => !onVictim.has(a.id))
  t.same(live.filter((a) => a.cache !== 'HIT').map((a) => `${a.id} ${String(a.cache)}`), [], 'keys on the live masters answered HIT throughout')
  const paused = answers.filter((a) => onVictim.has(a.id) && !a.afterFailover && a.cache === 'BYPASS').length
  t.ok(paused > 0, 'the dead master\'s keys went to the handler meanwhile')
  // Its shards' breakers stop asking after a few failures: most of those requests never reach the client.
  const hits = answers.filter((a) => a.cache === 'HIT').length
  t.ok(lookups - hits < paused / 4, `${lookups} lookups sent for ${hits} hits and ${paused} requests answered without the cache`)
})

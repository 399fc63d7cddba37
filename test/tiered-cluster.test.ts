import type { FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { counter } from './helpers/app.js'
import { clusterOk, startClusterNodes } from './helpers/cluster.js'
import { eventually } from './helpers/events.js'
import { patientsApp } from './helpers/tiered.js'

// Three tiered instances on a three-master Cluster, each with its own client as the README shows it
// (`new Cluster(nodes)`). The bus is a shard channel (SPUBLISH/SSUBSCRIBE): it lives on one master.

type Tap = import('tap').Test

function clusterClient (t: Tap, ports: number[]): Cluster {
  const cluster = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })))
  cluster.on('error', () => {})
  t.teardown(() => { cluster.disconnect() })
  return cluster
}

const run = async (app: FastifyInstance, id: string): Promise<number> => (await app.inject(`/patients/${id}`)).json().run

/** How many instances are subscribed to the namespace's bus, asked of the master that holds its channel now. */
async function subscribers (ports: number[], namespace: string): Promise<{ master: number, count: number }> {
  const nodes = ports.map((port) => {
    const node = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    node.on('error', () => {})
    return node
  })
  try {
    for (const node of nodes) {
      const answer = await node.cluster('SLOTS').catch(() => undefined) as Array<[number, number, [string, number]]> | undefined
      if (answer === undefined) continue
      const slot = await node.cluster('KEYSLOT', `${namespace}:bus`) as number
      const master = answer.find(([from, to]) => from <= slot && slot <= to)?.[2][1] as number
      const owner = nodes[ports.indexOf(master)]
      // A dead master, still named until the failover is agreed.
      if (owner === undefined) return { master, count: 0 }
      return { master, count: ((await owner.call('PUBSUB', 'SHARDNUMSUB', `${namespace}:bus`)) as [string, number])[1] }
    }
    return { master: 0, count: 0 }
  } finally {
    for (const node of nodes) node.disconnect()
  }
}

t.test('on a Cluster: one instance stores, the others hit, and an invalidation on one is seen on all', async (t) => {
  const { ports } = await startClusterNodes(t)
  const runs = counter()
  const clients = [0, 1, 2].map(() => clusterClient(t, ports))
  const [a, b, c] = await Promise.all(clients.map(async (client) => await patientsApp(t, client, 'cl', runs)))
  for (const app of [a, b, c]) await app.ready()
  t.equal((await subscribers(ports, 'cl')).count, 3, 'each instance subscribed to the shard channel')
  const cold = await Promise.all([a, b, c].flatMap((app) => Array.from({ length: 5 }, async () => (await app.inject('/patients/cold')).json())))
  t.same([runs.runs, cold.filter((body) => body.run === 1).length], [1, 15], 'a cold key under concurrent load on all three runs its handler once')
  const ids = Array.from({ length: 16 }, (_, i) => String(i))
  for (const id of ids) t.equal((await a.inject(`/patients/${id}`)).headers['x-cache'], 'MISS')
  await a.close()
  t.ok(await eventually(async () => (await b.inject(`/patients/${ids[15]}`)).headers['x-cache'] === 'HIT'), 'a\'s last write landed')
  for (const app of [b, c]) {
    for (const id of ids) t.same((await app.inject(`/patients/${id}`)).json(), { id, run: Number(id) + 2 }, 'from Redis')
  }
  const before = runs.runs
  t.equal(await b.cache.invalidate({ tags: ['patient:3', 'patient:12'] }), 2)
  t.ok(await eventually(async () => await run(c, '3') > before && await run(c, '12') > before), 'c dropped both copies')
  t.equal(await run(c, '4'), 6, 'and kept the others')
})

t.test('on a Cluster, the master holding the bus channel dies: no wrong body, no 5xx, hits resume, and the bus is back', async (t) => {
  const { ports, nodes } = await startClusterNodes(t, { replicas: 1, nodeTimeout: 2000, args: ['--cluster-require-full-coverage', 'no'] })
  const masters = ports.slice(0, 3)
  const runs = counter()
  const clients = [0, 1, 2, 3].map(() => clusterClient(t, masters))
  const apps = await Promise.all(clients.slice(0, 3).map(async (client) => await patientsApp(t, client, 'fo', runs)))
  // An app on the same entries with the plain Redis store: it changes Redis and tells no one.
  const quiet = await patientsApp(t, clients[3], 'fo', runs, { store: 'redis' })
  for (const app of [...apps, quiet]) await app.ready()
  const [a, b, c] = apps
  const ids = Array.from({ length: 32 }, (_, i) => String(i))
  for (const id of ids) await a.inject(`/patients/${id}`)
  t.ok(await eventually(async () => (await b.inject(`/patients/${ids[31]}`)).headers['x-cache'] === 'HIT'))
  for (const app of [b, c]) for (const id of ids) t.equal(await run(app, id), Number(id) + 1)

  // Dropped in Redis behind the tiered instances' backs (and replicated): their memory copies stay.
  t.equal(await quiet.cache.invalidate({ tags: ['patient:1'] }), 1)
  await Promise.all(clients[3].nodes('master').map(async (node) => await node.call('WAIT', '1', '2000')))
  t.equal(await run(b, '1'), 2, 'b answers its own copy: no instance told it')

  const { master: victim } = await subscribers(ports, 'fo')
  const answers: Array<{ id: string, status: number, body: string }> = []
  const load = { running: true }
  const workers = Promise.all(apps.flatMap((app) => [0, 1].map(async (worker) => {
    for (let i = worker; load.running; i += 2) {
      const id = ids[i % ids.length]
      if (id === '1') continue
      const r = await app.inject(`/patients/${id}`)
      answers.push({ id, status: r.statusCode, body: r.body })
      // Memory hits answer at once: the load leaves the event loop to the clients and the test.
      await sleep(1)
    }
  })))
  await (nodes.get(victim) as { kill: () => Promise<void> }).kill()
  const live = ports.filter((port) => port !== victim)
  t.ok(await eventually(async () => {
    const now = await subscribers(live, 'fo')
    return now.master !== victim && now.count === 3
  }, 20_000), 'a replica took over the channel\'s slot, and every instance subscribed there again')
  t.ok(await eventually(async () => await run(b, '1') !== 2, 20_000), 'b no longer trusts what it held before its subscription was lost')
  const before = runs.runs
  await a.cache.invalidate({ tags: ['patient:5'] })
  for (const app of [b, c]) t.ok(await eventually(async () => await run(app, '5') > before), 'a message after the failover reaches the others')
  t.ok(await eventually(async () => (await c.inject('/patients/7')).headers['x-cache'] === 'HIT'), 'hits resume')
  load.running = false
  await workers
  await clusterOk(live)
  t.ok(answers.length > 100, `${answers.length} answers under load`)
  t.same(answers.filter((r) => r.status !== 200), [], 'no request failed')
  t.same(answers.filter((r) => JSON.parse(r.body).id !== r.id), [], 'no wrong body')
})

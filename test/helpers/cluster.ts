import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster } from 'ioredis'
import { spawnRedis } from './redis.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const run = promisify(execFile)

async function isFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => { resolve(false) })
    probe.listen(port, '127.0.0.1', () => { probe.close(() => { resolve(true) }) })
  })
}

/** A port whose cluster bus port (port + 10000) is free as well. */
async function clusterPort (taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 9000)
    if (!taken.has(port) && await isFree(port) && await isFree(port + 10000)) return port
  }
}

/** The nodes of a cluster started here, by port, each to be killed (SIGKILL) by the test. */
export type ClusterNodes = Map<number, { kill: () => Promise<void> }>

/**
 * Redis Cluster nodes on loopback joined with `redis-cli --cluster create`: three masters, with
 * `replicas` replicas each (a replica takes over within about `nodeTimeout` ms of its master's death)
 * and `args` for every redis-server.
 * Everything is stopped and removed at teardown.
 */
export async function startClusterNodes (t: Teardown, { replicas = 0, nodeTimeout = 15_000, args = [] as string[] } = {}): Promise<{ ports: number[], nodes: ClusterNodes }> {
  const dir = mkdtempSync(join(tmpdir(), 'rc-cluster-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const taken = new Set<number>()
  const ports: number[] = []
  const nodes: ClusterNodes = new Map()
  for (let i = 0; i < 3 * (1 + replicas); i++) {
    const port = await clusterPort(taken)
    taken.add(port)
    ports.push(port)
    const node = await spawnRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir, '--cluster-node-timeout', String(nodeTimeout), ...args])
    nodes.set(port, node)
    t.teardown(async () => { await node.kill() })
  }
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'])
  await clusterOk(ports)
  // A replica takes over only once it replicates: until then a dead master takes the cluster down.
  for (let attempt = 0; attempt < (replicas > 0 ? 400 : 0); attempt++) {
    const roles = await Promise.all(ports.map(async (port) => (await run('redis-cli', ['-p', String(port), 'info', 'replication'])).stdout))
    if (roles.filter((info) => info.includes('master_link_status:up')).length === 3 * replicas) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { ports, nodes }
}

/** Waits until every node says cluster_state:ok (after a create, or a failover). */
export async function clusterOk (ports: number[]): Promise<void> {
  for (const port of ports) {
    for (let attempt = 0; attempt < 200; attempt++) {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info'])
      if (stdout.includes('cluster_state:ok')) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/** Three masters and a connected ioredis Cluster client. */
export async function startCluster (t: Teardown): Promise<Cluster> {
  const { ports } = await startClusterNodes(t)
  const cluster = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), {
    enableOfflineQueue: true,
    redisOptions: { maxRetriesPerRequest: 1 }
  })
  t.teardown(() => { cluster.disconnect() })
  await new Promise((resolve, reject) => { cluster.once('ready', resolve); cluster.once('error', reject) })
  return cluster
}

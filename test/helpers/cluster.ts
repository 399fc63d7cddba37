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

/**
 * Three masters on loopback, joined with `redis-cli --cluster create`, and an ioredis Cluster client.
 * Everything is stopped and removed at teardown.
 */
export async function startCluster (t: Teardown): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'rc-cluster-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const taken = new Set<number>()
  const ports: number[] = []
  for (let i = 0; i < 3; i++) {
    const port = await clusterPort(taken)
    taken.add(port)
    ports.push(port)
    const node = await spawnRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir])
    t.teardown(async () => { await node.kill() })
  }
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'])
  for (let attempt = 0; attempt < 100; attempt++) {
    const { stdout } = await run('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'])
    if (stdout.includes('cluster_state:ok')) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const cluster = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), {
    enableOfflineQueue: true,
    redisOptions: { maxRetriesPerRequest: 1 }
  })
  t.teardown(() => { cluster.disconnect() })
  await new Promise((resolve, reject) => { cluster.once('ready', resolve); cluster.once('error', reject) })
  return cluster
}

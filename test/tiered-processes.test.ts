import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { eventually } from './helpers/events.js'
import { freePort, spawnPausableRedis } from './helpers/redis.js'

// Three instances of one app, each a node process of its own (test/fixtures/tiered-instance.ts), on
// one redis-server, asked over real HTTP: what one process stores, the others hit; what one drops, the
// others drop; a cold key asked of all three at once is computed once.

type Tap = import('tap').Test

interface Instance { get: (path: string) => Promise<{ status: number, cache: string, body: { id: string, run: number, pid: number } }>, post: (path: string) => Promise<unknown> }

/** One instance process; killed at teardown. */
async function instance (t: Tap, env: Record<string, string>): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/tiered-instance.ts'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(async () => {
    if (child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`instance exited with ${String(code)}`)) })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]) as { port: number }).port)
    })
  })
  const base = `http://127.0.0.1:${port}`
  // Behind a load balancer every instance sees the one public host, which is part of the key.
  const headers = { host: 'patients.example' }
  return {
    get: async (path) => {
      const response = await request(base + path, { headers })
      return { status: response.statusCode, cache: String(response.headers['x-cache']), body: await response.body.json() as { id: string, run: number, pid: number } }
    },
    post: async (path) => await (await request(base + path, { method: 'POST', headers })).body.json()
  }
}

async function instances (t: Tap, namespace: string, handlerMs = 0): Promise<{ apps: Instance[], runs: () => Promise<number>, stored: () => Promise<boolean>, pause: () => void, resume: () => void }> {
  const port = await freePort()
  const server = await spawnPausableRedis(port)
  t.teardown(async () => { server.resume(); await server.kill() })
  const url = `redis://127.0.0.1:${port}`
  const apps = await Promise.all([0, 1, 2].map(async () => await instance(t, { REDIS_URL: url, CACHE_NAMESPACE: namespace, HANDLER_MS: String(handlerMs) })))
  const counts = new Redis(url)
  t.teardown(() => { counts.disconnect() })
  return {
    apps,
    runs: async () => Number(await counts.get(`${namespace}:runs`)),
    // A response is written to Redis after it has gone out: until then, another process misses.
    stored: async () => await eventually(async () => (await counts.keys(`${namespace}:*`)).some((key) => !key.endsWith(':runs') && !key.includes(':lock:'))),
    pause: server.pause,
    resume: server.resume
  }
}

t.test('separate processes: one stores, the others hit from Redis, then from their own memory', async (t) => {
  const { apps: [a, b, c], runs, stored, pause, resume } = await instances(t, 'procs-share')
  const first = await a.get('/patients/1')
  t.same([first.cache, first.body.run], ['MISS', 1])
  t.not(first.body.pid, process.pid, 'the handler ran in a process of its own')
  t.ok(await stored())
  for (const app of [b, c]) {
    const r = await app.get('/patients/1')
    t.same([r.status, r.cache, r.body.run, r.body.pid], [200, 'HIT', 1, first.body.pid], 'from Redis: this process never ran the handler')
  }
  pause()
  for (const app of [a, b, c]) {
    const r = await app.get('/patients/1')
    t.same([r.cache, r.body.run], ['HIT', 1], 'from its own memory, while Redis answers nothing')
  }
  resume()
  t.equal(await runs(), 1)
})

t.test('separate processes: an invalidation on one is seen on all', async (t) => {
  const { apps: [a, b, c], runs, stored } = await instances(t, 'procs-invalidate')
  t.equal((await a.get('/patients/1')).body.run, 1)
  t.ok(await stored())
  for (const app of [b, c]) t.equal((await app.get('/patients/1')).body.run, 1)
  t.same(await a.post('/invalidate/1'), { dropped: 1 })
  for (const app of [a, b, c]) t.ok(await eventually(async () => (await app.get('/patients/1')).body.run !== 1), 'its copy dropped')
  t.ok(await runs() <= 4, 'recomputed at most once per instance')
})

t.test('separate processes: a cold key under concurrent load on all three runs its handler once', async (t) => {
  // The handler takes 300 ms, so the requests of all three processes arrive while it runs.
  const { apps, runs } = await instances(t, 'procs-cold', 300)
  const answers = await Promise.all(apps.flatMap((app) => Array.from({ length: 10 }, async () => await app.get('/patients/9'))))
  t.same(answers.filter((r) => r.status !== 200 || r.body.run !== 1), [], 'every answer is the one run\'s body')
  t.equal(await runs(), 1, 'one run across the three processes')
  t.equal(new Set(answers.map((r) => r.body.pid)).size, 1)
})

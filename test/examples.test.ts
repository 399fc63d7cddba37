import { execFile, spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'
import { request } from 'undici'
import { buildDemo } from '../examples/demo/app.js'
import { eventually } from './helpers/events.js'
import { freePort } from './helpers/redis.js'

t.test('the demo app caches products and searches and shows stats', async (t) => {
  const app = await buildDemo()
  t.teardown(() => app.close())
  t.equal((await app.inject('/products/1')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/products/1')).headers['x-cache'], 'HIT')
  t.equal((await app.inject({ method: 'POST', url: '/search', payload: { q: 'tea', page: 1 } })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ method: 'POST', url: '/search', payload: { page: 1, q: 'tea' } })).headers['x-cache'], 'HIT')
  t.equal((await app.inject('/uncached')).headers['x-cache'], undefined)
  await app.inject({ method: 'PUT', url: '/products/1' })
  t.equal((await app.inject('/products/1')).headers['x-cache'], 'MISS', 'the write dropped it')
  const first = (await app.inject('/products/3/summary')).json()
  t.same((await app.inject('/products/3/summary')).json(), first, 'the summary comes from app.cache.wrap')
  const stats = JSON.parse((await app.inject('/cache/stats')).body)
  t.equal(stats.routes['GET /products/:id'].hits, 1)
  t.equal(stats.values.hits, 1)
  const text = await app.inject({ url: '/cache/stats', headers: { accept: 'text/plain' } })
  t.match(text.body, /response_cache_requests_total\{namespace="rc",route="GET \/products\/:id",result="hit"\} 1/)
})

t.test('npm run demo prints one MISS then one HIT', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/demo/server.ts', '--once'], { timeout: 30_000 })
  const lines = stdout.split('\n').filter((line) => line.includes('x-cache'))
  t.equal(lines.length, 2)
  t.match(lines[0], /GET \/products\/42 -> 200 x-cache: MISS/)
  t.match(lines[1], /GET \/products\/42 -> 200 x-cache: HIT/)
  t.match(stdout, /GET \/cache\/stats -> 200 hits: 1, misses: 1/)
})

const examples = readdirSync('examples', { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(`examples/${entry.name}/server.ts`))
  .map((entry) => entry.name)

for (const name of examples) {
  t.test(`npm run example ${name} starts it on PORT`, async (t) => {
    const port = await freePort()
    // Its own process group, so the kill reaches npm, tsx and node alike.
    // The memory store: no REDIS_URL, so no example writes to a Redis of the machine's.
    const { REDIS_URL: _, ...env } = process.env
    const child = spawn('npm', ['run', '--silent', 'example', name], { env: { ...env, PORT: String(port) }, detached: true, stdio: 'ignore' })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), 'SIGTERM')
      await exited
    })
    let status = 0
    t.ok(await eventually(async () => {
      try {
        const response = await request(`http://127.0.0.1:${port}/`)
        await response.body.dump()
        status = response.statusCode
        return true
      } catch {
        return false
      }
    }, 60_000), 'it listens')
    t.ok(status > 0 && status < 500, `and answers (${status})`)
  })
}

t.test('npm run example with an unknown name lists the examples and fails', async (t) => {
  const error = await promisify(execFile)('npm', ['run', '--silent', 'example', 'nope'], { timeout: 30_000 }).catch((error: unknown) => error as { code: number, stderr: string })
  t.match(error, { code: 1, stderr: /No example named "nope"/ })
  for (const name of examples) t.match((error as { stderr: string }).stderr, `npm run example ${name}\n`)
})

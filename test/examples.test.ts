import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { buildDemo } from '../examples/demo/app.js'

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

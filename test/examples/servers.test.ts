import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { redisServer, startServer } from '../helpers/examples.js'

// Each example's server.ts, run as a user runs it: `tsx examples/<name>/server.ts` with REDIS_URL set.
// The apps' behaviour is tested in process, in the example's own test file.
const redis = await redisServer(t)

t.test('health-bot: server.ts starts on the tiered store when REDIS_URL is set', async (t) => {
  const { address, output } = await startServer(t, 'examples/health-bot/server.ts', { REDIS_URL: redis.url })
  t.match(output, /cache: tiered, memory over redis/)
  const response = await fetch(`${address}/users/u1/memory`)
  t.equal(response.status, 200)
  t.match(await response.json(), { profile: { name: 'Ana' } })
})

t.test('story-repositories: server.ts starts on Redis when REDIS_URL is set', async (t) => {
  const { address, output } = await startServer(t, 'examples/story-repositories/server.ts', { REDIS_URL: redis.url })
  t.match(output, /cache: redis/)
  const response = await fetch(`${address}/heroes/h1`)
  t.equal(response.status, 200)
  t.equal((await response.json() as { name: string }).name, 'Captain Kindness')
})

t.test('reverse-proxy: server.ts forwards to UPSTREAM and caches on Redis when REDIS_URL is set', async (t) => {
  let requests = 0
  const origin = createServer((_request, response) => {
    requests++
    response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end('from the origin')
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => { origin.close() })
  const upstream = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const { address, output } = await startServer(t, 'examples/reverse-proxy/server.ts', { UPSTREAM: upstream, REDIS_URL: redis.url })
  t.match(output, `in front of ${upstream} (cache: redis; purge: off, set PURGE_TOKEN)`)
  const answers = [await fetch(`${address}/page`), await fetch(`${address}/page`)]
  t.same(answers.map((answer) => answer.headers.get('x-cache')), ['MISS', 'HIT'])
  t.equal(await answers[1].text(), 'from the origin')
  t.equal(requests, 1)
})

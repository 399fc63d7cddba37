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

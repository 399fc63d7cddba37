import t from 'tap'
import { runExample, runExampleToExit } from '../helpers/example-process.js'
import { freePort, restartableRedis } from '../helpers/redis.js'

// `npm run example medinsight` as a user runs it. Its behaviour is tested in process, in
// medinsight.test.ts; this file checks the start: the token, the port, the printed lines.
const redis = await restartableRedis(t)
await redis.start()

t.test('on Redis with a token: the listen line, then the "Try:" lines; analyses cached, ops routes open to the token', async (t) => {
  const port = await freePort()
  const { address, stdout } = await runExample(t, 'medinsight', { PORT: String(port), REDIS_URL: redis.url, MEDINSIGHT_OPS_TOKEN: 'token' })
  t.equal(address, `http://127.0.0.1:${port}`)
  t.ok(stdout.indexOf('Server listening at') < stdout.indexOf('\nTry:\n'), 'the "Try:" lines come after the listen line')
  t.notMatch(stdout, /MEDINSIGHT_OPS_TOKEN is not set/)
  const post = async (drug: string): Promise<string | null> => {
    const answer = await fetch(`${address}/api/v1/drug/analyze`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ drug }) })
    return answer.headers.get('x-cache')
  }
  t.same([await post('aspirin'), await post('Aspirin ')], ['MISS', 'HIT'])
  const stats = await fetch(`${address}/api/v1/cache/stats`, { headers: { authorization: 'Bearer token' } })
  t.match(await stats.json(), { usage: { 'drug-analysis': { requests: 2, hits: 1 } }, store: { name: 'redis', state: 'up', entries: 1 } })

  const second = await runExampleToExit('medinsight', { PORT: String(port) })
  t.equal(second.code, 1)
  t.equal(second.stderr, `Cannot listen on 127.0.0.1:${port} (the port is taken): set PORT to another port.\n`)
})

t.test('an empty token: a warning at start, and the ops routes answer 401', async (t) => {
  const { address, stdout } = await runExample(t, 'medinsight', { PORT: String(await freePort()), MEDINSIGHT_OPS_TOKEN: '', REDIS_URL: '' })
  t.match(stdout, /MEDINSIGHT_OPS_TOKEN is not set: every \/api\/v1\/cache request answers 401/)
  t.equal((await fetch(`${address}/api/v1/cache/stats`, { headers: { authorization: 'Bearer ' } })).status, 401)
  t.equal((await fetch(`${address}/api/v1/drug/info/aspirin`)).status, 200, 'on the memory store')
})

t.test('a bad LOG_LEVEL stops the server with one line', async (t) => {
  const { code, stdout, stderr } = await runExampleToExit('medinsight', { PORT: '0', LOG_LEVEL: 'loud' })
  t.equal(code, 1)
  t.equal(stderr, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, not "loud"\n')
  t.equal(stdout, '')
})

import t from 'tap'
import { runExample, runExampleToExit } from '../helpers/example-process.js'
import { freePort, restartableRedis } from '../helpers/redis.js'

// `npm run example patient-generator` as a user runs it. Its behaviour is tested in process, in
// patient-generator.test.ts; this file checks the start: settings, the port, the printed lines.
const redis = await restartableRedis(t)
await redis.start()

t.test('on Redis: the listen line, then the "Try:" lines; the first request is a hit', async (t) => {
  const port = await freePort()
  const { address, stdout } = await runExample(t, 'patient-generator', { PORT: String(port), REDIS_URL: redis.url, PATIENT_GENERATOR_OPS_TOKEN: 'token', CACHE_TTL: '600' })
  t.equal(address, `http://127.0.0.1:${port}`)
  t.ok(stdout.indexOf('Server listening at') < stdout.indexOf('\nTry:\n'), 'the "Try:" lines come after the listen line')
  t.match(stdout, `curl -i ${address}/reference/demographics`)
  t.notMatch(stdout, /PATIENT_GENERATOR_OPS_TOKEN is not set/)
  const first = await fetch(`${address}/reference/demographics`)
  t.equal(first.headers.get('x-cache'), 'HIT')
  t.match(await (await fetch(`${address}/health`)).json(), { status: 'ok', cache: { enabled: true, store: 'redis', state: 'up' } })
  const dropped = await fetch(`${address}/cache/reference/conditions`, { method: 'DELETE', headers: { authorization: 'Bearer token' } })
  t.same(await dropped.json(), { dropped: 1, warmed: true })

  // The same port again: one line, exit 1.
  const second = await runExampleToExit('patient-generator', { PORT: String(port), REDIS_URL: redis.url })
  t.equal(second.code, 1)
  t.equal(second.stderr, `Cannot listen on 127.0.0.1:${port} (the port is taken): set PORT to another port.\n`)
})

t.test('CACHE_ENABLED=false starts without the cache; no token: a warning', async (t) => {
  const { address, stdout } = await runExample(t, 'patient-generator', { PORT: String(await freePort()), REDIS_URL: redis.url, CACHE_ENABLED: 'false', PATIENT_GENERATOR_OPS_TOKEN: '' })
  t.match(stdout, /cache disabled \(CACHE_ENABLED=false\)/)
  t.match(stdout, /PATIENT_GENERATOR_OPS_TOKEN is not set/)
  const answer = await fetch(`${address}/reference/conditions`)
  t.equal(answer.status, 200)
  t.equal(answer.headers.get('x-cache'), null)
  t.equal((await fetch(`${address}/cache/reference/conditions`, { method: 'DELETE', headers: { authorization: 'Bearer ' } })).status, 401)
})

t.test('a bad setting stops the server with one line', async (t) => {
  for (const [env, line] of [
    [{ CACHE_TTL: 'abc' }, 'CACHE_TTL must be a whole number of seconds from 1 to 31536000, not "abc"'],
    [{ CACHE_TTL: '0' }, 'CACHE_TTL must be a whole number of seconds from 1 to 31536000, not "0"'],
    [{ CACHE_ENABLED: 'maybe' }, 'CACHE_ENABLED must be true or false (or 1/0, yes/no, on/off), not "maybe"'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, not "loud"'],
    [{ PORT: 'http' }, 'PORT must be a port number (0 to 65535), not "http"']
  ] as const) {
    const { code, stdout, stderr } = await runExampleToExit('patient-generator', { PORT: '0', ...env })
    t.equal(code, 1, JSON.stringify(env))
    t.equal(stderr, `${line}\n`)
    t.equal(stdout, '', 'nothing else')
  }
})

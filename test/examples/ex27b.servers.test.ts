import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { redisServer, startServer } from '../helpers/examples.js'

// story-repositories, document-processing and health-bot started as `npm run example <name>` starts
// them (tsx examples/<name>/server.ts): the listen line, then the "Try:" lines, on Redis; a taken
// port answered in one line.
const redis = await redisServer(t)

/** What a server.ts prints on stdout and stderr when it cannot start, and its exit code. */
async function failedStart (file: string, env: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
}

const examples = [
  ['story-repositories', /story repositories on http:\/\/127\.0\.0\.1:\d+ \(cache: redis\)\n\nTry:\n {2}curl -i http:\/\/127\.0\.0\.1:\d+\/heroes\/h1/, '/heroes/h1'],
  ['health-bot', /health bot on http:\/\/127\.0\.0\.1:\d+ \(cache: tiered, memory over redis\)\n\nTry:\n {2}curl -si http:\/\/127\.0\.0\.1:\d+\/users\/u1\/memory/, '/users/u1/memory'],
  ['document-processing', /document processing on http:\/\/127\.0\.0\.1:\d+ \(cache: redis, sealed, development\)\n\nTry:\n {2}printf/, '/health']
] as const

for (const [name, , path] of examples) {
  t.test(`${name}: the listen line, then the Try: lines, and the server answers on Redis`, async (t) => {
    const { address } = await startServer(t, `examples/${name}/server.ts`, { REDIS_URL: redis.url, ADMIN_TOKEN: 'x', LOG_LEVEL: 'warn' })
    const response = await fetch(`${address}${path}`)
    t.equal(response.status, 200)
  })

  t.test(`${name}: a taken port is one line, and no stack`, async (t) => {
    const taken = createServer()
    taken.listen(0, '127.0.0.1')
    await once(taken, 'listening')
    t.teardown(() => { taken.close() })
    const port = (taken.address() as AddressInfo).port
    const { code, stderr } = await failedStart(`examples/${name}/server.ts`, { PORT: String(port), ADMIN_TOKEN: 'x', LOG_LEVEL: 'fatal' })
    t.equal(code, 1)
    t.equal(stderr.trim(), `Cannot listen on 127.0.0.1:${port} (the port is taken): set PORT to another port.`)
  })
}

t.test('the listen line comes before the Try: lines', async (t) => {
  for (const [name, printed] of examples) {
    const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}/server.ts`], { env: { ...process.env, PORT: '0', REDIS_URL: redis.url, ADMIN_TOKEN: 'x', LOG_LEVEL: 'fatal' }, stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    await new Promise<void>((resolve) => { child.stdout.on('data', () => { if (stdout.includes('Try:\n') && /\n\s*$/.test(stdout)) resolve() }) })
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const [code] = await exited as [number | null]
    t.match(stdout, printed, name)
    t.equal(code, 0, `${name} closes on SIGTERM`)
  }
})

t.test('document-processing: production without CACHE_ENCRYPTION_KEY is one line, and no start', async (t) => {
  const { code, stderr, stdout } = await failedStart('examples/document-processing/server.ts', { PORT: '0', APP_ENV: 'production', CACHE_ENCRYPTION_KEY: '', LOG_LEVEL: 'fatal' })
  t.equal(code, 1)
  t.match(stderr.trim(), /^document-processing cannot start: CACHE_ENCRYPTION_KEY is required in production/)
  t.notMatch(stdout, /Try:/)
  const wrong = await failedStart('examples/document-processing/server.ts', { PORT: '0', APP_ENV: 'prod' })
  t.same([wrong.code, wrong.stderr.trim()], [1, 'APP_ENV must be development, staging or production, not "prod"'])
})

import { spawn } from 'node:child_process'

interface Teardown { teardown: (fn: () => unknown) => void }

/**
 * Runs an example's server.ts as a user would (`tsx examples/x/server.ts`) on a free port, until the
 * test ends; answers the address it printed and what it printed up to there.
 */
export async function startServer (t: Teardown, file: string, env: Record<string, string> = {}): Promise<{ address: string, output: string }> {
  const environment: NodeJS.ProcessEnv = { ...process.env, ...env, PORT: '0' }
  // The child's coverage of lib/ (transformed by tsx) would blur the figures of the in-process tests.
  delete environment.NODE_V8_COVERAGE
  const child = spawn(process.execPath, ['--import', 'tsx', file], { env: environment, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  let output = ''
  const address = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`${file} exited with ${String(code)}: ${output}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const found = / on (http:\/\/[^\s]+)/.exec(output)
      if (found !== null) resolve(found[1])
    })
  })
  return { address, output }
}

import { spawn } from 'node:child_process'

interface Teardown { teardown: (fn: () => unknown) => void }

/** An example started as `npm run example <name>` starts it (examples/run.ts under tsx), without npm in between. */
function spawnExample (name: string, env: Record<string, string>): ReturnType<typeof spawn> {
  const environment = { ...process.env, HOST: '127.0.0.1', ...env }
  return spawn(process.execPath, ['--import', 'tsx', 'examples/run.ts', name], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] })
}

/**
 * Runs an example until the test ends and answers once it has printed its "Try:" lines: the
 * address it listens on and what it printed until then (stdout and stderr).
 */
export async function runExample (t: Teardown, name: string, env: Record<string, string>): Promise<{ address: string, stdout: string, stderr: string }> {
  const child = spawnExample(name, env)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  let stdout = ''
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  return await new Promise((resolve, reject) => {
    // A bound, not a timing: an example that never prints its lines fails the test with what it printed.
    const timer = setTimeout(() => { reject(new Error(`${name} printed no "Try:" lines after its listen line: ${stdout}${stderr}`)) }, 30_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${String(code)}: ${stdout}${stderr}`)) })
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const address = /Server listening at (http:\/\/[^"\s]+)/.exec(stdout)?.[1]
      // The last "Try:" line has arrived once a line break follows a curl line after "Try:".
      if (address !== undefined && /\nTry:\n(?: {2}curl .*\n)+$/.test(stdout.slice(stdout.indexOf('\nTry:\n')))) {
        clearTimeout(timer)
        resolve({ address, stdout, stderr })
      }
    })
  })
}

/** Runs an example that is expected to stop by itself: its exit code, stdout and stderr. */
export async function runExampleToExit (name: string, env: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawnExample(name, env)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

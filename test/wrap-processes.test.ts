import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'

// wrap in a process of its own (test/fixtures/wrap-hanging-fn.ts, run through tsx). Kept apart from
// wrap-timeouts.test.ts: the child's differently transformed lib/ would blur the coverage figures
// (test/coverage-map.mjs leaves this file out of them, as it does the examples run as processes).

t.test('a function that never answers does not keep the process alive past its work', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/fixtures/wrap-hanging-fn.ts'], { timeout: 30_000 })
  t.equal(stdout, 'exited old\n', 'exits by itself, the call still waiting (no stale answer before the soft timeout)')
})

// tap's coverage map: which files each test file's coverage counts for. The examples test runs the
// demo through tsx in a child process, whose differently transformed lib/ would blur the figures;
// it proves the demo works, and the unit and feature tests carry coverage. The same holds for the
// tiered store's instances run as processes of their own.
export default function coverageMap (testFile) {
  return testFile.endsWith('examples.test.ts') || testFile.endsWith('tiered-processes.test.ts') ? null : []
}

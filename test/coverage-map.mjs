// tap's coverage map: which files each test file's coverage counts for. The examples test runs the
// demo through tsx in a child process, whose differently transformed lib/ would blur the figures;
// it proves the demo works, and the unit and feature tests carry coverage.
export default function coverageMap (testFile) {
  return testFile.endsWith('examples.test.ts') ? null : []
}

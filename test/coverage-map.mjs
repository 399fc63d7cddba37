// tap's coverage map: which files each test file's coverage counts for. The examples test and
// test/examples/servers.test.ts run examples through tsx in child processes, whose differently
// transformed lib/ would blur the figures; they prove the examples start, and the unit, feature and
// in-process example tests carry coverage. The same holds for the tiered store's instances run as
// processes of their own, and for wrap's process that must exit by itself.
export default function coverageMap (testFile) {
  return /(examples|servers|tiered-processes|wrap-processes)\.test\.ts$/.test(testFile) ? null : []
}

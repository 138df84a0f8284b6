package integration

// knownShimBugs are failures of our shim that the reliability tests found and
// that wait for a fix in shim/, process/ or io/. A teach row that hits one
// skips its remaining checks with this description instead of failing (see
// scenario.knownShimBug), so that main stays green meanwhile; the skip, with
// what was seen, shows in the test output and in docs/reliability.md.
//
// Fixing a bug means deleting its line here: the check then fails again if
// the bug is still there. What the stock runc shim fails at is not listed
// here: on its row that is a reference finding (scenario.shimFellShort).
var knownShimBugs = map[string]string{}

// Package integration runs containers through real containerd daemons, the
// pinned 2.x and 1.7 releases, with our shim and with the stock runc shim.
//
// Every lifecycle test is written once and run for each daemon and each
// runtime, as subtests named containerd-<version>/<runtime>:
//
//	go test ./integration/ -run 'TestExitCode//runc'   # the stock shim only
//	go test ./integration/ -run '//teach'              # our shim only
//
// The runc rows are the reference: they pass today and prove each assertion
// is right; the teach rows must come to give the same answers. Where the
// stock shim loses something on a busy machine (output, an event, an exit),
// its row logs a "reference shim finding:" and passes, while ours fails:
// s.shimFellShort and harness.ShimFellShort are that one rule.
package integration

import (
	"os"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the probe the security tests run as
	// another user (see connectProbe).
	if socket := os.Getenv(connectProbeEnv); socket != "" {
		os.Exit(connectProbe(socket))
	}
	os.Exit(harness.Main(m))
}

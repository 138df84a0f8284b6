package integration

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// containerdShimGOMAXPROCS is what containerd puts in every shim's
// environment (core/runtime/v2/command.go in 2.x, runtime/v2/shim/util.go in
// 1.7). (The stock runc shim starts its server with GOMAXPROCS=4, which its
// runc then inherits.)
const containerdShimGOMAXPROCS = "2"

// Our shim's server runs with GOMAXPROCS=1 from its first instruction, so
// its Go runtime never has a second P (shim/gomaxprocs.go); runc, which it
// starts, must still see what containerd gave the shim: the server's own
// tuning is not passed on.
func TestRuncSeesContainerdGOMAXPROCS(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		recorder := harness.EnvRecordingRunc(t, "GOMAXPROCS")
		container := s.newContainer(t, "gomaxprocs", []string{"sleep", "1000"},
			client.WithRuntime(s.runtime, &options.Options{BinaryName: recorder.Path}))
		task, _ := s.startTask(t, container, &stdio{})

		if seen := recorder.Recorded(); !slices.Equal(seen, []string{containerdShimGOMAXPROCS}) {
			t.Errorf("runc create saw GOMAXPROCS %q, want [%s] (containerd's value for shims)", seen, containerdShimGOMAXPROCS)
		}
		shimPID, err := harness.ParentPID(int(task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		// /proc/<pid>/environ is the environment the process was started
		// with, before the server put containerd's value back for runc.
		if got := startEnv(t, shimPID, "GOMAXPROCS"); got != "1" {
			t.Errorf("shim server %d started with GOMAXPROCS=%q, want 1", shimPID, got)
		}
	})
}

// startEnv is the value of name in the environment pid was started with.
func startEnv(t *testing.T, pid int, name string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte(name + "=")
	var value string
	for entry := range bytes.SplitSeq(data, []byte{0}) {
		if bytes.HasPrefix(entry, prefix) {
			value = string(entry[len(prefix):]) // the last one wins, as in getenv
		}
	}
	return value
}

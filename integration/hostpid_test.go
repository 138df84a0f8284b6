package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// A container without a pid namespace of its own (the host's, as with
// `docker run --pid=host`) has no pid 1 whose death takes the rest of its
// processes with it. The shim must end them when the container's init
// exits: a process left behind would outlive its container.
func TestHostPidContainerEndsWithItsInit(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		// sh starts a sleep in the background, says its pid, and exits
		// two seconds later; the sleep would run on for 1000.
		container := s.newContainer(t, "hostpid", []string{"sh", "-c", "sleep 1000 & echo $!; sleep 2"},
			withSpecOpts(oci.WithHostNamespace(specs.PIDNamespace)))
		streams := &stdio{}
		task, exitCh := s.startTask(t, container, streams)
		var sleeper harness.ProcessInfo
		harness.Eventually(t, harness.SettleTimeout, "the background sleep's pid on stdout", func() error {
			pid, err := strconv.Atoi(strings.TrimSpace(streams.stdout.String()))
			if err != nil {
				return fmt.Errorf("stdout so far: %q", streams.stdout.String())
			}
			sleeper, err = harness.ReadProcess(pid)
			return err
		})
		if code := exitCodeOf(t, exitCh); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		harness.Eventually(t, harness.SettleTimeout, "the background sleep ended with its container", func() error {
			if harness.StillRunning(sleeper) {
				return fmt.Errorf("pid %d (%s) still runs", sleeper.PID, sleeper.Command)
			}
			return nil
		})
		deleteTask(t, s.ctx, task, 0)
	})
}

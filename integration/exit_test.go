package integration

import (
	"testing"
)

// A container's exit code is the one number containerd's users always read:
// the shim must carry it from the reaper to Wait, Delete and ctr unchanged.

func TestExitCode(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		result := s.runToExit(t, "exit3", nil, "sh", "-c", "exit 3")
		if result.exitCode != 3 {
			t.Errorf("exit code = %d, want 3", result.exitCode)
		}
	})
}

func TestExitCodeThroughCtr(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		// ctr run --rm exits with the container's exit code.
		result := s.daemon.CtrRun(t, s.ns, s.runtime, "exit3", nil, "sh", "-c", "exit 3")
		if result.ExitCode != 3 {
			t.Errorf("ctr run exit code = %d, want 3\nstderr: %s", result.ExitCode, result.Stderr)
		}
		s.daemon.AssertNoContainerTraces(t, s.ns, "exit3")
	})
}

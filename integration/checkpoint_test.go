package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Checkpoint saves a running container with CRIU (runc checkpoint). Where
// CRIU cannot work on the running kernel (`criu check` fails), the caller
// must get CRIU's own reason and the container must keep running.

// criuProblem is why CRIU cannot checkpoint here, or "" if it can.
func criuProblem(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("criu", "check").CombinedOutput()
	if err == nil && !strings.Contains(string(out), "Error") {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func TestCheckpointFailureKeepsTheContainerRunning(t *testing.T) {
	problem := criuProblem(t)
	if problem == "" {
		t.Skip("criu check passes here: TestCheckpointLeavesTheContainerRunning covers checkpoint")
	}
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		_, task, _ := s.runningTask(t, "cp-fails")
		result := s.daemon.Ctr(t, s.ns, "task", "checkpoint", "--image-path", filepath.Join(t.TempDir(), "image"), "cp-fails")
		if result.ExitCode == 0 {
			t.Fatalf("checkpoint succeeded although criu check fails: %s", problem)
		}
		stderr := string(result.Stderr)
		if s.runtime == harness.TeachRuntime && (!strings.Contains(stderr, "CRIU says: (") || !strings.Contains(stderr, "Error (criu/")) {
			t.Errorf("the caller does not get CRIU's reason:\n%s", result.Stderr)
		}
		if status, err := task.Status(s.ctx); err != nil || status.Status != client.Running {
			t.Fatalf("container after a failed checkpoint: %v, %v", status.Status, err)
		}
	})
}

func TestCheckpointLeavesTheContainerRunning(t *testing.T) {
	if problem := criuProblem(t); problem != "" {
		t.Skipf("criu check fails on this kernel, so CRIU cannot checkpoint here: %s", problem)
	}
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		_, task, _ := s.runningTask(t, "cp")
		image := filepath.Join(t.TempDir(), "image")
		result := s.daemon.Ctr(t, s.ns, "task", "checkpoint", "--image-path", image, "cp")
		if result.ExitCode != 0 {
			t.Fatalf("checkpoint: %s", result.Stderr)
		}
		if matches, _ := filepath.Glob(filepath.Join(image, "*.img")); len(matches) == 0 {
			t.Fatalf("no CRIU images in %s", image)
		}
		if status, err := task.Status(s.ctx); err != nil || status.Status != client.Running {
			t.Fatalf("container after checkpoint: %v, %v", status.Status, err)
		}
	})
}

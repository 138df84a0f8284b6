package integration

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/client"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// These tests check the harness itself, with the stock runc shim only: that
// a daemon can be restarted under a running container, and that the cleanup
// leaves nothing behind even after a test killed its daemon mid-run.

var stockRow = runtimeRow{name: "runc", runtime: harness.RuncRuntime}

// forEachDaemonWithStockShim runs test as containerd-<version>/runc, the
// names the lifecycle tests use, so the same -run filters select them.
func forEachDaemonWithStockShim(t *testing.T, test func(t *testing.T, release harness.ContainerdRelease)) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			t.Run(stockRow.name, func(t *testing.T) { test(t, release) })
		})
	}
}

// After Restart the daemon finds the running task again through its shim.
func TestHarnessRestartKeepsTasks(t *testing.T) {
	forEachDaemonWithStockShim(t, func(t *testing.T, release harness.ContainerdRelease) {
		daemon := harness.StartContainerd(t, release.Version)
		s := newSession(t, daemon, stockRow)
		container := s.newContainer(t, "survivor", []string{"sleep", "1000"})
		task, _ := s.startTask(t, container, &stdio{})
		oldPID := daemon.PID()

		daemon.Restart(t)

		if daemon.PID() == oldPID || !daemon.Running() {
			t.Fatalf("daemon pid %d after restart, was %d", daemon.PID(), oldPID)
		}
		// The old Task value still works: the client reconnects by itself.
		waitForTaskStatus(t, s, container.ID(), client.Running)
		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitForTaskStatus(t, s, container.ID(), client.Stopped)
		if _, err := task.Delete(s.ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// leftovers is what a test left running when its daemon was killed.
type leftovers struct {
	dir, address string
	initPID      int
	runcState    string
}

func TestHarnessCleansUpAfterKilledDaemon(t *testing.T) {
	forEachDaemonWithStockShim(t, func(t *testing.T, release harness.ContainerdRelease) {
		var left leftovers
		t.Run("leave a running container", func(t *testing.T) {
			left = leaveRunningContainer(t, release)
		})
		if left.initPID == 0 {
			t.Fatal("the container never started")
		}
		harness.AssertProcessGone(t, left.initPID, "container init after cleanup")
		shims, err := harness.ShimsOf(left.address)
		if err != nil || len(shims) > 0 {
			t.Errorf("shims still running after cleanup: %v %v", shims, err)
		}
		for _, path := range []string{left.dir, left.runcState} {
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there after cleanup (%v)", path, err)
			}
		}
		if mounts, _ := harness.MountsUnder(left.dir); len(mounts) > 0 {
			t.Errorf("still mounted after cleanup: %v", mounts)
		}
	})
}

// leaveRunningContainer starts a container and kills the daemon under it,
// without deleting anything: the subtest's cleanup must cope.
func leaveRunningContainer(t *testing.T, release harness.ContainerdRelease) leftovers {
	daemon := harness.StartContainerd(t, release.Version)
	s := newSession(t, daemon, stockRow)
	const id = "abandoned"
	container, err := s.createContainer(id, []string{"sleep", "1000"})
	if err != nil {
		t.Fatal(err)
	}
	task, _, err := s.startTaskE(container, &stdio{})
	if err != nil {
		t.Fatal(err)
	}
	left := leftovers{
		dir:       daemon.Dir,
		address:   daemon.Address,
		initPID:   int(task.Pid()),
		runcState: harness.RuncStateDir(s.ns, id),
	}
	daemon.Kill(t)
	if shims, _ := harness.ShimsOf(daemon.Address); len(shims) != 1 {
		t.Errorf("want the shim to outlive its killed daemon, found shims %v", shims)
	}
	if !harness.IsAlive(left.initPID) {
		t.Errorf("container init %d died with the daemon", left.initPID)
	}
	return left
}

package integration

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// While a task exists, it has a bundle folder (containerd's), its rootfs
// mounted inside it, and runc's state folder. After Delete all three must be
// gone, and the shim process with them: a shim that forgets one of them
// leaks a mount or a folder per container, forever.
func TestDeleteLeavesNoTraces(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		const id = "traces"
		container := s.newContainer(t, id, []string{"sleep", "1000"})
		task, exitCh := s.startTask(t, container, &stdio{})
		shimPID, err := harness.ParentPID(int(task.Pid()))
		if err != nil {
			t.Fatal(err)
		}

		// First the traces a running task has: this proves the paths the
		// leak checks below look at are the right ones for this daemon.
		if err := runningTaskTraces(s, id); err != nil {
			t.Fatalf("running task: %v", err)
		}

		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deleteTask(t, s.ctx, task, exitCodeOf(t, exitCh))

		s.daemon.AssertNoContainerTraces(t, s.ns, id)
		harness.AssertProcessGone(t, shimPID, "shim of deleted task")
	})
}

// runningTaskTraces checks what a running task must have on the host.
func runningTaskTraces(s *session, id string) error {
	rootfs := s.daemon.RootfsDir(s.ns, id)
	mounts, err := harness.MountsUnder(rootfs)
	if err != nil {
		return err
	}
	if len(mounts) == 0 {
		return fmt.Errorf("nothing mounted at %s", rootfs)
	}
	for _, dir := range []string{s.daemon.BundleDir(s.ns, id), harness.RuncStateDir(s.ns, id)} {
		if _, err := os.Stat(dir); err != nil {
			return err
		}
	}
	return nil
}

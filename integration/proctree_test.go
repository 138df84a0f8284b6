package integration

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The process tree a person sees with `ps -ef --forest`:
//
//	1 (or a subreaper)
//	└─ containerd-shim-teach-v2 -namespace ... -id tree -address ...
//	   └─ sleep 1000                (the container's init)
//
// The shim is the parent of the container's init, which is how it learns
// the exit status (it reaps it). The shim is not containerd's child: the
// `start` action spawns it and exits, so it is re-parented, leads a process
// group of its own, and survives a containerd restart.
func TestShimIsParentOfContainerInit(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container := s.newContainer(t, "tree", []string{"sleep", "1000"})
		task, exitCh := s.startTask(t, container, &stdio{})
		defer func() {
			if t.Failed() {
				harness.LogProcessForest(t)
			}
		}()

		initPID := int(task.Pid())
		shimPID := assertShimIsParent(t, s, initPID)
		assertShimIsDetached(t, s, shimPID)
		assertCtrListsPID(t, s, "tree", initPID)

		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deleteTask(t, s.ctx, task, exitCodeOf(t, exitCh))
	})
}

// assertShimIsParent checks the init's parent runs the runtime's shim
// binary, and returns the shim's pid.
func assertShimIsParent(t *testing.T, s *session, initPID int) int {
	t.Helper()
	shimPID, err := harness.ParentPID(initPID)
	if err != nil {
		t.Fatalf("parent of init %d: %v", initPID, err)
	}
	exe, err := harness.Executable(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	if want := harness.ShimBinaryName(s.runtime); filepath.Base(exe) != want {
		t.Fatalf("parent of the container's init is %s, want the shim %s", harness.DescribeProcess(shimPID), want)
	}
	children, err := harness.Children(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(children, initPID) {
		t.Errorf("shim %d's children %v do not include init %d", shimPID, children, initPID)
	}
	return shimPID
}

// assertShimIsDetached checks the shim is neither containerd's child nor in
// its session, so that stopping containerd does not take the shim along.
func assertShimIsDetached(t *testing.T, s *session, shimPID int) {
	t.Helper()
	shim, err := harness.ReadProcess(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	daemonPID := s.daemon.PID()
	if shim.PPID == daemonPID {
		t.Errorf("shim %d is a child of containerd %d; it should have been re-parented", shimPID, daemonPID)
	}
	// The stock runc shim calls setpgid, not setsid: a process group of its
	// own is what keeps a terminal's Ctrl-C, sent to the foreground group,
	// from reaching it. (A shim that calls setsid also leads its group.)
	if shim.PGID != shimPID {
		t.Errorf("shim %d is in process group %d; it should lead a group of its own", shimPID, shim.PGID)
	}
	args, err := harness.Cmdline(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(args, s.daemon.Address) {
		t.Errorf("shim command line %q does not name the daemon's address %s", args, s.daemon.Address)
	}
}

// assertCtrListsPID checks `ctr task ps` shows the init pid, which ctr gets
// from the shim's Pids call.
func assertCtrListsPID(t *testing.T, s *session, id string, pid int) {
	t.Helper()
	result := s.daemon.Ctr(t, s.ns, "task", "ps", id)
	if result.ExitCode != 0 {
		t.Fatalf("ctr task ps: exit %d: %s", result.ExitCode, result.Stderr)
	}
	for _, line := range strings.Split(string(result.Stdout), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 && fields[0] == strconv.Itoa(pid) {
			return
		}
	}
	t.Errorf("ctr task ps does not list init pid %d:\n%s", pid, result.Stdout)
}

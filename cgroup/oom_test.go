package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/cgroup/cgroupfs"
)

// A process that needs more memory than its cgroup allows is killed by the
// OOM killer; WatchOOM reports the kill, and OOMKills counts it. On a v1
// host this is the eventfd on memory.oom_control, on v2 the inotify watch
// of memory.events.
func TestWatchOOMReportsTheKill(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making cgroups needs root")
	}
	folder, limits := filepath.Join(cgroupfs.Root, "memory"), []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
	if cgroupfs.Unified() {
		folder, limits = cgroupfs.Root, []string{"memory.max", "memory.swap.max"}
	}
	folder = filepath.Join(folder, "cgroup-oom-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Skipf("no memory controller here: %v", err)
	}
	t.Cleanup(func() { os.Remove(folder) })
	if _, err := os.Stat(filepath.Join(folder, limits[0])); err != nil {
		t.Skipf("no memory controller for %s: %v", folder, err)
	}
	for _, limit := range limits {
		// Without swap accounting there is no file for the swap limit.
		if err := os.WriteFile(filepath.Join(folder, limit), []byte("16777216"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}

	// The process stops itself until it is in the cgroup, then reads 64 MiB
	// into one buffer.
	cmd := exec.Command("/bin/sh", "-c", "kill -STOP $$; exec dd if=/dev/zero of=/dev/null bs=64M count=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var status unix.WaitStatus
	if _, err := unix.Wait4(pid, &status, unix.WUNTRACED, nil); err != nil || !status.Stopped() {
		t.Fatalf("the process did not stop: %v, %v", status, err)
	}
	if err := os.WriteFile(filepath.Join(folder, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	cg, err := Of(pid)
	if err != nil {
		t.Fatal(err)
	}
	reported := make(chan struct{}, 1)
	if err := cg.WatchOOM(func() { reported <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if exit, ok := err.(*exec.ExitError); !ok || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the process ended with %v, want killed by SIGKILL (the OOM killer)", err)
	}
	<-reported
	if kills, err := cg.OOMKills(); err != nil || kills != 1 {
		t.Errorf("OOMKills = %d, %v; want 1", kills, err)
	}
}

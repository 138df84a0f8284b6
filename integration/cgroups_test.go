package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3"
)

// The tests read a container's cgroup as a user would, from /sys/fs/cgroup.
// Linux has two layouts, and a test runs on either:
//
//   - cgroup v1: one tree per controller; a process's line in
//     /proc/<pid>/cgroup is "<id>:memory:/ns/id", its memory files are in
//     /sys/fs/cgroup/memory/ns/id;
//   - cgroup v2: one tree; its line is "0::/ns/id", and the files of every
//     controller are in /sys/fs/cgroup/ns/id.
//
// `make test` runs them on this machine's cgroups; `make test-cgroup2` runs
// them again in a guest with cgroup v2 alone.

// onCgroupV2 reports whether the host has the unified hierarchy alone.
func onCgroupV2() bool { return cgroups.Mode() == cgroups.Unified }

// needCgroupV2 skips a test of behaviour that only cgroup v2 has.
func needCgroupV2(t *testing.T, why string) {
	t.Helper()
	if !onCgroupV2() {
		t.Skipf("needs cgroup v2 (make test-cgroup2 runs it): %s", why)
	}
}

// cgroupDirOf is the folder of pid's cgroup that holds controller's files:
// the unified one on cgroup v2, the controller's own hierarchy on v1.
func cgroupDirOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "" && onCgroupV2():
			return filepath.Join("/sys/fs/cgroup", parts[2])
		case strings.Contains(","+parts[1]+",", ","+controller+","):
			return filepath.Join("/sys/fs/cgroup", controller, parts[2])
		}
	}
	t.Fatalf("pid %d is in no %s cgroup:\n%s", pid, controller, data)
	return ""
}

// cgroupFile reads a file of the cgroup pid is in: v1File in controller's
// hierarchy, or v2File in the unified one.
func cgroupFile(t *testing.T, pid int, controller, v1File, v2File string) string {
	t.Helper()
	file := v1File
	if onCgroupV2() {
		file = v2File
	}
	value, err := os.ReadFile(filepath.Join(cgroupDirOf(t, pid, controller), file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(value))
}

// keyedValue is the value of "key value" among a cgroup file's lines
// (memory.events, cgroup.events, memory.oom_control), "" when it has none.
func keyedValue(content, key string) string {
	for _, line := range strings.Split(content, "\n") {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), " "); ok && name == key {
			return value
		}
	}
	return ""
}

// cgroupLimit is one limit as the kernel holds it, in each version's file.
type cgroupLimit struct {
	controller     string
	v1File, v2File string
	v1, v2         string // the file's content when the limit is in force
}

func (l cgroupLimit) check(t *testing.T, pid int) {
	t.Helper()
	want, file := l.v1, l.v1File
	if onCgroupV2() {
		want, file = l.v2, l.v2File
	}
	if got := cgroupFile(t, pid, l.controller, l.v1File, l.v2File); got != want {
		t.Errorf("%s of pid %d's cgroup: %q, want %q", file, pid, got, want)
	}
}

// assertFreezer checks the freezer of pid's cgroup: v1's freezer.state; on
// v2 cgroup.freeze, what runc asked, and cgroup.events, what the kernel did.
func assertFreezer(t *testing.T, pid int, v1State, v2Freeze, v2Frozen string) {
	t.Helper()
	if !onCgroupV2() {
		if got := cgroupFile(t, pid, "freezer", "freezer.state", ""); got != v1State {
			t.Errorf("freezer.state %q, want %q", got, v1State)
		}
		return
	}
	if got := cgroupFile(t, pid, "freezer", "", "cgroup.freeze"); got != v2Freeze {
		t.Errorf("cgroup.freeze %q, want %q", got, v2Freeze)
	}
	events := cgroupFile(t, pid, "freezer", "", "cgroup.events")
	if got := "frozen " + keyedValue(events, "frozen"); got != v2Frozen {
		t.Errorf("cgroup.events says %q, want %q:\n%s", got, v2Frozen, events)
	}
}

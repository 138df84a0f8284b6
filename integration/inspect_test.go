package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/inspect"
	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// `containerd-shim-teach-v2 inspect` shows a running container's anatomy
// from /proc and runc alone. The test checks each part of its report
// against what the test reads itself, for a container with an exec process
// and for one with a terminal; then the errors a user meets: an unknown id,
// and a shim that was killed. It reads only what containerd and runc leave
// in the bundle, so the stock shim's containers are inspected as well.
func TestInspect(t *testing.T) {
	t.Parallel()
	daemon := harness.StartContainerd(t, "v2.4.2")
	for _, row := range runtimeRows {
		t.Run(row.name, func(t *testing.T) {
			s := newSession(t, daemon, row)
			harness.ShimBinary(t) // inspect is a command of our binary, whatever the row's shim
			t.Run("exec", func(t *testing.T) { inspectWithExec(t, s) })
			t.Run("terminal", func(t *testing.T) { inspectTerminal(t, s) })
			t.Run("unknown-id", func(t *testing.T) { inspectUnknownID(t, s) })
			t.Run("dead-shim", func(t *testing.T) { inspectDeadShim(t, s) })
		})
	}
}

// inspectReport runs inspect --json and decodes its one document.
func inspectReport(t *testing.T, s *session, id string) inspect.Report {
	t.Helper()
	r := s.daemon.Inspect(t, s.ns, id, "--json")
	if r.ExitCode != 0 {
		t.Fatalf("inspect %s: %s", id, r)
	}
	var report inspect.Report
	if err := json.Unmarshal(r.Stdout, &report); err != nil {
		t.Fatalf("inspect --json printed no report: %v\n%s", err, r.Stdout)
	}
	return report
}

func inspectWithExec(t *testing.T, s *session) {
	container := s.newContainer(t, "anatomy", []string{"sh", "-c", "echo ready; exec sleep 1000"},
		withSpecOpts(oci.WithMemoryLimit(anatomyMemoryLimit), oci.WithPidsLimit(anatomyPidsLimit), oci.WithCPUCFS(anatomyCPUQuota, anatomyCPUPeriod)))
	task, _ := s.startTask(t, container, &stdio{})
	execProcess, err := task.Exec(s.ctx, "side", execSpec(t, s, container, "sleep", "1000"), cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := execProcess.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	initPID, execPID := int(task.Pid()), int(execProcess.Pid())
	// A started exec may still be runc's init, with its threads, which the
	// pids controller counts, until it executes sleep.
	harness.Eventually(t, time.Minute, "the exec to become sleep", func() error {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", execPID))
		if err != nil || strings.TrimSpace(string(comm)) != "sleep" {
			return fmt.Errorf("exec pid %d is %q (%v)", execPID, strings.TrimSpace(string(comm)), err)
		}
		return nil
	})
	report := inspectReport(t, s, "anatomy")
	if s.runtime == harness.TeachRuntime {
		// Our shim's journal notes which containerd the container
		// belongs to, so inspect finds this daemon's state folder alone.
		r := s.daemon.InspectFindingState(t, s.ns, "anatomy")
		if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "bundle: "+s.daemon.StateDir+"/") {
			t.Errorf("inspect without --state did not find the container under %s: %s", s.daemon.StateDir, r)
		}
	}

	shimPID, err := harness.ParentPID(initPID)
	if err != nil {
		t.Fatal(err)
	}
	if report.Shim.PID != shimPID {
		t.Errorf("inspect names shim pid %d; the parent of the container's process %d is %d", report.Shim.PID, initPID, shimPID)
	}
	if report.Shim.PPID == s.daemon.PID() {
		t.Errorf("the shim's parent is containerd (pid %d): it should have been re-parented", s.daemon.PID())
	}
	assertRoles(t, report.Processes, map[int]string{initPID: "init", execPID: "exec"})
	assertOwnNamespaces(t, report.Namespaces, initPID, "pid", "mnt", "ipc", "uts")
	assertStdoutPipe(t, report.Descriptors, initPID)
	assertStdoutFIFO(t, report.Descriptors, task.IO().Config().Stdout)

	if report.Runc.Status != "running" || report.Runc.PID != initPID {
		t.Errorf("runc state: %+v, want running with pid %d", report.Runc, initPID)
	}
	if !slices.Contains(report.Root.Entries, "bin/") {
		t.Errorf("/proc/%d/root lists %q, want bin/ among them", initPID, report.Root.Entries)
	}
	if report.Cgroup.Pids != 2 || report.Cgroup.MemoryBytes <= 0 {
		t.Errorf("cgroup: %d pids, %d bytes of memory; want init and the exec, and some memory", report.Cgroup.Pids, report.Cgroup.MemoryBytes)
	}
	assertInspectedCgroup(t, report.Cgroup)

	version := "== Cgroup (v1)"
	if onCgroupV2() {
		version = "== Cgroup (v2)"
	}
	text := s.daemon.Inspect(t, s.ns, "anatomy")
	if section, _, ok := strings.Cut(string(text.Stdout), "\n== Descriptors"); ok {
		if i := strings.Index(section, "== Cgroup"); i >= 0 {
			t.Logf("inspect's cgroup section:\n%s", section[i:])
		}
	}
	for _, want := range []string{"== The shim", fmt.Sprintf("pid      %d", shimPID), "== Namespaces", version, "limit 64.0 MiB", "limit 50",
		"limit 50000 µs of every 100000 µs", "== runc's state", "status   running"} {
		if !strings.Contains(string(text.Stdout), want) {
			t.Errorf("inspect's text has no %q: %s", want, text)
		}
	}
}

// The limits of the container inspectWithExec inspects.
const (
	anatomyMemoryLimit = 64 << 20
	anatomyPidsLimit   = 50
	anatomyCPUQuota    = 50000
	anatomyCPUPeriod   = 100000
)

// assertInspectedCgroup checks the cgroup inspect found: the host's cgroup
// version, the container's limits as runc set them, no OOM kill, thawed. On
// v2 the container has one cgroup, in the unified tree.
func assertInspectedCgroup(t *testing.T, cg inspect.Cgroup) {
	t.Helper()
	version := 1
	if onCgroupV2() {
		version = 2
		if len(cg.Paths) != 1 || cg.Paths[0].Controllers != "" {
			t.Errorf("cgroup v2: paths %+v, want one, of the unified tree", cg.Paths)
		}
	}
	if cg.Version != version {
		t.Errorf("inspect says cgroup v%d; the host has v%d", cg.Version, version)
	}
	if cg.MemoryLimitBytes != anatomyMemoryLimit || cg.PidsLimit != anatomyPidsLimit ||
		cg.CPUQuotaMicros != anatomyCPUQuota || cg.CPUPeriodMicros != anatomyCPUPeriod {
		t.Errorf("limits: memory %d, pids %d, cpu %d of %d µs; want %d, %d, %d of %d", cg.MemoryLimitBytes, cg.PidsLimit,
			cg.CPUQuotaMicros, cg.CPUPeriodMicros, anatomyMemoryLimit, anatomyPidsLimit, anatomyCPUQuota, anatomyCPUPeriod)
	}
	if cg.OOMKills != 0 || cg.Freezer != "thawed" || len(cg.Errors) > 0 {
		t.Errorf("cgroup: %d OOM kills, freezer %q, errors %q; want 0, thawed, none", cg.OOMKills, cg.Freezer, cg.Errors)
	}
}

// assertRoles checks that each pid is listed with its role.
func assertRoles(t *testing.T, procs []inspect.Process, roles map[int]string) {
	t.Helper()
	for pid, role := range roles {
		found := false
		for _, p := range procs {
			if p.PID == pid {
				found = true
				if p.Role != role {
					t.Errorf("process %d listed as %q, want %q", pid, p.Role, role)
				}
			}
		}
		if !found {
			t.Errorf("process %d (%s) not listed: %+v", pid, role, procs)
		}
	}
}

// assertOwnNamespaces checks the namespaces inspect reports against the
// container process's own links, and that it has new ones of these types.
func assertOwnNamespaces(t *testing.T, nss []inspect.Namespace, pid int, types ...string) {
	t.Helper()
	byType := map[string]inspect.Namespace{}
	for _, ns := range nss {
		byType[ns.Type] = ns
	}
	for _, kind := range types {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
		if err != nil {
			t.Fatal(err)
		}
		ns := byType[kind]
		if fmt.Sprintf("%s:[%d]", kind, ns.Container) != link || ns.Shared || ns.Container == ns.Host {
			t.Errorf("%s namespace: inspect says %+v; the container's link is %s, and it should differ from the host's", kind, ns, link)
		}
	}
}

// assertStdoutPipe checks that the shim holds the other end of the pipe on
// the container's stdout, and that inspect says so.
func assertStdoutPipe(t *testing.T, fds []inspect.Descriptor, pid int) {
	t.Helper()
	pipe, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if fd.Target == pipe && fd.Kind == "pipe" && strings.Contains(fd.Meaning, fmt.Sprintf("stdout of init (pid %d)", pid)) {
			return
		}
	}
	t.Errorf("no shim descriptor named as the stdout pipe %s of pid %d: %+v", pipe, pid, fds)
}

// assertStdoutFIFO checks that the client's stdout FIFO is among the shim's
// descriptors, named as this container's.
func assertStdoutFIFO(t *testing.T, fds []inspect.Descriptor, fifo string) {
	t.Helper()
	for _, fd := range fds {
		if fd.Target == fifo && fd.Kind == "fifo" && strings.Contains(fd.Meaning, "stdout FIFO of this container") {
			return
		}
	}
	t.Errorf("no shim descriptor named as the stdout FIFO %s: %+v", fifo, fds)
}

func inspectTerminal(t *testing.T, s *session) {
	container := s.newContainer(t, "console", []string{"sleep", "1000"}, withSpecOpts(oci.WithTTY))
	task, err := container.NewTask(s.ctx, cio.NewCreator(cio.WithStreams(nil, &syncBuffer{}, nil), cio.WithTerminal, cio.WithFIFODir(s.daemon.FIFODir)))
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	report := inspectReport(t, s, "console")
	tty, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", task.Pid()))
	if err != nil || !strings.HasPrefix(tty, "/dev/pts/") {
		t.Fatalf("the container's stdin is %q (%v), want a terminal", tty, err)
	}
	for _, fd := range report.Descriptors {
		if fd.Kind == "console" {
			return
		}
	}
	t.Errorf("no console master among the shim's descriptors: %+v", report.Descriptors)
}

func inspectUnknownID(t *testing.T, s *session) {
	r := s.daemon.Inspect(t, s.ns, "no-such-container")
	if r.ExitCode != 1 || !strings.Contains(string(r.Stderr), `no task "no-such-container" in namespace "`+s.ns+`"`) ||
		strings.Contains(string(r.Stderr), "goroutine") {
		t.Errorf("inspect of an unknown id: %s\nwant exit code 1 and a message naming it", r)
	}
}

// inspectDeadShim: with containerd stopped (it would clean up at once), the
// shim is killed; the container's process lives on without it, and inspect
// says the shim is not running.
func inspectDeadShim(t *testing.T, s *session) {
	container := s.newContainer(t, "orphan", []string{"sleep", "1000"})
	task, _ := s.startTask(t, container, &stdio{})
	pid := int(task.Pid())
	shimPID, err := harness.ParentPID(pid)
	if err != nil {
		t.Fatal(err)
	}
	s.daemon.Stop(t)
	defer s.daemon.Start(t) // it cleans up the dead shim's task
	if err := syscall.Kill(shimPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.AssertProcessGone(t, shimPID, "the killed shim")
	r := s.daemon.Inspect(t, s.ns, "orphan")
	stderr := string(r.Stderr)
	if r.ExitCode != 1 || !strings.Contains(stderr, "is not running") ||
		!strings.Contains(stderr, fmt.Sprintf("init process %d still runs", pid)) {
		t.Errorf("inspect after the shim was killed: %s\nwant exit code 1, \"is not running\" and that pid %d still runs", r, pid)
	}
	syscall.Kill(pid, syscall.SIGKILL) // nobody else would: its shim is gone
}

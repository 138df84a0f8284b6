package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
	"github.com/teach/containerd-shim-teach-v2/journal"
)

// The in-place upgrade (docs/upgrade.md): `containerd-shim-teach-v2 upgrade`
// replaces a running shim with another binary at the same pid. The stock
// shim has no such thing, so these tests run on our rows alone.

// upgradeVersion is the version of the second build the tests upgrade to;
// the first is the shim the daemons run.
const upgradeVersion = "9.9.9-upgrade-test"

// counterLoop prints 0, 1, 2… one line every 20 ms, for ever.
const counterLoop = `i=0; while true; do echo $i; i=$((i+1)); usleep 20000; done`

// faultVersion is the version of a build that fails once it has taken over
// (the tag teach_takeover_fault, shim/takeoverfault_injected.go).
const faultVersion = "9.9.9-takeover-fault"

// otherShim builds the shim a second time, with another version: the binary
// a shim is upgraded to, and back from.
func otherShim(t *testing.T) string { return buildShim(t, upgradeVersion, "") }

// faultyShim builds the shim with the tag that makes it fail after it took
// over: it passes `upgrade-check`, and then hands the state back.
func faultyShim(t *testing.T) string {
	return buildShim(t, faultVersion, "teach_takeover_fault")
}

// buildShim builds the shim once per version, with the build tags given.
func buildShim(t *testing.T, version, tags string) string {
	t.Helper()
	return harness.BuildOnce(t, "shim "+version, func() (string, error) {
		dir, err := harness.BuildFolder("shim-upgrade")
		if err != nil {
			return "", err
		}
		path := filepath.Join(dir, harness.TeachShimBinaryName)
		cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-o", path,
			"-ldflags", "-X github.com/teach/containerd-shim-teach-v2/version.Version="+version,
			"./cmd/containerd-shim-teach-v2")
		cmd.Dir = harness.RepoRoot(t)
		cmd.Env = harness.ShimBuildEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build the shim %s: %v\n%s", version, err, out)
		}
		return path, nil
	})
}

// upgradeResult is what one `upgrade` command printed.
type upgradeResult struct {
	code           int
	stdout, stderr string
}

// upgrade runs `containerd-shim-teach-v2 upgrade` as root would, for the
// session's namespace and the daemon's state folder.
func (s *session) upgrade(t *testing.T, binary string, args ...string) upgradeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"upgrade", "-n", s.ns, "--state", s.daemon.StateDir, "--binary", binary}, args...)
	cmd := exec.CommandContext(ctx, harness.ShimBinary(t), argv...)
	r := harness.RunCommand(t, ctx, cmd, nil)
	return upgradeResult{code: r.ExitCode, stdout: string(r.Stdout), stderr: string(r.Stderr)}
}

// mustUpgrade upgrades and returns the switch time the command reported.
func (s *session) mustUpgrade(t *testing.T, binary string, args ...string) time.Duration {
	t.Helper()
	r := s.upgrade(t, binary, args...)
	if r.code != 0 {
		t.Fatalf("upgrade to %s: exit %d\nstdout: %s\nstderr: %s", binary, r.code, r.stdout, r.stderr)
	}
	return switchTime(t, r.stdout)
}

var switchPattern = regexp.MustCompile(`\(switch ([^;]+);`)

func switchTime(t *testing.T, out string) time.Duration {
	t.Helper()
	m := switchPattern.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no switch time in %q", out)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// shimOf is the pid of the shim serving task: its parent.
func shimOf(t *testing.T, task client.Task) int {
	t.Helper()
	pid, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func shimExecutable(t *testing.T, pid int) string {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// realPath is the file a path names, as /proc/PID/exe shows it.
func realPath(t *testing.T, path string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

func reportSwitchTimes(t *testing.T, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	t.Logf("switch times over %d upgrades: median %s, worst %s", len(sorted), sorted[len(sorted)/2], sorted[len(sorted)-1])
}

// A container printing a counter every 20 ms to a FIFO the test reads is
// upgraded 10 times, to the other build and back: every line arrives
// exactly once, the shim keeps its pid, and the task runs on.
func TestUpgradeKeepsEveryLine(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		binaries := []string{otherShim(t), harness.ShimBinary(t)}
		const id = "counter"
		_, task, exitCh, out := startCounterOnFIFOs(t, s, id)
		shim := shimOf(t, task)
		var times []time.Duration
		for i := range 10 {
			binary := binaries[i%2]
			harness.Eventually(t, readyTimeout, "new lines before the upgrade", func() error {
				if out.bytes() < int64(20*(i+1)) {
					return fmt.Errorf("%d bytes so far", out.bytes())
				}
				return nil
			})
			times = append(times, s.mustUpgrade(t, binary, id))
			if got := shimOf(t, task); got != shim {
				t.Fatalf("after upgrade %d the container's parent is %d, not the shim %d", i+1, got, shim)
			}
			if exe, want := shimExecutable(t, shim), realPath(t, binary); exe != want {
				t.Fatalf("after upgrade %d the shim runs %s, not %s", i+1, exe, want)
			}
		}
		reportSwitchTimes(t, times)
		status, err := task.Status(s.ctx)
		if err != nil || status.Status != client.Running {
			t.Fatalf("after 10 upgrades: status %v, %v", status.Status, err)
		}
		if err := task.Kill(s.ctx, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case exit := <-exitCh:
			if exit.ExitCode() != 137 {
				t.Errorf("exit code %d after SIGKILL, want 137", exit.ExitCode())
			}
		case <-time.After(exitTimeout):
			t.Fatal("no exit after SIGKILL")
		}
		if err := out.waitEOF(exitTimeout); err != nil {
			t.Fatal(err)
		}
		checkCounter(t, string(out.stop()))
	})
}

// startCounterOnFIFOs starts a container that prints counterLoop to FIFOs
// the test reads, as containerd's client would, keeping what it read.
func startCounterOnFIFOs(t *testing.T, s *session, id string) (client.Container, client.Task, <-chan client.ExitStatus, *fifoReader) {
	t.Helper()
	container := s.newContainer(t, id, []string{"sh", "-c", counterLoop})
	fifos := newClientFIFOs(t, s, id)
	out := readFIFO(t, fifos.stdout, true, 0)
	readFIFO(t, fifos.stderr, false, 0)
	task, err := container.NewTask(s.ctx, fifos.creator())
	if err != nil {
		t.Fatal(err)
	}
	return container, task, started(t, s, task), out
}

// started starts p, a task or an exec, and returns its exit to come.
func started(t *testing.T, s *session, p client.Process) <-chan client.ExitStatus {
	t.Helper()
	exitCh, err := p.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	return exitCh
}

// startExec runs args as exec id in task.
func startExec(t *testing.T, s *session, container client.Container, task client.Task, id string, args ...string) (client.Process, <-chan client.ExitStatus) {
	t.Helper()
	p, err := task.Exec(s.ctx, id, execSpec(t, s, container, args...), cio.NewCreator())
	if err != nil {
		t.Fatal(err)
	}
	return p, started(t, s, p)
}

// checkCounter: the lines are 0, 1, 2… each exactly once, in order.
func checkCounter(t *testing.T, output string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(output, "\n"), "\n")
	for i, line := range lines {
		n, err := strconv.Atoi(line)
		if err != nil || n != i {
			t.Fatalf("line %d of %d is %q, want %d (around it: %q)", i, len(lines), line, i, lines[max(0, i-3):min(len(lines), i+3)])
		}
	}
	t.Logf("%d lines, each once", len(lines))
}

// An exec that runs across the upgrade reports its exit code through the new
// shim; an exec started after it runs too.
func TestUpgradeExecReportsExit(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const id = "execs"
		container, task, _ := s.runningTask(t, id)
		waiting, waitCh := startExec(t, s, container, task, "waiting", "sh", "-c", "while [ ! -e /tmp/go ]; do usleep 10000; done; exit 3")
		s.mustUpgrade(t, otherShim(t), id)
		_, touchCh := startExec(t, s, container, task, "touch", "touch", "/tmp/go")
		for name, ch := range map[string]<-chan client.ExitStatus{"touch": touchCh, "waiting": waitCh} {
			want := map[string]uint32{"touch": 0, "waiting": 3}[name]
			select {
			case exit := <-ch:
				if exit.ExitCode() != want {
					t.Errorf("exec %s exited %d, want %d", name, exit.ExitCode(), want)
				}
			case <-time.After(exitTimeout):
				t.Fatalf("no exit of exec %s", name)
			}
		}
		if _, err := waiting.Delete(s.ctx); err != nil {
			t.Error(err)
		}
		// The container's journal records the upgrade, and trace draws it.
		trace := s.trace(t, id)
		if !strings.Contains(trace.stdout, "shim upgraded in place") || !strings.Contains(trace.stdout, upgradeVersion) {
			t.Errorf("trace does not show the upgrade to %s:\n%s%s", upgradeVersion, trace.stdout, trace.stderr)
		}
		// The exec started before the upgrade and ended after it: its
		// ending says when it started, told by the binary before.
		var upgradedAt int64
		for _, e := range s.journalEntries(t, id) {
			switch {
			case e.Kind == journal.KindUpgrade && upgradedAt == 0:
				upgradedAt = e.Mono
			case e.Kind == journal.KindExit && e.Exec == "waiting":
				if e.End.Started == 0 || e.End.Started > upgradedAt || e.End.Created > e.End.Started {
					t.Errorf("the exec's ending: created %d, started %d, upgrade at %d; want it created and started before the upgrade", e.End.Created, e.End.Started, upgradedAt)
				}
			}
		}
	})
}

// A binary that cannot take over is refused before anything changes, with a
// message that says why, and the old shim goes on serving.
func TestUpgradeRefusesBadBinary(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const id = "refuser"
		container, task, _ := s.runningTask(t, id)
		shim := shimOf(t, task)
		before := shimExecutable(t, shim)
		notExecutable := filepath.Join(t.TempDir(), "not-executable")
		if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		trueBinary, err := exec.LookPath("true")
		if err != nil {
			t.Fatal(err)
		}
		for binary, want := range map[string]string{
			notExecutable: "is not an executable file",
			trueBinary:    "is not a teach shim",
		} {
			r := s.upgrade(t, binary, id)
			if r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("upgrade to %s: exit %d, stderr %q; want non-zero and %q", binary, r.code, r.stderr, want)
			}
		}
		if exe := shimExecutable(t, shim); exe != before {
			t.Errorf("the shim runs %s after refusals, not %s", exe, before)
		}
		_, ch := startExec(t, s, container, task, "after", "true")
		if exit := <-ch; exit.ExitCode() != 0 {
			t.Errorf("exec after the refusals exited %d", exit.ExitCode())
		}
	})
}

// containerd killed and started again right after an upgrade finds the task
// still running, served by the upgraded shim.
func TestUpgradeThenContainerdRestart(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const id = "survivor"
		_, task, _ := s.runningTask(t, id)
		s.mustUpgrade(t, otherShim(t), id)
		s.daemon.Kill(t)
		s.daemon.Start(t)
		loaded, err := s.daemon.Client().LoadContainer(s.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		again, err := loaded.Task(s.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		status, err := again.Status(s.ctx)
		if err != nil || status.Status != client.Running {
			t.Fatalf("after containerd's restart: status %v, %v", status.Status, err)
		}
		if again.Pid() != task.Pid() {
			t.Errorf("task pid %d after the restart, was %d", again.Pid(), task.Pid())
		}
	})
}

// `upgrade --all` upgrades every shim of the namespace once, 20 shims: a
// group of 10 containers in one shim, a counter logging to a file://, and
// 18 sleepers.
// Upgraded there and back, the group's members each exit with their own
// code, and the log file holds every line exactly once.
func TestUpgradeAllGroupAndLogFile(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const members = 10
		var group []groupMember
		for i := range members {
			id := fmt.Sprintf("member-%d", i)
			container, err := newGroupMember(t, s, "upgraded", id, 10+i)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { removeContainer(s.ctx, container) })
			streams := &stdio{}
			task, exitCh := s.startTask(t, container, streams)
			waitForOutput(t, streams, id+"\n")
			group = append(group, groupMember{id: id, task: task, exitCh: exitCh, streams: streams})
		}
		logFile := filepath.Join(t.TempDir(), "counter.log")
		logged := s.newContainer(t, "logged", []string{"sh", "-c", counterLoop})
		loggedTask, err := logged.NewTask(s.ctx, cio.LogFile(logFile))
		if err != nil {
			t.Fatal(err)
		}
		loggedExit := started(t, s, loggedTask)
		const sleepers = 18
		for i := range sleepers {
			s.runningTask(t, fmt.Sprintf("sleeper-%d", i))
		}
		groupShim := shimOf(t, group[0].task)

		for _, binary := range []string{otherShim(t), harness.ShimBinary(t)} {
			r := s.upgrade(t, binary, "--all")
			if r.code != 0 {
				t.Fatalf("upgrade --all to %s: exit %d\nstdout: %s\nstderr: %s", binary, r.code, r.stdout, r.stderr)
			}
			if n := strings.Count(r.stdout, "switch"); n != 2+sleepers {
				t.Errorf("upgrade --all reported %d shims upgraded, want %d (the group once):\n%s", n, 2+sleepers, r.stdout)
			}
		}
		for _, m := range group {
			if shim := shimOf(t, m.task); shim != groupShim {
				t.Errorf("%s's parent is %d, not the group's shim %d", m.id, shim, groupShim)
			}
		}
		for i, m := range group {
			if err := m.task.Kill(s.ctx, unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := exitCodeOf(t, m.exitCh); code != uint32(10+i) {
				t.Errorf("%s: exit code %d, want %d", m.id, code, 10+i)
			}
		}
		if err := loggedTask.Kill(s.ctx, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		exitCodeOf(t, loggedExit)
		if _, err := loggedTask.Delete(s.ctx); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		checkCounter(t, string(data))
	})
}

// 50 upgrades leave the shim with as many descriptors and goroutines as
// it had after the first, and its memory grown by no more than noise. Each
// execve starts the binary's memory afresh; what could grow is what the
// process keeps across it, or what a new binary takes on for each upgrade
// it came through (a state it reads again, the journal it continues). The
// bound is on anonymous memory (heap, stacks): private and PSS are logged,
// but they move with the other processes that run the same binary file,
// whose pages are private to a shim while it alone runs it. The bound is
// about leaks, not speed: it holds on any machine.
func TestUpgradeLeavesNoGrowth(t *testing.T) {
	const upgrades = 50
	const memoryGrowthLimit = 2 << 20
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const id = "steady"
		container, task, _ := s.runningTask(t, id)
		sleepingExec(t, s, container, task, "sleeper")
		shim := shimOf(t, task)
		binaries := []string{otherShim(t), harness.ShimBinary(t)}
		s.mustUpgrade(t, binaries[0], id)
		s.mustUpgrade(t, binaries[1], id)
		fds, goroutines := shimFootprint(t, s, shim)
		before := shimMemory(t, shim)
		var times []time.Duration
		for i := range upgrades {
			times = append(times, s.mustUpgrade(t, binaries[i%2], id))
		}
		reportSwitchTimes(t, times)
		// The connections of the last upgrade command may still be open
		// (the shim closes one when it reads its end), in either count.
		harness.Eventually(t, readyTimeout, "the shim's descriptors and goroutines no more than before", func() error {
			nowFds, nowGoroutines := shimFootprint(t, s, shim)
			if nowFds > fds || nowGoroutines > goroutines {
				return fmt.Errorf("after %d more upgrades: %d descriptors (was %d), %d goroutines (was %d)", upgrades, nowFds, fds, nowGoroutines, goroutines)
			}
			return nil
		})
		after := shimMemory(t, shim)
		t.Logf("shim memory before %d upgrades: private %s, PSS %s, anonymous %s; after: private %s, PSS %s, anonymous %s",
			upgrades, mib(before.Private), mib(before.Pss), mib(before.Anonymous), mib(after.Private), mib(after.Pss), mib(after.Anonymous))
		if grown := after.Anonymous - before.Anonymous; grown > memoryGrowthLimit {
			t.Errorf("the shim's anonymous memory grew by %s over %d upgrades, more than %s", mib(grown), upgrades, mib(memoryGrowthLimit))
		}
	})
}

func shimMemory(t *testing.T, pid int) harness.Memory {
	t.Helper()
	m, err := harness.ReadMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mib(bytes int64) string { return fmt.Sprintf("%.2f MiB", float64(bytes)/(1<<20)) }

// shimFootprint counts the shim's open descriptors and goroutines.
func shimFootprint(t *testing.T, s *session, pid int) (fds, goroutines int) {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	goroutines, _, err = s.daemon.ShimGoroutines(pid)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries), goroutines
}

// Docker with live-restore: a container whose shim was upgraded (three
// times) goes on as before for Docker: docker exec works, docker logs has
// every line once, and a dockerd restart finds it running.
func TestUpgradeUnderDocker(t *testing.T) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			harness.ShimBinary(t)
			binaries := []string{otherShim(t), harness.ShimBinary(t)}
			d := harness.StartContainerd(t, release.Version)
			dd := harness.StartDockerd(t, d, harness.TeachDaemonJSON(t))
			dd.LoadBusybox(t)
			id := dd.MustDocker(t, "run", "--runtime", "teach", "--network", "none", "-d", harness.DockerBusybox,
				"sh", "-c", counterLoop)
			t.Cleanup(func() { dd.Docker(t, "rm", "--force", id) })
			s := &session{daemon: d, ns: dd.Namespace}
			for i := range 3 {
				s.mustUpgrade(t, binaries[i%2], id)
			}
			if out := dd.MustDocker(t, "exec", id, "echo", "still-here"); out != "still-here" {
				t.Errorf("docker exec after the upgrades printed %q", out)
			}
			logged := func() int { return strings.Count(string(dd.Docker(t, "logs", id).Stdout), "\n") }
			before := logged()
			dd.Restart(t)
			if state := dd.MustDocker(t, "inspect", "--format", "{{.State.Status}}", id); state != "running" {
				t.Fatalf("after the upgrades and a dockerd restart: %s", state)
			}
			harness.Eventually(t, readyTimeout, "new lines in docker logs after the restart", func() error {
				if n := logged(); n < before+10 {
					return fmt.Errorf("%d lines, %d before the restart", n, before)
				}
				return nil
			})
			dd.MustDocker(t, "kill", id)
			dd.MustDocker(t, "wait", id)
			checkCounter(t, string(dd.Docker(t, "logs", id).Stdout))
		})
	}
}

// An upgrade whose freeze finds a request that does not end (a runc exec
// that hangs) is called off: the command says which request, and the shim
// goes on serving, the hung Start included, once its runc returns.
func TestUpgradeCalledOffByAStuckRequest(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		runc := harness.HangingExecRunc(t, hangMarker)
		const id = "stuck"
		container := s.newContainer(t, id, []string{"sleep", "1000"},
			client.WithRuntime(s.runtime, &options.Options{BinaryName: runc.Path}))
		task, _ := s.startTask(t, container, &stdio{})
		shim := shimOf(t, task)
		before := shimExecutable(t, shim)
		_, slowStarted := startExecInBackground(t, s, container, task, "slow", "sleep 1000 # "+hangMarker)
		runc.WaitHung(t, readyTimeout)

		r := s.upgrade(t, otherShim(t), id)
		if r.code == 0 || !strings.Contains(r.stderr, "still under way") || !strings.Contains(r.stderr, "Start") {
			t.Errorf("upgrade while a Start hangs: exit %d, stderr %q; want it called off, naming Start", r.code, r.stderr)
		}
		if exe := shimExecutable(t, shim); exe != before {
			t.Errorf("the shim runs %s after an upgrade called off, not %s", exe, before)
		}
		runc.Release()
		if err := <-slowStarted; err != nil {
			t.Fatalf("the exec whose runc hung during the upgrade: %v", err)
		}
		if _, ch := startExec(t, s, container, task, "after", "true"); (<-ch).ExitCode() != 0 {
			t.Error("an exec after the upgrade was called off did not exit 0")
		}
	})
}

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The journal and `containerd-shim-teach-v2 trace`: after a container's
// life, trace tells it as a timeline, with the runc commands the shim ran
// and how each process ended. Only our shim keeps a journal, so these run
// once per containerd release, with our runtime.

// forEachDaemonWithOurShim runs test once per pinned containerd release,
// with our runtime only.
func forEachDaemonWithOurShim(t *testing.T, test func(t *testing.T, s *session)) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			daemon := harness.StartContainerd(t, release.Version)
			test(t, newSession(t, daemon, runtimeRows[0]))
		})
	}
}

// traceResult is what one run of `trace` printed.
type traceResult struct {
	code           int
	stdout, stderr string
}

// trace runs `containerd-shim-teach-v2 trace` as a user would, naming the
// test daemon's state folder.
func (s *session) trace(t *testing.T, args ...string) traceResult {
	t.Helper()
	return traceOf(t, s.daemon, s.ns, args...)
}

// traceOf runs trace on a container of daemon d, in namespace.
func traceOf(t *testing.T, d *harness.Containerd, namespace string, args ...string) traceResult {
	t.Helper()
	args = append([]string{"trace", "-n", namespace, "--state", d.StateDir}, args...)
	cmd := exec.Command(harness.ShimBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	result := traceResult{stdout: stdout.String(), stderr: stderr.String()}
	if exitErr, ok := err.(*exec.ExitError); ok {
		result.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run trace: %v", err)
	}
	if strings.Contains(result.stderr, "goroutine ") || strings.Contains(result.stderr, "panic:") {
		t.Fatalf("trace crashed:\n%s", result.stderr)
	}
	return result
}

// inOrder checks that each pattern matches a line of text, each one after
// the line the one before matched.
func inOrder(t *testing.T, text string, patterns ...string) {
	t.Helper()
	lines := strings.Split(text, "\n")
	at := 0
	for _, pattern := range patterns {
		re := regexp.MustCompile(pattern)
		for at < len(lines) && !re.MatchString(lines[at]) {
			at++
		}
		if at == len(lines) {
			t.Fatalf("trace has no line matching %q after the steps before it:\n%s", pattern, text)
		}
		at++
	}
}

func TestTraceTellsTheWholeLifecycle(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		container, task, exitCh := s.runningTask(t, "traced")
		result, err := runExec(s, task, "hello", execSpec(t, s, container, "echo", "hello"), "")
		if err != nil || result.code != 0 || result.stdout != "hello\n" {
			t.Fatalf("exec: %+v, %v", result, err)
		}
		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := exitCodeOf(t, exitCh); code != 137 {
			t.Fatalf("exit code %d, want 137", code)
		}
		deleteTask(t, s.ctx, task, 137)

		got := s.trace(t, "traced")
		if got.code != 0 {
			t.Fatalf("trace exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", got.code, got.stdout, got.stderr)
		}
		t.Logf("trace:\n%s", got.stdout)
		inOrder(t, got.stdout,
			`├─+▶│.*  Create$`,
			`mount \S+ .* on .*/traced/rootfs`,
			`open stdout fifo `,
			`runc create \(pid \d+\) → exit 0`,
			`\$ runc .*--root \S+ .*create .*--bundle \S+/traced .*traced$`,
			`event /tasks/create`,
			`Create → ok, pid \d+`,
			`runc start \(pid \d+\) → exit 0`,
			`event /tasks/start`,
			`\[exec hello\] Exec$`,
			`\[exec hello\] runc exec \(pid \d+\) → exit 0`,
			`\$ runc .* exec .*traced$`,
			`\[exec hello\] event /tasks/exec-started`,
			`exec hello \(pid \d+\) exited with status 0 by itself; .* stdout 6 B`,
			`\[exec hello\] event /tasks/exit`,
			`├─+▶│.*  Kill$`,
			`SIGKILL to pid \d+ \(Kill request\)`,
			// The signal goes through the init's pidfd where runc sent
			// one (runc 1.2+), else through runc kill.
			`SIGKILL to pid \d+ \(sent with pidfd_send_signal|\$ runc .* kill traced 9$`,
			`◀─+┤ .*pid \d+ exited, status 137`,
			`init \(pid \d+\) killed by SIGKILL \(status 137\): Kill request from containerd at \+\d+\.\d+s`,
			`event /tasks/exit`,
			`├─+▶│.*  Delete$`,
			`runc delete \(pid \d+\) → exit 0`,
			`unmount .*/traced/rootfs`,
			`event /tasks/delete`,
			`Delete → ok`,
			`container deleted; journal closed`,
			`^how each process ended:`,
			`exec hello .* exited with status 0 by itself`,
			`init .* killed by SIGKILL \(status 137\): Kill request from containerd`,
		)

		// echo may exit before runc exec returns: its exit is in the
		// timeline, but not necessarily after the exec's start.
		inOrder(t, got.stdout, `\[exec hello\] runc exec \(pid \d+\)`, `\[exec hello\] pid \d+ exited, status 0`)
		assertReapedOnce(t, got.stdout, "hello")

		raw := s.trace(t, "traced", "--json")
		if raw.code != 0 {
			t.Fatalf("trace --json: exit %d: %s", raw.code, raw.stderr)
		}
		kinds := journalKinds(t, raw.stdout)
		if kinds[0] != "journal" || kinds[len(kinds)-1] != "closed" {
			t.Fatalf("journal lines run from %q to %q, want journal … closed", kinds[0], kinds[len(kinds)-1])
		}

		unknown := s.trace(t, "nosuch")
		if unknown.code != 1 || !strings.Contains(unknown.stderr, `no journal for container "nosuch" in namespace "`+s.ns+`"`) {
			t.Fatalf("unknown id: exit %d, stderr %q; want 1 and a message naming the container", unknown.code, unknown.stderr)
		}
	})
}

// assertReapedOnce checks that the timeline tells the reaping of an exec's
// process once, as the exec's, whether it exited before runc exec returned
// (then the line says so) or after.
func assertReapedOnce(t *testing.T, timeline, exec string) {
	t.Helper()
	started := regexp.MustCompile(`\[exec ` + exec + `\] Start → ok, pid (\d+)`).FindStringSubmatch(timeline)
	if started == nil {
		t.Fatalf("trace has no answer to exec %s's Start:\n%s", exec, timeline)
	}
	reaped := regexp.MustCompile(`(?m)  (\[exec \S+\] )?pid `+started[1]+` exited, status .*$`).FindAllString(timeline, -1)
	if len(reaped) != 1 || !strings.HasPrefix(reaped[0], "  [exec "+exec+"] ") {
		t.Fatalf("the exit of exec %s (pid %s) is told %d times: %q; want once, as the exec's", exec, started[1], len(reaped), reaped)
	}
}

// journalKinds reads the kinds of raw journal lines, failing on a line that
// is not one.
func journalKinds(t *testing.T, raw string) []string {
	t.Helper()
	var kinds []string
	scanner := bufio.NewScanner(strings.NewReader(raw))
	for scanner.Scan() {
		var line struct{ Kind string }
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil || line.Kind == "" {
			t.Fatalf("not a journal line: %q (%v)", scanner.Text(), err)
		}
		kinds = append(kinds, line.Kind)
	}
	if len(kinds) == 0 {
		t.Fatal("trace --json printed nothing")
	}
	return kinds
}

// A shim killed with SIGKILL writes nothing more; its journal still tells
// the story up to there, and trace says the shim died.
func TestTraceAfterTheShimWasKilled(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		afterKill, afterCleanup := traceAKilledShim(t, s)
		t.Logf("trace after the kill:\n%s%s", afterKill.stdout, afterKill.stderr)
		t.Logf("trace after containerd's cleanup:\n%s%s", afterCleanup.stdout, afterCleanup.stderr)
	})
}

// traceAKilledShim kills the shim of a running container "orphaned" and
// runs trace on it twice: once the shim died, and once containerd's delete
// action cleaned up after it. It checks both.
func traceAKilledShim(t *testing.T, s *session) (afterKill, afterCleanup traceResult) {
	_, task, exitCh := s.runningTask(t, "orphaned")
	shimPid := journalShimPid(t, s, "orphaned")
	if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the shim (pid %d): %v", shimPid, err)
	}
	waitDead(t, shimPid)
	afterKill = s.trace(t, "orphaned")
	if afterKill.code != 3 || !strings.Contains(afterKill.stderr, fmt.Sprintf("the shim (pid %d)", shimPid)) {
		t.Fatalf("trace: exit %d, stderr %q; want 3 and the dead shim named", afterKill.code, afterKill.stderr)
	}
	inOrder(t, afterKill.stdout, `Create → ok`, `Start → ok`)

	// containerd notices, and runs the delete action, which adds its
	// cleanup to the journal. (Wait answers with the exit, or with the
	// error of the lost connection.)
	select {
	case <-exitCh:
	case <-time.After(exitTimeout):
		t.Fatal("Wait never answered after the shim was killed")
	}
	task.Delete(s.ctx)
	deadline := time.Now().Add(exitTimeout)
	for {
		afterCleanup = s.trace(t, "orphaned")
		if strings.Contains(afterCleanup.stdout, "unmount ") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if afterCleanup.code != 3 || !strings.Contains(afterCleanup.stderr, "containerd cleaned up after it") {
		t.Fatalf("trace after cleanup: exit %d, stderr %q\n%s", afterCleanup.code, afterCleanup.stderr, afterCleanup.stdout)
	}
	inOrder(t, afterCleanup.stdout, `Start → ok`, `containerd ran the delete action`, `runc delete \(pid \d+\) → exit 0`,
		`\$ runc .* delete --force orphaned$`, `unmount .*/orphaned/rootfs`)
	return afterKill, afterCleanup
}

// waitDead waits until pid has died: it is gone, or a zombie waiting for
// its parent.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(exitTimeout)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		// The state follows the command name, which is in parentheses.
		if fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(fields) > 0 && fields[0] == "Z" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d still alive after SIGKILL", pid)
}

// journalShimPid reads the shim's pid from the journal's first line.
func journalShimPid(t *testing.T, s *session, id string) int {
	t.Helper()
	raw := s.trace(t, id, "--json")
	first, _, _ := strings.Cut(raw.stdout, "\n")
	var line struct {
		Kind string
		Pid  int
	}
	if err := json.Unmarshal([]byte(first), &line); err != nil || line.Kind != "journal" || line.Pid == 0 {
		t.Fatalf("journal's first line %q (%v): want the shim's pid", first, err)
	}
	return line.Pid
}

func TestTraceNamesTheOOMKiller(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		got := traceAnOOMKill(t, s)
		t.Logf("trace:\n%s", got.stdout)
	})
}

// traceAnOOMKill runs a container "oom-traced" that the kernel's OOM killer
// kills, and checks what trace says of it.
func traceAnOOMKill(t *testing.T, s *session) traceResult {
	// dd reads into one 64 MiB buffer: past the 32 MiB limit, the kernel's
	// OOM killer kills it.
	container := s.newContainer(t, "oom-traced", []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"},
		withSpecOpts(oci.WithMemoryLimit(32<<20)))
	task, exitCh := s.startTask(t, container, &stdio{})
	if code := exitCodeOf(t, exitCh); code != 137 {
		t.Fatalf("exit code %d, want 137 (killed by the OOM killer)", code)
	}
	deleteTask(t, s.ctx, task, 137)
	got := s.trace(t, "oom-traced")
	if got.code != 0 {
		t.Fatalf("trace: exit %d\n%s", got.code, got.stderr)
	}
	counter := `memory\.oom_control`
	if onCgroupV2() {
		counter = `memory\.events`
	}
	inOrder(t, got.stdout,
		`OOM kill: .* \(counted by oom_kill in /sys/fs/cgroup/\S*/oom-traced/`+counter+`\)`,
		`event /tasks/oom`,
		`init \(pid \d+\) killed by SIGKILL \(status 137\): the kernel's OOM killer`,
		`event /tasks/exit`,
	)
	return got
}

// runc pause exiting 0 says runc is done; the journal also notes what the
// kernel says of the freezer then: on cgroup v2 "frozen 1" in the
// container's cgroup.events, on v1 FROZEN in freezer.state. The stock shim
// keeps no journal: TestPauseAndResume reads the same files for both.
func TestTraceShowsTheFreeze(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		_, task, exitCh := s.runningTask(t, "frozen")
		if err := task.Pause(s.ctx); err != nil {
			t.Fatal(err)
		}
		if err := task.Resume(s.ctx); err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deleteTask(t, s.ctx, task, exitCodeOf(t, exitCh))
		got := s.trace(t, "frozen")
		if got.code != 0 {
			t.Fatalf("trace: exit %d\n%s", got.code, got.stderr)
		}
		t.Logf("trace:\n%s", got.stdout)
		frozen, thawed := `FROZEN in /sys/fs/cgroup/freezer/\S*/frozen/freezer\.state$`, `THAWED in /sys/fs/cgroup/freezer/\S*/frozen/freezer\.state$`
		if onCgroupV2() {
			frozen, thawed = `frozen 1 in /sys/fs/cgroup/\S*/frozen/cgroup\.events$`, `frozen 0 in /sys/fs/cgroup/\S*/frozen/cgroup\.events$`
		}
		inOrder(t, got.stdout,
			`  Pause$`, `runc pause \(pid \d+\) → exit 0`, `cgroup after pause: `+frozen, `event /tasks/paused`,
			`  Resume$`, `runc resume \(pid \d+\) → exit 0`, `cgroup after resume: `+thawed, `event /tasks/resumed`,
		)
	})
}

// The annotation turns the journal off for one container; the runtime
// options table sets it for the runtime.
func TestJournalLevelFromTheAnnotation(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		quiet := s.newContainer(t, "quiet", []string{"true"},
			withSpecOpts(oci.WithAnnotations(map[string]string{"io.containerd.teach.v2.journal": "off"})))
		task, exitCh := s.startTask(t, quiet, &stdio{})
		exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, 0)
		if got := s.trace(t, "quiet"); got.code != 1 || !strings.Contains(got.stderr, "no journal") {
			t.Fatalf("journal off: trace exit %d, %q", got.code, got.stderr)
		}

		chatty := s.newContainer(t, "chatty", []string{"echo", "four"},
			withSpecOpts(oci.WithAnnotations(map[string]string{"io.containerd.teach.v2.journal": "debug"})))
		task, exitCh = s.startTask(t, chatty, &stdio{})
		exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, 0)
		got := s.trace(t, "chatty")
		if got.code != 0 {
			t.Fatalf("trace: exit %d: %s", got.code, got.stderr)
		}
		inOrder(t, got.stdout, `journal level debug`, `open stdout pipe \(fd \d+\)`, `close stdout .* after 5 B`)

		bad := s.newContainer(t, "bad-level", []string{"true"},
			withSpecOpts(oci.WithAnnotations(map[string]string{"io.containerd.teach.v2.journal": "loud"})))
		if _, err := s.createTask(bad, &stdio{}); err == nil || !strings.Contains(err.Error(), "off, info or debug") {
			t.Fatalf("an unknown level: %v; want the levels named", err)
		}
	})
}

// trace --follow draws a running container's story as it happens, and
// ends, with status 0, once the container is deleted.
func TestTraceFollowsALiveContainer(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		_, task, exitCh := s.runningTask(t, "followed")
		cmd := exec.CommandContext(s.ctx, harness.ShimBinary(t), "trace", "-n", s.ns, "--state", s.daemon.StateDir, "followed", "--follow")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			scanner := bufio.NewScanner(stdout)
			for scanner.Scan() {
				lines <- scanner.Text()
			}
		}()
		var seen strings.Builder
		// awaitLine reads what trace drew until a line matches.
		awaitLine := func(pattern string) {
			t.Helper()
			re := regexp.MustCompile(pattern)
			timeout := time.After(exitTimeout)
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("trace --follow ended before a line matching %q:\n%s%s", pattern, seen.String(), stderr.String())
					}
					seen.WriteString(line + "\n")
					if re.MatchString(line) {
						return
					}
				case <-timeout:
					t.Fatalf("trace --follow drew no line matching %q:\n%s", pattern, seen.String())
				}
			}
		}
		awaitLine(`Start → ok, pid \d+`)

		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := exitCodeOf(t, exitCh); code != 137 {
			t.Fatalf("exit code %d, want 137", code)
		}
		awaitLine(`init \(pid \d+\) killed by SIGKILL \(status 137\): Kill request from containerd`)
		deleteTask(t, s.ctx, task, 137)
		awaitLine(`container deleted; journal closed`)
		awaitLine(`^how each process ended:`)
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("trace --follow after the container's deletion: %v\n%s%s", err, seen.String(), stderr.String())
		}
		t.Logf("trace --follow drew:\n%s", seen.String())
	})
}

// The runtime's options table in containerd's config sets the journal
// level for every container of the runtime (the annotation still wins):
//
//	[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.quiet.options]
//	  Journal = "off"
//
// The CRI plugin hands the table to the shim as TOML; a pod's sandbox is a
// container of the handler's runtime.
func TestJournalLevelFromTheRuntimeOptions(t *testing.T) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			harness.ShimBinary(t)
			handlers := []harness.RuntimeHandler{
				{Name: "teach-journal-off", RuntimeType: harness.TeachRuntime, Options: map[string]string{"Journal": "off"}},
				{Name: "teach-journal-debug", RuntimeType: harness.TeachRuntime, Options: map[string]string{"Journal": "debug"}},
			}
			d := harness.StartContainerdWith(t, release.Version, harness.Options{CRI: true, RuntimeHandlers: handlers})
			for _, level := range []string{"off", "debug"} {
				config := d.NewPodConfig(t, "journal-"+level)
				pod := d.MustCrictl(t, "runp", "--runtime", "teach-journal-"+level, harness.WriteJSON(t, filepath.Join(t.TempDir(), "pod.json"), config))
				got := traceOf(t, d, harness.CRINamespace, pod)
				t.Logf("trace of the %s pod:\n%s%s", level, got.stdout, got.stderr)
				switch level {
				case "off":
					if got.code != 1 || !strings.Contains(got.stderr, "no journal") {
						t.Errorf("Journal = \"off\": trace exit %d, %q; want 1 and no journal", got.code, got.stderr)
					}
				case "debug":
					if got.code != 0 {
						t.Fatalf("Journal = \"debug\": trace exit %d: %s", got.code, got.stderr)
					}
					// The journal's opening line names its level; the
					// default would be info. (What debug adds, the
					// descriptors of the streams, a sandbox has none
					// of: its stdio is /dev/null.)
					inOrder(t, got.stdout, `^shim pid \d+ .*, journal level debug$`, `Create$`, `Create → ok`, `Start → ok`)
				}
				d.MustCrictl(t, "rmp", "--force", pod)
			}
		})
	}
}

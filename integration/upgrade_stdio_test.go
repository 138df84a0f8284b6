package integration

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
	"github.com/teach/containerd-shim-teach-v2/journal"
)

// What a container holds besides pipes, across in-place upgrades: a
// terminal, a logging program, a container not yet started. And an upgrade
// whose new binary fails once it has taken over.

// upgradeBackAndForth upgrades the shim of task n times, to the other build
// and back, each time once wait says the container has gone on; the shim
// keeps its pid.
func upgradeBackAndForth(t *testing.T, s *session, task client.Task, n int, wait func(upgrade int)) {
	t.Helper()
	binaries := []string{otherShim(t), harness.ShimBinary(t)}
	shim := shimOf(t, task)
	for i := range n {
		wait(i)
		s.mustUpgrade(t, binaries[i%2], task.ID())
		if got := shimOf(t, task); got != shim {
			t.Fatalf("after upgrade %d the container's parent is %d, not the shim %d", i+1, got, shim)
		}
	}
}

// A container on a terminal that prints a counter, and an exec on a
// terminal of its own, upgraded six times: every line arrives once; what
// is typed after the upgrades reaches both; a resize after them is what
// `stty size` says in each; and their exit codes are reported.
func TestUpgradeTerminal(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const id = "tty-counter"
		// The shell reads what is typed while a subshell counts. Echo is
		// off, so that only what the shells print is in the output.
		script := "stty -echo; (" + counterLoop + ") & " +
			"while read line; do case $line in size) stty size;; exit) kill $!; exit 7;; *) echo got:$line;; esac; done"
		container := s.newContainer(t, id, []string{"sh", "-c", script}, withSpecOpts(oci.WithTTY))
		initTerm := newTypist()
		task, err := container.NewTask(s.ctx, cio.NewCreator(cio.WithStreams(initTerm.stdin, &initTerm.out, nil), cio.WithTerminal))
		if err != nil {
			t.Fatal(err)
		}
		exitCh := started(t, s, task)

		spec := execSpec(t, s, container, "sh", "-c",
			"stty -echo; while read line; do case $line in size) stty size;; exit) exit 5;; *) echo exec-got:$line;; esac; done")
		spec.Terminal = true
		execTerm := newTypist()
		exec, err := task.Exec(s.ctx, "tty-exec", spec, cio.NewCreator(cio.WithStreams(execTerm.stdin, &execTerm.out, nil), cio.WithTerminal))
		if err != nil {
			t.Fatal(err)
		}
		execExit := started(t, s, exec)
		execTerm.typeAndSee(t, "before", "exec-got:before")

		upgradeBackAndForth(t, s, task, 6, func(i int) {
			harness.Eventually(t, readyTimeout, "new lines before the upgrade", func() error {
				if n := len(counterLines(initTerm.out.String())); n < 10*(i+1) {
					return fmt.Errorf("%d lines so far", n)
				}
				return nil
			})
		})

		initTerm.typeAndSee(t, "hello", "got:hello")
		execTerm.typeAndSee(t, "hello", "exec-got:hello")
		if err := task.Resize(s.ctx, 120, 40); err != nil {
			t.Fatal(err)
		}
		initTerm.typeAndSee(t, "size", "40 120")
		if err := exec.Resize(s.ctx, 100, 30); err != nil {
			t.Fatal(err)
		}
		execTerm.typeAndSee(t, "size", "30 100")

		execTerm.typeLine(t, "exit")
		if code := exitCodeOf(t, execExit); code != 5 {
			t.Errorf("the terminal exec exited %d, want 5", code)
		}
		if _, err := exec.Delete(s.ctx); err != nil {
			t.Error(err)
		}
		initTerm.typeLine(t, "exit")
		code := exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, code)
		if code != 7 {
			t.Errorf("the terminal container exited %d, want 7", code)
		}
		lines := counterLines(initTerm.out.String())
		for i, n := range lines {
			if n != i {
				t.Fatalf("counter line %d of %d is %d (around it: %v)", i, len(lines), n, lines[max(0, i-3):min(len(lines), i+3)])
			}
		}
		t.Logf("%d counter lines, each once", len(lines))
	})
}

// typist is a client at a terminal: what it types goes to the process's
// stdin, and what the terminal shows comes back in out.
type typist struct {
	stdin *io.PipeReader
	typed *io.PipeWriter
	out   syncBuffer
}

func newTypist() *typist {
	r, w := io.Pipe()
	return &typist{stdin: r, typed: w}
}

func (p *typist) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.typed, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// typeAndSee types line and waits for the terminal to show want, on a line
// of its own.
func (p *typist) typeAndSee(t *testing.T, line, want string) {
	t.Helper()
	p.typeLine(t, line)
	harness.Eventually(t, readyTimeout, "the terminal to show "+want, func() error {
		if !strings.Contains(p.out.String(), "\n"+want+"\r\n") && !strings.HasPrefix(p.out.String(), want+"\r\n") {
			return fmt.Errorf("it shows %q", lastBytes(p.out.String(), 200))
		}
		return nil
	})
}

func lastBytes(s string, n int) string {
	return s[max(0, len(s)-n):]
}

// counterLines are the numbers a terminal showed, one a line; the other
// lines ("got:hello", "40 120") and the last, not ended yet, are left out.
func counterLines(output string) []int {
	var numbers []int
	lines := strings.Split(output, "\n")
	for _, line := range lines[:len(lines)-1] {
		if n, err := strconv.Atoi(strings.TrimSuffix(line, "\r")); err == nil {
			numbers = append(numbers, n)
		}
	}
	return numbers
}

// A container whose output goes to a logging program (binary://), upgraded
// six times: the program, a child of the shim, is handed over with the
// container. It receives every line once; when the container dies it
// exits, and the shim reaps it as its own: the journal names no exit of it
// that no process claimed, and no zombie is left of it.
func TestUpgradeLoggingProgram(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const id = "logged-counter"
		logFile := filepath.Join(t.TempDir(), "container.log")
		uri, err := url.Parse("binary://" + testLogger(t) + "?file=" + logFile)
		if err != nil {
			t.Fatal(err)
		}
		container := s.newContainer(t, id, []string{"sh", "-c", counterLoop})
		task, err := container.NewTask(s.ctx, cio.LogURI(uri))
		if err != nil {
			t.Fatal(err)
		}
		exitCh := started(t, s, task)
		shim := shimOf(t, task)
		logger := childRunning(t, shim, testLogger(t))
		logged := func() string {
			data, _ := os.ReadFile(logFile)
			return string(data)
		}
		upgradeBackAndForth(t, s, task, 6, func(i int) {
			harness.Eventually(t, readyTimeout, "new lines logged before the upgrade", func() error {
				if n := strings.Count(logged(), "\n"); n < 10*(i+1) {
					return fmt.Errorf("%d lines so far", n)
				}
				return nil
			})
		})
		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		code := exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, code)
		if process, err := harness.ReadProcess(logger); err == nil && process.PPID == shim && process.IsZombie() {
			t.Errorf("the logging program (pid %d) is a zombie of the shim after Delete", logger)
		}
		for _, e := range s.journalEntries(t, id) {
			if e.Kind == journal.KindReaped && e.Pid == logger {
				t.Errorf("the logging program's exit was reaped as no process's: %+v", e)
			}
		}
		var numbers []string
		for _, line := range strings.Split(strings.TrimSuffix(logged(), "\n"), "\n") {
			numbers = append(numbers, strings.TrimPrefix(line, "stdout: "))
		}
		checkCounter(t, strings.Join(numbers, "\n")+"\n")
	})
}

// childRunning is the pid of the child of parent that runs program.
func childRunning(t *testing.T, parent int, program string) int {
	t.Helper()
	children, err := harness.Children(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range children {
		if args, err := harness.Cmdline(pid); err == nil && len(args) > 0 && args[0] == program {
			return pid
		}
	}
	t.Fatalf("no child of pid %d runs %s (children %v)", parent, program, children)
	return 0
}

// Containers created and not yet started, upgraded: one runc created starts
// after the upgrade and runs; one created from a checkpoint (that CRIU
// cannot restore) is restored by the new binary, which fails with CRIU's
// reason as the old one would, and is deleted with the status of a process
// that never ran.
func TestUpgradeBeforeStart(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		created := s.newContainer(t, "created", []string{"sh", "-c", "echo started after the upgrade; exit 3"})
		streams := &stdio{}
		task, err := s.createTask(created, streams)
		if err != nil {
			t.Fatal(err)
		}
		s.mustUpgrade(t, otherShim(t), "created")
		exitCh := started(t, s, task)
		code := exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, code)
		if code != 3 || !strings.Contains(streams.stdout.String(), "started after the upgrade") {
			t.Errorf("a container started after the upgrade: exit %d, output %q; want 3 and its line", code, streams.stdout.String())
		}

		checkpoint := s.storeCheckpoint(t, map[string]string{
			"descriptors.json": `["/dev/null","pipe:[1]","pipe:[2]"]`,
			"inventory.img":    "not a CRIU image\n",
		})
		fromCheckpoint := s.newContainer(t, "from-checkpoint", []string{"sleep", "1000"})
		restored, err := s.createTask(fromCheckpoint, &stdio{}, withCheckpointDescriptor(checkpoint))
		if err != nil {
			t.Fatal(err)
		}
		s.mustUpgrade(t, otherShim(t), "from-checkpoint")
		if status, err := restored.Status(s.ctx); err != nil || status.Status != client.Created {
			t.Fatalf("the container to restore, after the upgrade: %v, %v; want created", status.Status, err)
		}
		exitCh, err = restored.Wait(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := restored.Start(s.ctx); err == nil || !strings.Contains(err.Error(), "CRIU says") {
			t.Errorf("restore after the upgrade: %v; want it to fail with CRIU's reason", err)
		}
		status, err := restored.Delete(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if code, err := awaitExit(exitCh, exitTimeout); err != nil || code != client.UnknownExitStatus || status.ExitCode() != client.UnknownExitStatus {
			t.Errorf("never restored: Wait says %d (%v), Delete says %d; want %d from both", code, err, status.ExitCode(), client.UnknownExitStatus)
		}
	})
}

// A binary that passes `upgrade-check` and then fails once it has taken
// over (a shim built with the tag teach_takeover_fault) gives the state
// back: it executes the old binary again, through the descriptor the old
// one left for that, and the old binary takes its containers back. The
// command exits non-zero and says why; the container's every line arrives
// once, an exec runs, and a later upgrade takes.
func TestUpgradeFallsBackWhenTheNewBinaryFails(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		const id = "fallback"
		container, task, exitCh, out := startCounterOnFIFOs(t, s, id)
		shim := shimOf(t, task)
		before := shimExecutable(t, shim)

		r := s.upgrade(t, faultyShim(t), id)
		if r.code == 0 || !strings.Contains(r.stderr, "did not take") || !strings.Contains(r.stderr, "injected take-over fault") {
			t.Errorf("upgrade to a binary that fails after the switch: exit %d\nstdout: %s\nstderr: %s\nwant non-zero, saying it did not take and why", r.code, r.stdout, r.stderr)
		}
		t.Logf("upgrade said: %s", strings.TrimSpace(r.stderr))
		if got := shimOf(t, task); got != shim {
			t.Fatalf("after the fallback the container's parent is %d, not the shim %d", got, shim)
		}
		if exe := shimExecutable(t, shim); exe != before {
			t.Errorf("after the fallback the shim runs %s, not %s", exe, before)
		}
		if _, ch := startExec(t, s, container, task, "after", "true"); exitCodeOf(t, ch) != 0 {
			t.Error("an exec after the fallback did not exit 0")
		}
		harness.Eventually(t, readyTimeout, "new lines after the fallback", func() error {
			if n := out.bytes(); n < 200 {
				return fmt.Errorf("%d bytes so far", n)
			}
			return nil
		})
		s.mustUpgrade(t, otherShim(t), id)

		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := exitCodeOf(t, exitCh); code != 137 {
			t.Errorf("exit code %d after SIGKILL, want 137", code)
		}
		if err := out.waitEOF(exitTimeout); err != nil {
			t.Fatal(err)
		}
		checkCounter(t, string(out.stop()))
		trace := s.trace(t, id)
		if !strings.Contains(trace.stdout, "did not take") {
			t.Errorf("trace does not show the upgrade that did not take:\n%s", trace.stdout)
		}
	})
}

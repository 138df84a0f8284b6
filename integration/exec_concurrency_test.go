package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Execs of one container are started in parallel, and an exec that is slow
// to start holds up nothing else of its container: the shim holds no lock
// while runc runs. A runc wrapper makes one exec's `runc exec` wait until
// the test lets it go, as a busy machine would.

// hangMarker, in an exec's command line, makes HangingExecRunc hold that
// exec's `runc exec`.
const hangMarker = "hold-this-exec"

// blockedLimit is how long a request may take, while another exec's runc
// hangs, before the test calls it blocked behind that exec. It does not time
// the shim: an answer that is not blocked comes in milliseconds, and one
// that is blocked never comes until the hang ends. The stock shim's row,
// which only reports what it sees, waits less.
func blockedLimit(s *session) time.Duration {
	if harness.IsReference(s.runtime) {
		return 5 * time.Second
	}
	return 2 * time.Minute
}

func TestExecStartsDoNotWaitForEachOther(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		runc := harness.HangingExecRunc(t, hangMarker)
		container := s.newContainer(t, "exec-parallel", []string{"sleep", "1000"},
			client.WithRuntime(s.runtime, &options.Options{BinaryName: runc.Path}))
		task, exitCh := s.startTask(t, container, &stdio{})

		slow, slowStarted := startExecInBackground(t, s, container, task, "slow", "sleep 1000 # "+hangMarker)
		runc.WaitHung(t, readyTimeout)

		// While the slow exec's runc hangs: its State answers, the
		// container's process list answers, and another exec runs to
		// its end.
		blocked := reportBlocked(t, s)
		ctx, cancel := context.WithTimeout(s.ctx, blockedLimit(s))
		defer cancel()
		if status, err := slow.Status(ctx); err != nil {
			blocked("State of an exec whose runc exec hangs", err)
		} else if status.Status != client.Created {
			t.Errorf("exec being started reads %s, want created", status.Status)
		}
		if _, err := task.Pids(ctx); err != nil {
			blocked("Pids while an exec's runc exec hangs", err)
		}
		fast := make(chan error, 1)
		go func() {
			result, err := runExec(s, task, "fast", execSpec(t, s, container, "echo", "fast"), "")
			if err == nil && (result.code != 0 || result.stdout != "fast\n") {
				err = fmt.Errorf("exit %d, stdout %q; want 0, \"fast\\n\"", result.code, result.stdout)
			}
			fast <- err
		}()
		select {
		case err := <-fast:
			if err != nil {
				s.shimFellShort(t, "an exec started while another's runc exec hangs: %v", err)
			}
		case <-time.After(blockedLimit(s)):
			blocked("an exec started while another's runc exec hangs", fmt.Errorf("no exit within %v", blockedLimit(s)))
			runc.Release()
			<-fast
		}
		select {
		case err := <-slowStarted:
			t.Fatalf("the slow exec's Start returned while its runc exec hangs: %v", err)
		default:
		}

		runc.Release()
		if err := <-slowStarted; err != nil {
			t.Fatalf("start the slow exec once its runc is let go: %v", err)
		}
		slow.Kill(s.ctx, syscall.SIGKILL)
		task.Kill(s.ctx, syscall.SIGKILL)
		deleteTask(t, s.ctx, task, exitCodeOf(t, exitCh))
		assertShimEventOrder(t, s)
	})
}

// TestInitDiesWhileAnExecStarts is containerd's regression test for its
// issue 10589, replayed with a runc wrapper instead of containerd's
// failpoint runc: the init is killed while an exec's runc exec hangs. Until
// that exec's start is over, the task still reads running and takes another
// Exec; both starts then fail, both execs stay created, and the task stops
// with the init's SIGKILL.
func TestInitDiesWhileAnExecStarts(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		filter := fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, s.ns)
		envelopes, errs := s.client.Subscribe(s.ctx, filter)
		runc := harness.HangingExecRunc(t, hangMarker)
		container := s.newContainer(t, "exec-init-dies", []string{"sleep", "1000"},
			client.WithRuntime(s.runtime, &options.Options{BinaryName: runc.Path}))
		task, exitCh := s.startTask(t, container, &stdio{})

		exec1, exec1Started := startExecInBackground(t, s, container, task, "exec1", "sleep 301 # "+hangMarker)
		hung1 := runc.WaitHung(t, readyTimeout)

		// The init is killed and reaped while exec1's runc exec hangs.
		initPid := int(task.Pid())
		if err := syscall.Kill(initPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, readyTimeout, "the init to be reaped", func() error {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", initPid)); err == nil {
				return fmt.Errorf("pid %d still exists", initPid)
			}
			return nil
		})
		strict := func(format string, args ...any) { s.shimFellShort(t, format, args...) }
		status, err := task.Status(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if status.Status != client.Running {
			strict("the task while an exec is being started reads %s, want running (its exit is held back)", status.Status)
		}

		exec2, err := task.Exec(s.ctx, "exec2", execSpec(t, s, container, "sh", "-c", "sleep 302 # "+hangMarker), cio.NullIO)
		exec2Started := make(chan error, 1)
		if err != nil {
			strict("Exec after the init died, while exec1 is being started: %v", err)
			exec2Started <- err
		} else {
			go func() { exec2Started <- exec2.Start(s.ctx) }()
			harness.Eventually(t, readyTimeout, "exec2's runc exec to hang, or its Start to end", func() error {
				if pid := runc.HungPID(); pid != hung1 && harness.IsAlive(pid) {
					return nil
				}
				select {
				case err := <-exec2Started:
					exec2Started <- err
					return nil
				default:
					return fmt.Errorf("exec2 neither hangs nor has returned")
				}
			})
		}

		runc.Release()
		if err := <-exec1Started; err == nil {
			t.Errorf("exec1 started in a container whose init had died")
		} else {
			t.Logf("exec1's Start: %v", err)
		}
		if err := <-exec2Started; err == nil {
			t.Errorf("exec2 started in a container whose init had died")
		}
		if status, err := exec1.Status(s.ctx); err != nil || status.Status != client.Created {
			t.Errorf("exec1 after its failed start: %s, %v; want created", status.Status, err)
		}
		if exec2 != nil {
			if status, err := exec2.Status(s.ctx); err != nil || status.Status != client.Created {
				t.Errorf("exec2 after its failed start: %s, %v; want created", status.Status, err)
			}
		}
		if code := exitCodeOf(t, exitCh); code != 128+uint32(syscall.SIGKILL) {
			t.Errorf("the task exited with %d, want %d", code, 128+syscall.SIGKILL)
		}
		exec1.Delete(s.ctx)
		if exec2 != nil {
			exec2.Delete(s.ctx)
		}
		deleteTask(t, s.ctx, task, 128+uint32(syscall.SIGKILL))

		got := collectTaskEvents(t, s, envelopes, errs)
		for _, event := range got {
			if strings.HasPrefix(event, "/tasks/exec-started") {
				strict("an exec that failed to start was reported started:\n%s", strings.Join(got, "\n"))
			}
		}
		assertShimEventOrder(t, s)
	})
}

// startExecInBackground registers exec id running command in sh, and starts
// it without waiting: its Start's answer comes on the channel.
func startExecInBackground(t *testing.T, s *session, container client.Container, task client.Task, id, command string) (client.Process, <-chan error) {
	t.Helper()
	process, err := task.Exec(s.ctx, id, execSpec(t, s, container, "sh", "-c", command), cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		process.Kill(s.ctx, syscall.SIGKILL)
		process.Delete(s.ctx)
	})
	started := make(chan error, 1)
	go func() { started <- process.Start(s.ctx) }()
	return process, started
}

// reportBlocked returns how a row reports a request blocked behind a hung
// runc: an error on our shim's row, a finding on the stock shim's.
func reportBlocked(t *testing.T, s *session) func(what string, err error) {
	return func(what string, err error) { s.shimFellShort(t, "%s: blocked: %v", what, err) }
}

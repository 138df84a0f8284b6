package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// runc is the part of a container's life the shim does not control: it can
// fail at any step, or never answer. The runtime options' BinaryName points
// both shims at a wrapper script (harness.RuncWrapper) that is the real runc
// except for one subcommand.

var runcFailureScenario = scenarioSpec{
	name: "runc failing mid-way",
	test: "TestReliabilityRuncFailures",
	about: "runc create fails, runc start fails (a wrapper script makes them fail with a message of its own), and " +
		"exec of a missing binary fails (the real runc). Each error must carry runc's own message to the caller; " +
		"nothing may be left (runc state, mounts, bundle, shim process; for the execs, no descriptor in the shim); " +
		"and the shim must stay usable.",
}

func TestReliabilityRuncFailures(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		sc := newScenario(t, runcFailureScenario, s)
		defer logForestOnFailure(t)
		t.Run("create fails", func(t *testing.T) { runcFailsOn(t, s, sc, "create") })
		t.Run("start fails", func(t *testing.T) { runcFailsOn(t, s, sc, "start") })
		t.Run("exec of a missing binary", func(t *testing.T) { execOfMissingBinary(t, s, sc) })
		assertStillWorks(t, s)
	})
}

// runcFailsOn runs a container whose runc fails at subcommand.
func runcFailsOn(t *testing.T, s *session, sc *scenario, subcommand string) {
	id := "runc-fails-" + subcommand
	runc := harness.FailingRunc(t, subcommand, "fake runc: "+subcommand+" refused for the reliability test")
	shimsBefore, _ := harness.ShimsOf(s.daemon.Address)
	container := s.newContainer(t, id, []string{"sleep", "1000"},
		client.WithRuntime(s.runtime, &options.Options{BinaryName: runc.Path}))

	task, err := s.createTask(container, &stdio{})
	if subcommand != "create" {
		if err != nil {
			t.Fatal(err)
		}
		err = task.Start(s.ctx)
	}
	sc.figure("error on "+subcommand, shorten(err))
	if err == nil {
		t.Fatalf("runc %s failed, yet the call succeeded", subcommand)
	}
	if !strings.Contains(err.Error(), runc.Message) {
		t.Errorf("runc %s failed with %q; the caller got %q", subcommand, runc.Message, err)
	}
	if task != nil {
		if _, err := task.Delete(s.ctx, client.WithProcessKill); err != nil {
			t.Errorf("delete the task whose start failed: %v", err)
		}
	}
	s.daemon.AssertNoContainerTraces(t, s.ns, id)
	harness.Eventually(t, s.settleTimeout(), "the shim of the failed task to exit", func() error {
		shims, err := harness.ShimsOf(s.daemon.Address)
		if err != nil {
			return err
		}
		if len(shims) > len(shimsBefore) {
			return fmt.Errorf("shims %v, before the test %v", shims, shimsBefore)
		}
		return nil
	})
}

// execOfMissingBinary runs failing execs in one container and checks the
// shim holds no more descriptors afterwards than before.
func execOfMissingBinary(t *testing.T, s *session, sc *scenario) {
	const attempts = 20
	container, task, _ := s.runningTask(t, "exec-missing")
	shimPID, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	// A good exec and a failed one first, so that whatever is set up once
	// (a connection opened on first use) is in the baseline.
	if result, err := runExec(s, task, "warm-up", execSpec(t, s, container, "true"), ""); err != nil || result.code != 0 {
		t.Fatalf("warm-up exec: %+v, %v", result, err)
	}
	runExec(s, task, "warm-up-missing", execSpec(t, s, container, "/no/such/binary"), "")
	before, err := harness.OpenFDs(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	var firstErr error
	for i := range attempts {
		_, err := runExec(s, task, fmt.Sprintf("missing-%d", i), execSpec(t, s, container, "/no/such/binary"), "")
		if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
			t.Fatalf("exec %d of a missing binary: %v; want runc's reason naming the binary", i, err)
		}
		firstErr = cmpOr(firstErr, err)
	}
	sc.figure("error on exec of a missing binary", shorten(firstErr))
	sc.figure("failed execs", attempts)
	if result, err := runExec(s, task, "after", execSpec(t, s, container, "sh", "-c", "exit 3"), ""); err != nil || result.code != 3 {
		t.Fatalf("exec after the failures: %+v, %v; want exit 3", result, err)
	}
	var after []harness.OpenFD
	err = harness.WaitFor(s.settleTimeout(), func() error {
		after, err = harness.OpenFDs(shimPID)
		if err != nil {
			return err
		}
		return fdGrowth(before, after)
	})
	_, pidfdsBefore := harness.WithoutPidfds(before)
	_, pidfdsAfter := harness.WithoutPidfds(after)
	sc.figure("shim descriptors before / after the failed execs", fmt.Sprintf("%d / %d", len(before)-pidfdsBefore, len(after)-pidfdsAfter))
	sc.figure("shim pidfds before / after", fmt.Sprintf("%d / %d", pidfdsBefore, pidfdsAfter))
	if err != nil {
		t.Errorf("the shim keeps descriptors of failed execs: %v", err)
	}
}

// fdGrowth is nil when after holds no descriptor, pidfds aside, that before
// did not; else it names the new ones.
func fdGrowth(before, after []harness.OpenFD) error {
	before, _ = harness.WithoutPidfds(before)
	after, _ = harness.WithoutPidfds(after)
	if added := newFDs(before, after); len(after) > len(before) {
		return fmt.Errorf("%d descriptors, %d before (pidfds aside); new: %v", len(after), len(before), added)
	}
	return nil
}

// newFDs lists the descriptors in after that before did not have.
func newFDs(before, after []harness.OpenFD) []harness.OpenFD {
	had := map[harness.OpenFD]bool{}
	for _, fd := range before {
		had[fd] = true
	}
	var added []harness.OpenFD
	for _, fd := range after {
		if !had[fd] {
			added = append(added, fd)
		}
	}
	return added
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// shorten keeps an error readable in a table: its last 160 characters, where
// runc's own message is.
func shorten(err error) string {
	if err == nil {
		return "none"
	}
	msg := err.Error()
	if len(msg) > 160 {
		msg = "…" + msg[len(msg)-160:]
	}
	return msg
}

var runcHangScenario = scenarioSpec{
	name: "runc hanging",
	test: "TestReliabilityRuncHangs",
	about: "`runc kill` never returns (a wrapper script waits on a FIFO); the client kills every process of the task " +
		"(Kill with all, which goes through `runc kill --all`). The client's Kill carries no deadline, as " +
		"containerd's own calls often do not. While it hangs the shim must keep answering State; the Kill must " +
		"come back with an error within " + hangBudget.String() + " (every runc call needs a deadline of the shim's own) " +
		"that names the command that hung, and the hung command must have been killed; " +
		"once runc is let go, Kill, Wait and Delete must work.",
}

// hangBudget is how long a shim may take to give up on a runc command that
// does not return. A real runc kill takes milliseconds.
const hangBudget = 10 * time.Second

func TestReliabilityRuncHangs(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		sc := newScenario(t, runcHangScenario, s)
		runc := harness.HangingRunc(t, "kill")
		container := s.newContainer(t, "runc-hangs", []string{"sleep", "1000"},
			client.WithRuntime(s.runtime, &options.Options{BinaryName: runc.Path}))
		task, exitCh := s.startTask(t, container, &stdio{})

		killed := make(chan error, 1)
		started := time.Now()
		// Kill of every process: our shim signals one process through
		// its pidfd, without runc; all of them, through `runc kill --all`.
		go func() { killed <- task.Kill(context.WithoutCancel(s.ctx), syscall.SIGKILL, client.WithKillAll) }()
		hungPID := runc.WaitHung(t, readyTimeout)

		stateStarted := time.Now()
		stateCtx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		status, stateErr := task.Status(stateCtx)
		cancel()
		sc.figure("State while runc kill hangs", fmt.Sprintf("%s in %v (%v)", status.Status, time.Since(stateStarted).Round(time.Millisecond), errOrOK(stateErr)))

		var killErr error
		var hung bool
		select {
		case killErr = <-killed:
			sc.figure("Kill while runc kill hangs", fmt.Sprintf("answered after %v: %s", time.Since(started).Round(100*time.Millisecond), shorten(killErr)))
		case <-time.After(hangBudget):
			hung = true
			sc.figure("Kill while runc kill hangs", fmt.Sprintf("no answer within %v", hangBudget))
		}

		if !hung && s.runtime == harness.TeachRuntime {
			checkHungRuncEnded(t, sc, killErr, hungPID)
		}

		// Let runc go, and check the container can still be stopped and
		// removed.
		runc.Release()
		if hung {
			select {
			case killErr = <-killed:
			case <-time.After(exitTimeout):
				t.Fatal("Kill still hangs after runc was let go")
			}
		}
		if killErr != nil {
			if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
				t.Errorf("kill after runc was let go: %v", err)
			}
		}
		code := exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, code)
		s.daemon.AssertNoContainerTraces(t, s.ns, container.ID())

		if stateErr != nil {
			err := fmt.Errorf("State while runc kill hangs: %w", stateErr)
			sc.shimFellShort("state-blocked-by-hung-runc", err)
		}
		if hung {
			err := errors.New("Kill with no deadline of its own never returned while runc kill hung: the shim gives runc no deadline")
			sc.shimFellShort("runc-call-without-deadline", err)
		}
	})
}

// checkHungRuncEnded holds our shim to the rest of its deadline's promise:
// the error names the runc command that hung, and that command was killed,
// not left waiting.
func checkHungRuncEnded(t *testing.T, sc *scenario, killErr error, hungPID int) {
	t.Helper()
	if killErr == nil || !strings.Contains(killErr.Error(), "runc kill") || !strings.Contains(killErr.Error(), "did not finish") {
		t.Errorf("Kill while runc kill hung answered %v; want an error naming the runc command that did not finish", killErr)
	}
	err := harness.WaitFor(harness.SettleTimeout, func() error {
		if harness.IsAlive(hungPID) {
			return fmt.Errorf("the hung runc kill (pid %d) still runs: %s", hungPID, harness.DescribeProcess(hungPID))
		}
		return nil
	})
	sc.figure("hung runc kill ended by the shim", err == nil)
	if err != nil {
		t.Error(err)
	}
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return shorten(err)
}

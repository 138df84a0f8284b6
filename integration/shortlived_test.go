package integration

import (
	"testing"
	"time"
)

// A process that exits at once can be reaped before runc start has even
// returned. A shim that records the pid only after start, and drops exits of
// pids it does not know yet, loses that exit: Wait then hangs, or reports a
// status that is not the process's. Running `true` many times in a row
// gives that race many chances to show.
const (
	shortLivedRuns = 200
	// shortLivedBudget keeps the loop within the row's time on a slow
	// machine: each run starts a shim and a runc container, about 0.1-0.2 s
	// on an idle one. A slow machine gets fewer runs, not a failure: the
	// race has fewer chances to show, and the log says how many it had.
	shortLivedBudget = 2 * time.Minute
)

func TestShortLivedProcessesReportTheirStatus(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		t.Run("true", func(t *testing.T) { s.runRepeatedly(t, "true", shortLivedRuns, 0) })
		t.Run("false", func(t *testing.T) { s.runRepeatedly(t, "false", shortLivedRuns/10, 1) })
	})
}

// runRepeatedly runs command as a new task of one container, times times,
// and wants wantCode from each. Reusing the container (a new task each time,
// so a new shim and a new runc container) skips the snapshot work that is
// not under test.
func (s *session) runRepeatedly(t *testing.T, command string, times int, wantCode uint32) {
	container := s.newContainer(t, command+"-loop", []string{command})
	deadline := time.Now().Add(shortLivedBudget)
	for run := 1; run <= times; run++ {
		if run > 1 && time.Now().After(deadline) {
			t.Logf("%d of %d runs of %s within %v; the machine is slow, the rest are skipped", run-1, times, command, shortLivedBudget)
			return
		}
		task, exitCh := s.startTask(t, container, &stdio{})
		code := exitCodeOf(t, exitCh)
		if code != wantCode {
			t.Fatalf("run %d of %s: exit status %d, want %d", run, command, code, wantCode)
		}
		deleteTask(t, s.ctx, task, code)
	}
}

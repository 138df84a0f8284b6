package integration

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// What the journal keeps, and what it must not: a logging program's
// arguments, which may be secrets; how much of a flood; whose it is.

// A container's output goes to a logging program whose URI carries a
// token: the journal says which program and which arguments, not their
// values.
func TestTheJournalKeepsNoLogURIValues(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		logFile := filepath.Join(t.TempDir(), "container.log")
		uri := "binary://" + testLogger(t) + "?file=" + logFile + "&token=s3cret"
		result := s.daemon.Ctr(t, s.ns, "run", "--rm", "--runtime", s.runtime, "--log-uri", uri, harness.BusyboxImage, "logged", "echo", "hi")
		if result.ExitCode != 0 {
			t.Fatalf("ctr run: exit %d, stderr %s", result.ExitCode, result.Stderr)
		}
		raw := s.trace(t, "logged", "--json")
		if strings.Contains(raw.stdout, "s3cret") || strings.Contains(raw.stdout, logFile) {
			t.Errorf("the journal keeps the values of the log URI's query:\n%s", raw.stdout)
		}
		shown := false
		for _, e := range s.journalEntries(t, "logged") {
			shown = shown || e.Path == "binary://"+testLogger(t)+"?file&token"
		}
		if !shown {
			t.Errorf("the journal does not name the logging program with its query's keys:\n%s", raw.stdout)
		}
	})
}

// trace run by a user who may not read the journals (they are root's) says
// so, and not that the container has no journal.
func TestTraceSaysAUserMayNotReadTheJournal(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		s.runningTask(t, "private")
		binary := copyForEveryone(t, harness.ShimBinary(t))
		for _, args := range [][]string{
			{"trace", "-n", s.ns, "--state", s.daemon.StateDir, "private"},
			{"trace", "-n", s.ns, "private"},
		} {
			cmd := exec.Command(binary, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 1 ||
				!strings.Contains(stderr.String(), "permission denied") || strings.Contains(stderr.String(), "no journal") {
				t.Errorf("%q as nobody: %v, stderr %q; want exit status 1 and permission denied", args, err, stderr.String())
			}
		}
	})
}

package integration

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// journalEntries reads a container's journal through trace --json.
func (s *session) journalEntries(t *testing.T, id string) []journal.Entry {
	t.Helper()
	raw := s.trace(t, id, "--json")
	var entries []journal.Entry
	for _, line := range strings.Split(strings.TrimSpace(raw.stdout), "\n") {
		var e journal.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("trace --json printed a line that is not an entry: %v: %q", err, line)
		}
		entries = append(entries, e)
	}
	return entries
}

// The container's init is sent a signal it survives; then an exec runs and
// exits by itself. Its journal says so, and names no kill: the one sent
// before the exec existed cannot have ended it.
func TestAnExecIsNotBlamedForAnEarlierKill(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		container, task, _ := s.runningTask(t, "blamed")
		if err := task.Kill(s.ctx, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if result, err := runExec(s, task, "later", execSpec(t, s, container, "true"), ""); err != nil || result.code != 0 {
			t.Fatalf("exec: %+v, %v", result, err)
		}
		for _, e := range s.journalEntries(t, "blamed") {
			if e.Kind != journal.KindExit || e.Exec != "later" {
				continue
			}
			if e.End.Cause != journal.CauseExited || e.End.By != "" || e.End.KillSignal != 0 || e.End.KillAt != 0 {
				t.Fatalf("the exec's ending: %+v; want an exit by itself, with no kill named", *e.End)
			}
			return
		}
		t.Fatal("the journal has no ending for exec later")
	})
}

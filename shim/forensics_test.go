package shim

import (
	"testing"

	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/observe"
)

func TestExplainExit(t *testing.T) {
	term := killRecord{signal: 15, at: 50, by: "Kill request"}
	kill := killRecord{signal: 9, at: 60, by: "Kill request"}
	for _, c := range []struct {
		name  string
		facts exitFacts
		cause journal.Cause
		by    string
	}{
		{"exit code", exitFacts{code: 3, created: 10}, journal.CauseExited, ""},
		{"exit after a handled SIGTERM", exitFacts{code: 0, kills: []killRecord{term}}, journal.CauseExited, "Kill request"},
		{"the requested SIGKILL", exitFacts{code: 137, kills: []killRecord{term, kill}}, journal.CauseKillRequest, "Kill request"},
		{"SIGTERM requested, SIGTERM died", exitFacts{code: 143, kills: []killRecord{term, kill}}, journal.CauseKillRequest, "Kill request"},
		{"OOM after start", exitFacts{code: 137, created: 10, lastOOM: 70, kills: []killRecord{kill}}, journal.CauseOOMKiller, "the kernel's OOM killer"},
		{"an OOM kill before this process existed", exitFacts{code: 137, created: 80, lastOOM: 70}, journal.CauseOtherSignal, ""},
		{"exec killed with its init", exitFacts{code: 137, initExited: 90}, journal.CauseInitExited, ""},
		{"exec under a container-wide kill", exitFacts{code: 137, initExited: 90, containerKills: []killRecord{{signal: 9, at: 85, by: "Kill request", all: true}}}, journal.CauseKillRequest, "Kill request"},
		{"a signal from elsewhere", exitFacts{code: 130, kills: []killRecord{kill}}, journal.CauseOtherSignal, ""},
		{"a kill from before the process existed", exitFacts{code: 143, created: 55, kills: []killRecord{term}}, journal.CauseOtherSignal, ""},
	} {
		end := explainExit(c.facts)
		if end.Cause != c.cause || c.by != "" && end.By != c.by {
			t.Errorf("%s: cause %q by %q, want %q by %q", c.name, end.Cause, end.By, c.cause, c.by)
		}
		if c.facts.code > 128 && end.Signal != c.facts.code-128 {
			t.Errorf("%s: signal %d from status %d", c.name, end.Signal, c.facts.code)
		}
	}
}

// An exec that exits by itself after its container's init was sent a
// signal, before the exec existed, is not said to have followed that kill.
func TestAnExecIsNotBlamedForAKillBeforeIt(t *testing.T) {
	initKill := killRecord{signal: 15, at: 50, by: "Kill request"}
	end := explainExit(exitFacts{code: 0, created: 60, containerKills: []killRecord{initKill}})
	if end.Cause != journal.CauseExited || end.By != "" || end.KillSignal != 0 || end.KillAt != 0 {
		t.Fatalf("%+v; want an exit by itself with no kill named", end)
	}
}

// However many kills a process is sent, the record keeps the latest of
// each signal; a kill withdrawn (not delivered) leaves the one before it.
func TestKillRecordKeepsTheLatestOfEachSignal(t *testing.T) {
	var life lifeRecord
	for i := range 100000 {
		life.noteKill(killRecord{signal: 1 + i%3, at: int64(i), by: "Kill request"})
	}
	withdraw := life.noteKill(killRecord{signal: 1, at: 200000, by: "Kill request"})
	withdraw()
	kills := life.kills()
	if len(kills) != 3 {
		t.Fatalf("%d kill records after 100000 kills of 3 signals: %+v", len(kills), kills)
	}
	for _, k := range kills {
		if want := int64(99999 - (99999-(k.signal-1))%3); k.at != want {
			t.Errorf("signal %d: latest kill at %d, want %d", k.signal, k.at, want)
		}
	}
}

func TestJournalLevelAnnotationWinsOverRuntimeOptions(t *testing.T) {
	spec := &bundleSpec{Annotations: map[string]string{JournalAnnotation: "debug"}}
	if got := journalSetting(spec, shimOptions{Journal: "off"}); got != "debug" {
		t.Fatalf("annotation debug, options off: %q", got)
	}
	if got := journalSetting(&bundleSpec{}, shimOptions{Journal: "off"}); got != "off" {
		t.Fatalf("options off: %q", got)
	}
	if got := journalSetting(&bundleSpec{}, shimOptions{}); got != "" {
		t.Fatalf("nothing set: %q", got)
	}
	js := &journals{byID: make(map[string]*journal.Journal)}
	if _, err := js.Container(observe.Container{ID: "c1", Bundle: t.TempDir(), Level: "all"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("an unknown level: %v; want it refused as an invalid argument", err)
	}
}

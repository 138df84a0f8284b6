package shim

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	runc "github.com/containerd/go-runc"

	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/observe"
)

// testJournals is the journal side of a shim whose journals are kept in a
// folder of the test's; it watches no runc commands.
func testJournals(t *testing.T) *journals {
	t.Helper()
	root := journalRoot
	journalRoot = t.TempDir()
	t.Cleanup(func() { journalRoot = root })
	return &journals{namespace: "test", byID: make(map[string]*journal.Journal)}
}

// testBundle is a bundle path laid out as containerd's: <state>/<runtime>/<namespace>/<id>.
func testBundle(t *testing.T, id string) string {
	return filepath.Join(t.TempDir(), "state", "io.containerd.runtime.v2.task", "test", id)
}

// journaledContainer is the observer of a container c1 whose journal is
// at the default level, and its bundle.
func journaledContainer(t *testing.T, js *journals) (observe.Observer, string) {
	t.Helper()
	bundle := testBundle(t, "c1")
	container, err := js.Container(observe.Container{ID: "c1", Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	return container, bundle
}

// story reads back what a container's journal holds.
func story(t *testing.T, bundle, id string) []journal.Entry {
	t.Helper()
	s, err := journal.Read(journal.ContainerDir(journalRoot, journal.StateOfBundle(bundle), "test", id))
	if err != nil {
		t.Fatal(err)
	}
	return s.Entries
}

// endings are the exit forensics a journal holds, by exec ("" the init).
func endings(entries []journal.Entry) map[string]journal.Ending {
	ends := make(map[string]journal.Ending)
	for _, e := range entries {
		if e.Kind == journal.KindExit {
			ends[e.Exec] = *e.End
		}
	}
	return ends
}

// The journal works each process's ending out of what the core told it,
// seam by seam: the kill relayed to the init (and the one that was never
// delivered), the init's exit, the exec killed with it, what the exec's
// stdout carried.
func TestTheJournalExplainsExitsFromWhatTheCoreTold(t *testing.T) {
	container, bundle := journaledContainer(t, testJournals(t))
	init := container.Process("")
	init.EventPublished(topicTaskStart, &eventstypes.TaskStart{ContainerID: "c1", Pid: 100})
	exec := container.Process("e1")
	exec.EventPublished(topicTaskExecStarted, &eventstypes.TaskExecStarted{ContainerID: "c1", ExecID: "e1", Pid: 200})
	exec.StreamClosed(observe.Stream{Name: "stdout", Path: "/fifo/e1-stdout", Bytes: 6})

	init.SignalSent(observe.Signal{Number: 15, Pid: 100, By: "Kill request"})
	undelivered := init.SignalSent(observe.Signal{Number: 9, Pid: 100, By: "Kill request"})
	undelivered()
	init.SignalSent(observe.Signal{Number: 15, Pid: 100, How: "sent with pidfd_send_signal", At: time.Now()})
	init.Reaped(observe.Reap{Pid: 100, Status: 143, At: time.Now()})
	exec.Reaped(observe.Reap{Pid: 200, Status: 137, At: time.Now()})
	exec.EventPublished(topicTaskExit, &eventstypes.TaskExit{ContainerID: "c1", ID: "e1", Pid: 200, ExitStatus: 137})
	init.EventPublished(topicTaskExit, &eventstypes.TaskExit{ContainerID: "c1", ID: "c1", Pid: 100, ExitStatus: 143})

	ends := endings(story(t, bundle, "c1"))
	if end := ends[""]; end.Cause != journal.CauseKillRequest || end.KillSignal != 15 || end.By != "Kill request" || end.Started == 0 || end.Exited < end.Started {
		t.Errorf("the init's ending: %+v; want killed by the SIGTERM of a Kill request, after it started", end)
	}
	if end := ends["e1"]; end.Cause != journal.CauseInitExited || end.Stdout != 6 || end.Created < ends[""].Created {
		t.Errorf("the exec's ending: %+v; want killed when its init exited, 6 bytes of stdout", end)
	}
}

// A process handed over by an upgrade keeps, in the next binary's journal,
// when it was created and started and the kill sent before the switch:
// its ending names them, not "started never".
func TestTheJournalTakesUpAProcessAfterAnUpgrade(t *testing.T) {
	js := testJournals(t)
	container, bundle := journaledContainer(t, js)
	init := container.Process("")
	init.EventPublished(topicTaskStart, &eventstypes.TaskStart{ContainerID: "c1", Pid: 100})
	init.SignalSent(observe.Signal{Number: 15, Pid: 100, By: "Kill request"})
	remembered := init.Remembered()
	var before rememberedLife
	if err := json.Unmarshal(remembered, &before); err != nil || before.Started == 0 {
		t.Fatalf("remembered %s (%v); want the start", remembered, err)
	}

	// The next binary's journals continue the container's.
	container, err := js.Container(observe.Container{ID: "c1", Bundle: bundle, HandedOver: true, Remembered: map[string]json.RawMessage{"": remembered}})
	if err != nil {
		t.Fatal(err)
	}
	init = container.Process("")
	init.Reaped(observe.Reap{Pid: 100, Status: 143, At: time.Now()})
	init.EventPublished(topicTaskExit, &eventstypes.TaskExit{ContainerID: "c1", ID: "c1", Pid: 100, ExitStatus: 143})
	end := endings(story(t, bundle, "c1"))[""]
	if end.Created != before.Created || end.Started != before.Started || end.Cause != journal.CauseKillRequest || end.KillSignal != 15 {
		t.Errorf("the init's ending after the upgrade: %+v; want created %d, started %d, killed by the SIGTERM of a Kill request", end, before.Created, before.Started)
	}
}

// A TaskOOM is written as the kernel's act, and a SIGKILL after it is the
// OOM killer's.
func TestTheJournalNamesTheOOMKillerFromTaskOOM(t *testing.T) {
	container, bundle := journaledContainer(t, testJournals(t))
	init := container.Process("")
	container.EventPublished(topicTaskOOM, &eventstypes.TaskOOM{ContainerID: "c1"})
	init.Reaped(observe.Reap{Pid: 100, Status: 137, At: time.Now()})
	init.EventPublished(topicTaskExit, &eventstypes.TaskExit{ContainerID: "c1", ID: "c1", Pid: 100, ExitStatus: 137})

	entries := story(t, bundle, "c1")
	var kinds []journal.Kind
	for _, e := range entries {
		kinds = append(kinds, e.Kind)
	}
	want := []journal.Kind{journal.KindJournal, journal.KindOOM, journal.KindEvent, journal.KindReaped, journal.KindExit, journal.KindEvent}
	if !slices.Equal(kinds, want) {
		t.Errorf("journal lines %v; want %v", kinds, want)
	}
	if end := endings(entries)[""]; end.Cause != journal.CauseOOMKiller || end.OOMAt == 0 {
		t.Errorf("the init's ending: %+v; want the OOM killer", end)
	}
}

// A container whose journal is off costs the shim no observer of its own.
func TestAContainerWithItsJournalOffIsWatchedByNop(t *testing.T) {
	js := testJournals(t)
	observer, err := js.Container(observe.Container{ID: "c1", Bundle: testBundle(t, "c1"), Level: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if _, nop := observer.(observe.Nop); !nop {
		t.Fatalf("observer %T; want observe.Nop", observer)
	}
}

// go-runc shows a command only to its Monitor: the journal, standing in
// front of it, learns the argv, pid and exit status of the commands it
// tagged, and lets others pass untouched.
func TestTheJournalLearnsRuncCommandsFromTheMonitor(t *testing.T) {
	falseBinary, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false(1) to stand in for runc")
	}
	monitor := runc.Monitor
	t.Cleanup(func() { runc.Monitor = monitor })
	commands := watchRuncCommands(monitor)
	js := testJournals(t)
	js.commands = commands
	container, bundle := journaledContainer(t, js)
	rc := &runc.Runc{Command: falseBinary, Root: "/run/test-runc"}
	kill := func(ctx context.Context) error { return rc.Kill(ctx, "c1", 9, nil) }

	if err := container.Process("").RuncCommand(t.Context(), "kill", kill); err == nil {
		t.Fatal("false(1) as runc kill succeeded")
	}
	if err := (observe.Nop{}).RuncCommand(t.Context(), "kill", kill); err == nil {
		t.Fatal("false(1) as runc kill, unwatched, succeeded")
	}

	var runs []journal.Entry
	for _, e := range story(t, bundle, "c1") {
		if e.Kind == journal.KindRunc {
			runs = append(runs, e)
		}
	}
	if len(runs) != 1 {
		t.Fatalf("%d runc lines; want the watched command's alone", len(runs))
	}
	run := runs[0]
	wantArgv := []string{falseBinary, "--root", "/run/test-runc", "kill", "c1", "9"}
	if !slices.Equal(run.Argv, wantArgv) || run.Pid <= 0 || run.Code == nil || *run.Code != 1 || run.Err == "" {
		t.Errorf("runc line: argv %q, pid %d, code %v, err %q; want argv %q, a pid, status 1 and an error", run.Argv, run.Pid, run.Code, run.Err, wantArgv)
	}
	commands.inProgress.Range(func(tag, _ any) bool {
		t.Errorf("command %v is still watched after it ended", tag)
		return true
	})
}

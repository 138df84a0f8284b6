package shim

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
)

// Shorthands for the events of container c1 and its execs.
func taskCreate() events.Event { return &eventstypes.TaskCreate{ContainerID: "c1"} }
func taskStart() events.Event  { return &eventstypes.TaskStart{ContainerID: "c1"} }
func initExit() events.Event   { return &eventstypes.TaskExit{ContainerID: "c1", ID: "c1"} }
func taskDelete() events.Event { return &eventstypes.TaskDelete{ContainerID: "c1", Pid: 100} }

// restoreNeverRanDelete is the TaskDelete of a container created from a
// checkpoint whose restore failed: it never had a process.
func restoreNeverRanDelete() events.Event { return &eventstypes.TaskDelete{ContainerID: "c1"} }
func taskOOM() events.Event               { return &eventstypes.TaskOOM{ContainerID: "c1"} }
func execAdded(id string) events.Event {
	return &eventstypes.TaskExecAdded{ContainerID: "c1", ExecID: id}
}
func execStarted(id string) events.Event {
	return &eventstypes.TaskExecStarted{ContainerID: "c1", ExecID: id}
}
func execExit(id string) events.Event { return &eventstypes.TaskExit{ContainerID: "c1", ID: id} }

func observeAll(sequence []events.Event) []OrderViolation {
	checker := NewOrderChecker()
	var violations []OrderViolation
	for _, e := range sequence {
		violations = append(violations, checker.Observe(e)...)
	}
	return violations
}

func TestOrderCheckerAcceptsLegalSequences(t *testing.T) {
	for name, sequence := range map[string][]events.Event{
		"a whole life": {taskCreate(), taskStart(), initExit(), taskDelete()},
		"created, killed and deleted, never started":             {taskCreate(), initExit(), taskDelete()},
		"a failed restore: created and deleted, no process ever": {taskCreate(), restoreNeverRanDelete()},
		"execs exit before the init": {taskCreate(), taskStart(), execAdded("e1"), execStarted("e1"),
			execAdded("e2"), execStarted("e2"), execExit("e2"), execExit("e1"), initExit(), taskDelete()},
		"an exec never started does not hold the init's exit": {taskCreate(), taskStart(), execAdded("e1"),
			initExit(), taskDelete()},
		"an exec id used again after its exit": {taskCreate(), taskStart(), execAdded("e1"), execStarted("e1"),
			execExit("e1"), execAdded("e1"), execStarted("e1"), execExit("e1"), initExit(), taskDelete()},
		"OOM before the exit it caused": {taskCreate(), taskStart(), taskOOM(), initExit(), taskDelete()},
		"a container id used again after delete": {taskCreate(), taskStart(), initExit(), taskDelete(),
			taskCreate(), taskStart(), initExit(), taskDelete()},
		"events of other kinds pass": {taskCreate(), &eventstypes.TaskPaused{ContainerID: "c1"},
			&eventstypes.TaskResumed{ContainerID: "c1"}, taskStart(), initExit(), taskDelete()},
	} {
		if violations := observeAll(sequence); len(violations) > 0 {
			t.Errorf("%s: legal sequence flagged: %v", name, violations)
		}
	}
}

func TestOrderCheckerNamesIllegalSequences(t *testing.T) {
	for name, tc := range map[string]struct {
		sequence []events.Event
		want     string // in the one violation expected
	}{
		"start before create":       {[]events.Event{taskStart()}, "TaskStart of the init without a TaskCreate"},
		"exit twice":                {[]events.Event{taskCreate(), taskStart(), initExit(), initExit()}, "TaskExit of the init after the process had already exited"},
		"start after exit":          {[]events.Event{taskCreate(), initExit(), taskStart()}, "TaskStart of the init after the process had already exited"},
		"delete before exit":        {[]events.Event{taskCreate(), taskStart(), taskDelete()}, "TaskDelete of the init before any TaskExit"},
		"created, deleted, no exit": {[]events.Event{taskCreate(), taskDelete()}, "TaskDelete of the init before any TaskExit"},
		"started, deleted as if it never ran": {[]events.Event{taskCreate(), taskStart(), restoreNeverRanDelete()},
			"TaskDelete of the init before any TaskExit"},
		"event after delete":      {[]events.Event{taskCreate(), taskStart(), initExit(), taskDelete(), initExit()}, "TaskExit of the init without a TaskCreate"},
		"exec started, not added": {[]events.Event{taskCreate(), taskStart(), execStarted("e1")}, "TaskExecStarted of exec e1 for a process never created"},
		"exec exits twice": {[]events.Event{taskCreate(), taskStart(), execAdded("e1"), execStarted("e1"),
			execExit("e1"), execExit("e1")}, "TaskExit of exec e1 for a process never created (or already exited)"},
		"init exits before a running exec": {[]events.Event{taskCreate(), taskStart(), execAdded("e1"),
			execStarted("e1"), initExit()}, "TaskExit of the init before TaskExit of exec e1"},
		"OOM after the init's exit": {[]events.Event{taskCreate(), taskStart(), initExit(), taskOOM()},
			"TaskOOM after TaskExit of the init"},
	} {
		violations := observeAll(tc.sequence)
		if len(violations) != 1 || !strings.Contains(violations[0].String(), tc.want) {
			t.Errorf("%s: violations %v, want one with %q", name, violations, tc.want)
		}
	}
	// An exec exiting after its init is flagged (and the init's exit
	// was flagged for coming first).
	violations := observeAll([]events.Event{taskCreate(), taskStart(), execAdded("e1"), execStarted("e1"), initExit(), execExit("e1")})
	if len(violations) != 2 || !strings.Contains(violations[1].String(), "TaskExit of exec e1 after TaskExit of the init") {
		t.Errorf("exec exit after the init's: %v", violations)
	}
}

// Containers are checked apart: events of several interleave freely.
func TestOrderCheckerKeepsContainersApart(t *testing.T) {
	checker := NewOrderChecker()
	var wg sync.WaitGroup
	violations := make(chan OrderViolation, 100)
	for _, id := range []string{"a", "b", "c", "d"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range []events.Event{
				&eventstypes.TaskCreate{ContainerID: id},
				&eventstypes.TaskStart{ContainerID: id},
				&eventstypes.TaskExecAdded{ContainerID: id, ExecID: "x"},
				&eventstypes.TaskExecStarted{ContainerID: id, ExecID: "x"},
				&eventstypes.TaskExit{ContainerID: id, ID: "x"},
				&eventstypes.TaskExit{ContainerID: id, ID: id},
				&eventstypes.TaskDelete{ContainerID: id},
			} {
				for _, v := range checker.Observe(e) {
					violations <- v
				}
			}
		}()
	}
	wg.Wait()
	close(violations)
	for v := range violations {
		t.Errorf("interleaved containers: %v", v)
	}
}

// The sink checks what it queues, so a container publishing out of order is
// caught where it happens.
func TestEventSinkChecksTheOrderItPublishes(t *testing.T) {
	var logged bytes.Buffer
	log.L.Logger.SetOutput(&logged)
	defer log.L.Logger.SetOutput(os.Stderr)
	recorded := &recordedEvents{}
	sink := NewEventSink(namespaces.WithNamespace(context.Background(), "test"), recorded)
	sink.Publish("/tasks/create", taskCreate())
	sink.Publish("/tasks/exit", initExit())
	sink.Publish("/tasks/start", taskStart()) // out of order: still sent
	sink.Flush(context.Background())
	if got := strings.Join(recorded.topics, " "); got != "/tasks/create /tasks/exit /tasks/start" {
		t.Fatalf("sent %s", got)
	}
	line := logged.String()
	for _, want := range []string{"level=error", "event order violation", "TaskStart of the init after the process had already exited"} {
		if !strings.Contains(line, want) {
			t.Errorf("the shim's log lacks %q:\n%s", want, line)
		}
	}
}

package integration

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/typeurl/v2"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

var eventOrderScenario = scenarioSpec{
	name: "event order with execs",
	test: "TestReliabilityEventOrder",
	about: "A container runs two execs, one that exits by itself and one still running when the container is killed. " +
		"For every process its events must come in order (TaskCreate < TaskStart < TaskExit < TaskDelete for the init, " +
		"TaskExecAdded < TaskExecStarted < TaskExit for an exec), and every exec's TaskExit must come before the init's. " +
		"The client checks what containerd delivered; the shim checks what it published and must log no order violation.",
}

func TestReliabilityEventOrder(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		sc := newScenario(t, eventOrderScenario, s)
		rounds := sized(3, 20)
		var violations []string
		for round := range rounds {
			violations = append(violations, eventOrderRound(t, s, fmt.Sprintf("order-%d", round))...)
		}
		sc.figure("rounds", rounds)
		sc.figure("order violations", len(violations))
		sc.checkShimEventOrder(s)
		if len(violations) > 0 {
			sc.shimFellShort("events dropped or out of order", errors.New(strings.Join(violations, "\n")))
		}
	})
}

// shimOrderViolations returns the lines in which our shim, on the session's
// daemon, logged an event published out of order: the shim checks its own
// sequence as it queues it (shim/eventorder.go), and containerd copies the
// shim's log into its own. The stock shim does not check; it logs none.
func shimOrderViolations(s *session) []string {
	lines := s.daemon.LogLinesWith("event order violation", 1000)
	return linesWith(lines, "runtime="+harness.TeachRuntime)
}

// checkShimEventOrder records, on our row, how many order violations the
// shim logged, and fails the row if it logged any.
func (sc *scenario) checkShimEventOrder(s *session) {
	sc.t.Helper()
	if s.runtime != harness.TeachRuntime {
		return
	}
	violations := shimOrderViolations(s)
	sc.figure("order violations in the shim's log", len(violations))
	if len(violations) > 0 {
		sc.t.Errorf("the shim logged events out of order:\n%s", strings.Join(violations, "\n"))
	}
}

// assertShimEventOrder fails t if our shim logged an event out of order.
func assertShimEventOrder(t *testing.T, s *session) {
	t.Helper()
	if violations := shimOrderViolations(s); len(violations) > 0 {
		t.Errorf("the shim logged events out of order:\n%s", strings.Join(violations, "\n"))
	}
}

// eventOrderRound runs one container with two execs and returns what is out
// of order in its events.
func eventOrderRound(t *testing.T, s *session, id string) []string {
	envelopes, errs := s.client.Subscribe(s.ctx, fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, s.ns))
	container := s.newContainer(t, id, []string{"sleep", "1000"})
	task, initExit := s.startTask(t, container, &stdio{})

	quick, err := task.Exec(s.ctx, "quick", execSpec(t, s, container, "sh", "-c", "exit 5"), cio.NewCreator())
	if err != nil {
		t.Fatal(err)
	}
	quickExit, _ := quick.Wait(s.ctx)
	if err := quick.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeOf(t, quickExit); code != 5 {
		t.Errorf("quick exec: exit %d, want 5", code)
	}
	if _, err := quick.Delete(s.ctx); err != nil {
		t.Fatal(err)
	}
	lingering, err := task.Exec(s.ctx, "lingering", execSpec(t, s, container, "sleep", "1000"), cio.NewCreator())
	if err != nil {
		t.Fatal(err)
	}
	lingeringExit, _ := lingering.Wait(s.ctx)
	if err := lingering.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exitCodeOf(t, lingeringExit)
	lingering.Delete(s.ctx)
	deleteTask(t, s.ctx, task, exitCodeOf(t, initExit))

	// Collect until the init's TaskDelete.
	var seen []orderedEvent
	timeout := time.After(s.settleTimeout())
collect:
	for {
		select {
		case envelope := <-envelopes:
			payload, err := typeurl.UnmarshalAny(envelope.Event)
			if err != nil {
				t.Fatal(err)
			}
			e := describeOrdered(envelope.Topic, payload)
			if e.container != id {
				continue
			}
			seen = append(seen, e)
			if envelope.Topic == "/tasks/delete" {
				break collect
			}
		case err := <-errs:
			t.Fatalf("event subscription: %v", err)
		case <-timeout:
			break collect
		}
	}
	return orderViolations(id, seen)
}

// orderedEvent is one lifecycle event: which container and process it is
// about (process "" for the init) and what happened.
type orderedEvent struct {
	container, process, step string
}

func describeOrdered(topic string, payload any) orderedEvent {
	switch e := payload.(type) {
	case *apievents.TaskCreate:
		return orderedEvent{e.ContainerID, "", "create"}
	case *apievents.TaskStart:
		return orderedEvent{e.ContainerID, "", "start"}
	case *apievents.TaskExecAdded:
		return orderedEvent{e.ContainerID, e.ExecID, "create"}
	case *apievents.TaskExecStarted:
		return orderedEvent{e.ContainerID, e.ExecID, "start"}
	case *apievents.TaskExit:
		process := e.ID
		if process == e.ContainerID {
			process = ""
		}
		return orderedEvent{e.ContainerID, process, "exit"}
	case *apievents.TaskDelete:
		process := e.ID
		if process == e.ContainerID {
			process = ""
		}
		return orderedEvent{e.ContainerID, process, "delete"}
	}
	return orderedEvent{step: topic}
}

// orderViolations checks the events of one container: each process's steps
// in order, each step once, and every exec's exit before the init's.
func orderViolations(id string, events []orderedEvent) []string {
	rank := map[string]int{"create": 0, "start": 1, "exit": 2, "delete": 3}
	last := map[string]int{}
	steps := map[string][]string{}
	initExitAt := -1
	var problems []string
	for i, e := range events {
		r, ok := rank[e.step]
		if !ok {
			continue
		}
		name := "init"
		if e.process != "" {
			name = "exec " + e.process
		}
		steps[name] = append(steps[name], e.step)
		if prev, seen := last[name]; seen && r <= prev {
			problems = append(problems, fmt.Sprintf("%s: %s: %s after %v", id, name, e.step, steps[name][:len(steps[name])-1]))
		}
		last[name] = r
		if name == "init" && e.step == "exit" {
			initExitAt = i
		}
		if name != "init" && e.step == "exit" && initExitAt >= 0 {
			problems = append(problems, fmt.Sprintf("%s: %s exited after the init's TaskExit", id, name))
		}
	}
	want := map[string][]string{
		"init":           {"create", "start", "exit", "delete"},
		"exec quick":     {"create", "start", "exit"},
		"exec lingering": {"create", "start", "exit"},
	}
	for name, w := range want {
		if got := strings.Join(steps[name], " "); got != strings.Join(w, " ") {
			problems = append(problems, fmt.Sprintf("%s: %s: events %q, want %q", id, name, got, strings.Join(w, " ")))
		}
	}
	return problems
}

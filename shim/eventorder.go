package shim

import (
	"fmt"
	"sync"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"

	"github.com/teach/containerd-shim-teach-v2/process"
)

// OrderChecker watches the events the shim publishes, in the order it queues
// them, and names every one that breaks the order containerd relies on:
//
//   - for each process: created (TaskCreate, TaskExecAdded) < started
//     (TaskStart, TaskExecStarted) < TaskExit < TaskDelete, each once; a
//     process may exit without having started (a created init killed by
//     Delete), and the init's TaskDelete comes only after its TaskExit,
//     unless it never had a process (a restore from a checkpoint that
//     failed: no TaskExit, TaskDelete with pid 0);
//   - every started exec's TaskExit before its container's init's TaskExit;
//   - no TaskOOM after the init's TaskExit: an OOM kill is reported before
//     the exit it caused, and once the init has exited nothing of the
//     container is left to be killed.
//
// container.go keeps the order (see the comment on Container); this checks
// that it was kept, at run time, so a broken order shows in the shim's log rather
// than as a client's Wait that never returns.
type OrderChecker struct {
	mu         sync.Mutex
	containers map[string]*containerSteps // guarded by mu
}

// step is how far a process has come, in containerd's order.
type step int

const (
	notSeen step = iota
	created
	started
	exited
	deleted
)

var stepNames = map[step]string{created: "created", started: "started", exited: "exited", deleted: "deleted"}

// containerSteps is what the checker remembers of one container: its init's
// step and those of its execs still running. An exec is forgotten once it
// has exited (the shim sends no event for its delete), so an exec id can be
// used again.
type containerSteps struct {
	init  step
	execs map[string]step
}

// OrderViolation is one event out of order: the event, and the earlier one
// it should have come before or after.
type OrderViolation struct {
	Container string
	Event     string // e.g. "TaskExit of exec e1"
	Problem   string // e.g. "after TaskExit of the init"
}

func (v OrderViolation) String() string {
	return fmt.Sprintf("container %s: %s %s", v.Container, v.Event, v.Problem)
}

// NewOrderChecker makes a checker that has seen no event.
func NewOrderChecker() *OrderChecker {
	return &OrderChecker{containers: make(map[string]*containerSteps)}
}

// Observe records one published event and returns what it breaks, if
// anything. Events that are not about a task's life pass unchecked.
func (o *OrderChecker) Observe(event events.Event) []OrderViolation {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e := event.(type) {
	case *eventstypes.TaskCreate:
		// A container id may be used again once its task was deleted.
		o.containers[e.ContainerID] = &containerSteps{init: created, execs: map[string]step{}}
		return nil
	case *eventstypes.TaskStart:
		return o.initStep(e.ContainerID, started, "TaskStart")
	case *eventstypes.TaskExecAdded:
		return o.execStep(e.ContainerID, e.ExecID, created, "TaskExecAdded")
	case *eventstypes.TaskExecStarted:
		return o.execStep(e.ContainerID, e.ExecID, started, "TaskExecStarted")
	case *eventstypes.TaskExit:
		if e.ID != "" && e.ID != e.ContainerID {
			return o.execStep(e.ContainerID, e.ID, exited, "TaskExit")
		}
		return o.initExit(e.ContainerID)
	case *eventstypes.TaskDelete:
		if e.ID != "" && e.ID != e.ContainerID {
			return nil // an exec's delete: not part of the checked order
		}
		return o.initDelete(e.ContainerID, e.Pid)
	case *eventstypes.TaskOOM:
		return o.oom(e.ContainerID)
	}
	return nil
}

// container returns what is known of id, and a violation if its TaskCreate
// was never published.
func (o *OrderChecker) container(id, event string) (*containerSteps, []OrderViolation) {
	c, ok := o.containers[id]
	if !ok {
		return nil, []OrderViolation{{Container: id, Event: event, Problem: "without a TaskCreate before it"}}
	}
	return c, nil
}

func (o *OrderChecker) initStep(id string, next step, event string) []OrderViolation {
	c, violations := o.container(id, event+" of the init")
	if c == nil {
		return violations
	}
	if v := stepViolation(id, event+" of the init", c.init, next); v != nil {
		return []OrderViolation{*v}
	}
	c.init = next
	return nil
}

// initDelete checks the init's TaskDelete and forgets the container. A
// container created from a checkpoint whose restore never succeeded had no
// process (its TaskDelete says pid 0): nothing of it exited, so its
// TaskDelete follows its TaskCreate directly.
func (o *OrderChecker) initDelete(id string, pid uint32) []OrderViolation {
	c, violations := o.container(id, "TaskDelete of the init")
	if c == nil {
		return violations
	}
	delete(o.containers, id)
	if pid == 0 && c.init == created {
		return nil
	}
	if v := stepViolation(id, "TaskDelete of the init", c.init, deleted); v != nil {
		return []OrderViolation{*v}
	}
	return nil
}

// initExit checks the init's TaskExit: in its own order, and after the exit
// of every exec that started.
func (o *OrderChecker) initExit(id string) []OrderViolation {
	c, violations := o.container(id, "TaskExit of the init")
	if c == nil {
		return violations
	}
	for exec, s := range c.execs {
		if s == started {
			violations = append(violations, OrderViolation{Container: id, Event: "TaskExit of the init",
				Problem: fmt.Sprintf("before TaskExit of exec %s, which is still running", exec)})
		}
	}
	if v := stepViolation(id, "TaskExit of the init", c.init, exited); v != nil {
		return append(violations, *v)
	}
	c.init = exited
	return violations
}

func (o *OrderChecker) execStep(id, exec string, next step, event string) []OrderViolation {
	name := fmt.Sprintf("%s of exec %s", event, exec)
	c, violations := o.container(id, name)
	if c == nil {
		return violations
	}
	if next == exited && c.init >= exited {
		violations = append(violations, OrderViolation{Container: id, Event: name, Problem: "after TaskExit of the init"})
	}
	if v := stepViolation(id, name, c.execs[exec], next); v != nil {
		return append(violations, *v)
	}
	if next == exited {
		delete(c.execs, exec)
	} else {
		c.execs[exec] = next
	}
	return violations
}

func (o *OrderChecker) oom(id string) []OrderViolation {
	c, violations := o.container(id, "TaskOOM")
	if c == nil {
		return violations
	}
	if c.init >= exited {
		return []OrderViolation{{Container: id, Event: "TaskOOM", Problem: "after TaskExit of the init (an OOM kill is reported before the exit it caused)"}}
	}
	return nil
}

// stepViolation checks one process's step from what it was: forward only,
// the first step a creation, and no delete without an exit.
func stepViolation(id, event string, from, next step) *OrderViolation {
	switch {
	case from == notSeen && next != created:
		return &OrderViolation{Container: id, Event: event, Problem: "for a process never created (or already exited)"}
	case next <= from:
		return &OrderViolation{Container: id, Event: event, Problem: "after the process had already " + stepNames[from]}
	case next == deleted && from != exited:
		return &OrderViolation{Container: id, Event: event, Problem: "before any TaskExit of the init"}
	}
	return nil
}

// seed records what a shim that took over from an earlier one (an upgrade)
// knows of a container: the steps its processes have taken, whose events
// the earlier shim published (or handed over, already checked).
func (o *OrderChecker) seed(c *Container) {
	o.mu.Lock()
	defer o.mu.Unlock()
	steps := &containerSteps{init: stepOf(c.init.State()), execs: map[string]step{}}
	for _, e := range c.execList() {
		steps.execs[e.ID()] = stepOf(e.State())
	}
	o.containers[c.ID] = steps
}

func stepOf(state process.State) step {
	switch state {
	case process.Running, process.Paused:
		return started
	case process.Stopped:
		return exited
	case process.Deleted:
		return deleted
	}
	return created
}

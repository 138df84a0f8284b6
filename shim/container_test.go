package shim

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	runc "github.com/containerd/go-runc"

	"github.com/teach/containerd-shim-teach-v2/observe"
	"github.com/teach/containerd-shim-teach-v2/process"
)

// An exec has exited, but its TaskExit is still on its way (its output
// still drains), when the container's init exits. containerd wants every
// exec's TaskExit before the init's: the init's must wait for it.
//
// The test runs in a synctest bubble: synctest.Wait returns once every
// goroutine of the exit pipeline is blocked, so "the init's TaskExit has not
// gone out" is checked when nothing more can happen, not after a guess of
// how long is enough.
func TestAnExitedExecsTaskExitGoesBeforeTheInits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, recorded := newTestContainer("c1")
		init := newExitedProcess("c1", 100)
		c.initTracked = track(init, observe.Nop{})
		exec := newExitedProcess("e1", 200)
		if err := exec.life.MoveTo(process.Running, "e1"); err != nil {
			t.Fatal(err)
		}
		drained := make(chan struct{})
		exec.done = drained
		var drainOnce sync.Once
		drain := func() { drainOnce.Do(func() { close(drained) }) }
		defer func() {
			// Whatever failed, the pipeline's goroutines end with
			// the bubble.
			drain()
			synctest.Wait()
			close(c.events.wake)
		}()
		e1 := track(exec, observe.Nop{})
		c.execs["e1"] = e1
		router := NewExitRouter(observe.Nop{})
		router.OpenWindow().Claim(100, exitTarget{container: c, process: c.initTracked})
		router.OpenWindow().Claim(200, exitTarget{container: c, process: e1})
		// What containerd saw before: the container and the exec started.
		c.publishInOrder(c.observer, topicTaskCreate, &eventstypes.TaskCreate{ContainerID: "c1", Pid: 100})
		c.publishInOrder(c.observer, topicTaskStart, &eventstypes.TaskStart{ContainerID: "c1", Pid: 100})
		c.publishInOrder(e1.observer, topicTaskExecAdded, &eventstypes.TaskExecAdded{ContainerID: "c1", ExecID: "e1"})
		c.publishInOrder(e1.observer, topicTaskExecStarted, &eventstypes.TaskExecStarted{ContainerID: "c1", ExecID: "e1", Pid: 200})

		router.route(runc.Exit{Pid: 200, Status: 0, Timestamp: time.Now()})
		synctest.Wait()
		if _, exited := exec.Exit(); !exited {
			t.Fatal("the exec's exit was not recorded")
		}
		router.route(runc.Exit{Pid: 100, Status: 137, Timestamp: time.Now()})
		synctest.Wait()
		if exits := publishedExits(recorded); len(exits) != 0 {
			t.Fatalf("TaskExit of %v published while the exec's output still drained; want none yet", exits)
		}

		drain()
		synctest.Wait()
		if exits := publishedExits(recorded); len(exits) != 2 || exits[0] != "e1" || exits[1] != "c1" {
			t.Fatalf("TaskExit published for %v; want e1, then the init c1", exits)
		}
	})
}

// publishedExits are the ids whose TaskExit reached containerd, in order.
func publishedExits(recorded *recordedEvents) []string {
	recorded.mu.Lock()
	defer recorded.mu.Unlock()
	var ids []string
	for _, exit := range recorded.exits {
		ids = append(ids, exit.ID)
	}
	return ids
}

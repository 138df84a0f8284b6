package process

import (
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// State is where a process is in its life. Init and exec processes share it.
type State string

const (
	Created State = "created" // runc has set it up; it waits for Start
	// CreatedFromCheckpoint: the container is to come back from a CRIU
	// checkpoint. No process exists yet; Start runs `runc restore`, which
	// brings back the process that was saved, already running.
	CreatedFromCheckpoint State = "created from checkpoint"
	Running               State = "running"
	Paused                State = "paused"
	Stopped               State = "stopped" // it exited; its status is kept until Delete
	Deleted               State = "deleted"
)

// transitions is every legal step, in one place. Any step not listed is
// refused with FailedPrecondition.
var transitions = map[State][]State{
	// A created process can be started, or die before it ever runs (killed,
	// or its runc init failed). A created init is killed before it is
	// deleted, so it passes through Stopped and has an exit status to
	// report; a created exec is only a description and is dropped.
	Created: {Running, Stopped, Deleted},
	// Start restores it with runc restore, and it runs, or has already
	// exited by the time runc restore returns. One that is never restored
	// (the restore failed, or Start never came) has nothing to kill: Delete
	// records that no process ran, so it too passes through Stopped.
	CreatedFromCheckpoint: {Running, Stopped},
	Running:               {Paused, Stopped},
	Paused:                {Running, Stopped},
	Stopped:               {Deleted},
}

func canMove(from, to State) bool {
	for _, next := range transitions[from] {
		if next == to {
			return true
		}
	}
	return false
}

// ExitStatus is how and when a process ended.
type ExitStatus struct {
	Pid      int
	Code     int // exit code, or 128+signal
	ExitedAt time.Time
}

// Lifecycle holds a process's state, and its exit once it has one. It is the
// only place that changes state, so every transition is checked the same way.
type Lifecycle struct {
	mu     sync.Mutex
	state  State
	exit   ExitStatus
	exited chan struct{} // closed when the exit status is known
}

// NewLifecycle starts a process's life in Created.
func NewLifecycle() *Lifecycle { return newLifecycleAt(Created) }

// NewCheckpointLifecycle starts the life of a container that Start will
// restore from a checkpoint.
func NewCheckpointLifecycle() *Lifecycle { return newLifecycleAt(CreatedFromCheckpoint) }

func newLifecycleAt(state State) *Lifecycle {
	return &Lifecycle{state: state, exited: make(chan struct{})}
}

// State returns the current state.
func (l *Lifecycle) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Check reports whether the process could move to next now, without moving.
func (l *Lifecycle) Check(next State, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check(next, id)
}

func (l *Lifecycle) check(next State, id string) error {
	if !canMove(l.state, next) {
		return fmt.Errorf("process %s is %s, it cannot become %s: %w", id, l.state, next, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// MoveTo takes a checked step. Stopped is reached only through SetExited.
func (l *Lifecycle) MoveTo(next State, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if next == Stopped {
		return fmt.Errorf("process %s: stopped is set by its exit, not requested: %w", id, errdefs.ErrInvalidArgument)
	}
	if err := l.check(next, id); err != nil {
		return err
	}
	l.state = next
	return nil
}

// SetExited records the exit once; a second exit for the same process (which
// the reaper never produces) is ignored rather than overwriting the first.
func (l *Lifecycle) SetExited(exit ExitStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == Stopped || l.state == Deleted {
		return
	}
	l.state = Stopped
	l.exit = exit
	close(l.exited)
}

// Exited is closed once the exit status is known.
func (l *Lifecycle) Exited() <-chan struct{} { return l.exited }

// Exit returns the exit status; ok is false while the process has not exited.
func (l *Lifecycle) Exit() (exit ExitStatus, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.exit, l.state == Stopped || l.state == Deleted
}

// Package process runs a container's processes through runc and follows each
// one through its states: created → running (⇄ paused) → stopped → deleted.
//
// The init process is the container itself (runc create, then runc start;
// or, for a container created from a checkpoint, runc restore in Start: see
// restore.go); exec processes join it later. Both are driven through Process, and both
// take their steps through a Lifecycle, so the legal steps are the same table
// for every process (see state.go).
package process

import (
	"context"
	"time"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
)

// Process is one process of a container, as the task service sees it.
type Process interface {
	// ID is the exec id, or the container id for the init process.
	ID() string
	Pid() int
	State() State
	Stdio() stdio.Paths

	Start(ctx context.Context) error
	// Kill sends signal to the process; with all, to every process in the
	// container.
	Kill(ctx context.Context, signal uint32, all bool) error
	// Delete releases everything the process holds and returns its exit.
	Delete(ctx context.Context) (ExitStatus, error)
	// CloseIO closes the process's stdin, so it reads end-of-file.
	CloseIO()
	// Resize sets the window size of the process's terminal, if it has one.
	Resize(width, height uint32) error

	// OwnsExit confirms that the exit the Reaper collected for pid is this
	// process's, not an earlier holder's of the same pid (see pidfd.go).
	OwnsExit(pid int) bool
	// ExitAttribution is how OwnsExit knows: by pidfd or by pid alone.
	ExitAttribution() ExitAttribution
	// SetExited records the exit the Reaper collected for Pid.
	SetExited(code int, at time.Time)
	// Exited is closed once the exit status is known.
	Exited() <-chan struct{}
	// Exit returns the exit status; ok is false while the process runs.
	Exit() (exit ExitStatus, ok bool)
	// OutputDone is closed once every byte the process wrote to stdout and
	// stderr has reached containerd's FIFOs.
	OutputDone() <-chan struct{}
}

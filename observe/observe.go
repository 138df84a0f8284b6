// Package observe is the seam between the shim's core and what watches it.
//
// The core — the task service (shim/), a container's processes (process/)
// and their stdio (io/) — tells an Observer what happened, at a few places:
// a request from containerd, a runc command, a stream opened or closed, a
// signal sent, an exit reaped, an event published, a mount. It never asks
// whether anyone listens. Nop, the default, does nothing; the journal (the
// shim's journal.go) writes each of these down, and from them works out why
// each process ended (its exit forensics).
//
// This package holds only the interface and the facts it passes, so that
// process/ and io/ depend on the seam and not on the journal behind it.
//
// An Observer speaks for one thing the shim serves:
//
//	the shim as a whole       the task service's: requests, exits no process claimed
//	  a container             Container: its mounts and its container-wide events
//	    one of its processes  Process: runc commands, streams, signals, exits, events
//
// An observer hears only what concerns it; the methods of another scope are
// never called on it.
package observe

import (
	"context"
	"encoding/json"
	"os"
	"time"
)

// Observer is told what the core does. Its methods are called on the
// request path and in the exit pipeline: they return at once, and none may
// block the core on anything but a short lock of its own.
type Observer interface {
	// RPC is a request from containerd: it runs call, which decodes the
	// request with decode, and so sees the request arrive (once decoded)
	// and its answer leave. It must call call once, and return its
	// answer. The shim's observer is asked.
	RPC(ctx context.Context, method string, decode Decode, call Call) (any, error)
	// Container is the observer of a container the shim begins to create,
	// asked of the shim's observer before anything is done for it. An
	// observer that cannot take the container's settings refuses it, and
	// the Create fails with that error.
	Container(Container) (Observer, error)
	// Process is the observer of one of the container's processes, asked
	// of the container's observer as the shim begins to create the
	// process: exec "" is the init, created with the container.
	Process(exec string) Observer

	// RuncCommand is one runc command: it runs run, with the context it
	// is given (the observer may mark it, to recognize the command when
	// go-runc starts it), and so sees the command start and end. It must
	// call run once, and return its error.
	RuncCommand(ctx context.Context, name string, run func(context.Context) error) error
	// StreamOpened: the shim opened one of the process's stdio streams
	// (a FIFO, a pipe, a file, a console socket, the pty).
	StreamOpened(Stream)
	// StreamClosed: a stream's copy ended (Bytes says what it carried), or
	// the shim closed it.
	StreamClosed(Stream)
	// SignalSent is a signal to the process. One sent on containerd's
	// behalf (Signal.By) is told before it goes: it may end the process,
	// and the exit be reaped, before the sender hears back; undelivered
	// takes it back if it did not go. How it went (Signal.How) is told
	// after, with the time it went.
	SignalSent(Signal) (undelivered func())
	// Reaped: the Reaper collected the process's exit. Told to the shim's
	// observer, it is an exit no process claimed.
	Reaped(Reap)
	// EventPublished: an event was queued for containerd, about the
	// container (TaskCreate, TaskOOM, TaskDelete...) or about this
	// process (TaskStart, TaskExecStarted, TaskExit...).
	EventPublished(topic string, event any)
	// Mounted: the container's rootfs was mounted, or failed to be (Err).
	Mounted(Mount)
	// Unmounted: the container's rootfs was unmounted, or failed to be.
	Unmounted(Mount)
	// CgroupRead: what the kernel says of the container's cgroup after a
	// step: its freezer after a pause or resume, or the file that counted
	// an OOM kill, just before its TaskOOM.
	CgroupRead(Cgroup)
	// Upgraded: the shim process was upgraded in place, at the same pid
	// (shim/upgrade.go), or the upgrade did not take (Err).
	Upgraded(Upgrade)
	// Remembered is what the observer of a process has gathered of its
	// life that the next binary's observer needs after an in-place
	// upgrade (the journal: when the process was created and started,
	// the kills sent to it). The core carries it in the upgrade's state
	// without reading it, and gives it back in Container.Remembered. nil
	// for nothing.
	Remembered() json.RawMessage
}

// Decode decodes a request into its message.
type Decode = func(req any) error

// Call handles one request: ttrpc's Method.
type Call = func(ctx context.Context, decode Decode) (resp any, err error)

// Container is a container the shim begins to create.
type Container struct {
	ID     string
	Bundle string
	// Level is how closely it is to be watched: the journal level it asks
	// for (its annotation io.containerd.teach.v2.journal, else the runtime
	// options' Journal); "" for the default.
	Level string
	// HandedOver: a shim before this one, in the same process, watched the
	// container until an in-place upgrade; what it wrote goes on.
	HandedOver bool
	// Remembered is, for a container handed over, what the observers of
	// its processes remembered (Observer.Remembered), by exec id, "" for
	// the init: the observer that Process gives takes up from there.
	Remembered map[string]json.RawMessage
}

// Stream is one of a process's stdio streams, or all of them ("stdio",
// "pty"), opened or closed.
type Stream struct {
	Name string // "stdin", "stdout", "stderr", "stdout+stderr", "stdio", "pty", "console-socket"
	// What it is when opened ("fifo", "pipe", "file", "logging
	// program"...), or what was closed.
	What string
	Path string
	// File is the shim's end of an opened stream, when it is a file whose
	// descriptor may be read.
	File *os.File
	// Bytes is what a stream carried, when its copy ended.
	Bytes int64
}

// Signal is a signal sent to a process.
type Signal struct {
	Number int
	Pid    int
	All    bool // to every process of the container
	// By is who asked, for a signal sent on containerd's behalf: "Kill
	// request", "Delete request".
	By string
	// How is the way the signal went, told once it did.
	How string
	// At is when it went; zero for now.
	At time.Time
}

// Reap is an exit the Reaper collected.
type Reap struct {
	Pid    int
	Status int       // as a shell shows it: 128+signal when killed
	At     time.Time // when it was reaped
	// Held: it was reaped while a process was being started and runc had
	// not yet told its pid, and a start window kept it until then.
	Held bool
}

// Mount is a mount of the container's rootfs.
type Mount struct {
	Type, Source string
	Target       string
	Err          error // why it failed; nil when it did not
}

// Cgroup is a reading of the container's cgroup after Step ("pause",
// "resume", "oom"): File is the file read, Says its line, Err why it could
// not be read.
type Cgroup struct {
	Step, File, Says string
	Err              error
}

// Upgrade is one in-place upgrade of the shim: the versions before and
// after, the binary, how long the containers' shim was frozen, what was
// handed over, and why it did not take, if it did not.
type Upgrade struct {
	From, To string
	Binary   string
	Switch   time.Duration
	Handed   string
	Err      string
}

// Nop is the observer that watches nothing: the default.
type Nop struct{}

var _ Observer = Nop{}

func (Nop) RPC(ctx context.Context, method string, decode Decode, call Call) (any, error) {
	return call(ctx, decode)
}
func (Nop) Container(Container) (Observer, error) { return Nop{}, nil }
func (Nop) Process(string) Observer               { return Nop{} }
func (Nop) RuncCommand(ctx context.Context, name string, run func(context.Context) error) error {
	return run(ctx)
}
func (Nop) StreamOpened(Stream)                {}
func (Nop) StreamClosed(Stream)                {}
func (Nop) SignalSent(Signal) func()           { return nothing }
func (Nop) Reaped(Reap)                        {}
func (Nop) EventPublished(topic string, _ any) {}
func (Nop) Mounted(Mount)                      {}
func (Nop) Unmounted(Mount)                    {}
func (Nop) CgroupRead(Cgroup)                  {}
func (Nop) Upgraded(Upgrade)                   {}
func (Nop) Remembered() json.RawMessage        { return nil }

func nothing() {}

// Package journal keeps the shim's lifecycle journal: one JSON line per step
// the shim takes for a container (a request in and its answer out, a runc
// command, a FIFO opened, a signal relayed, a child reaped, an event sent),
// in a file that outlives the shim, so `containerd-shim-teach-v2 trace` can
// tell the story afterwards, even when the shim was killed.
//
// The writer (Journal) is on the shim's request path, so it is small: one
// mutex, one write(2) per line, no goroutine. The reader (Read, ParseLine)
// serves trace.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Kind names what an entry records.
type Kind string

const (
	KindJournal Kind = "journal" // the journal was opened: Pid is the shim, Name its group, Msg the level; in a shim-wide journal, ID is the container whose bundle the shim started in
	KindRPCIn   Kind = "rpc.in"  // a request from containerd arrived: Name is the method
	KindRPCOut  Kind = "rpc.out" // the answer left: Took, and Err (an errdefs kind) and Msg on failure
	KindRunc    Kind = "runc"    // a runc command ended: Argv, Pid, Code, Took; Msg is runc's reason on failure
	KindOpen    Kind = "open"    // a stream's FIFO, pipe, file or console was opened: Name is the stream, Path
	KindClose   Kind = "close"   // ... and closed; at debug level Bytes says how much it carried
	KindSignal  Kind = "signal"  // a signal was relayed to a process: Signal, Pid, All
	KindReaped  Kind = "reaped"  // the shim collected a child's exit: Pid, Code
	KindEvent   Kind = "event"   // an event was queued for containerd: Name is the topic
	KindOOM     Kind = "oom"     // the kernel's OOM killer acted in the container's cgroup; Path is the file that counted it
	KindCgroup  Kind = "cgroup"  // what the kernel says of the container's cgroup after a step: Name the step, Path the file, Msg its line
	KindMount   Kind = "mount"   // a rootfs mount: Name the type, Msg the source, Path the target
	KindUnmount Kind = "unmount" // the rootfs was unmounted: Path
	KindExit    Kind = "exit"    // how a process ended (End)
	KindCleanup Kind = "cleanup" // containerd ran the `delete` action after the shim died
	KindShim    Kind = "shim"    // something about the shim process itself: Name says what
	KindClosed  Kind = "closed"  // the container was deleted; the journal ends
	KindUpgrade Kind = "upgrade" // the shim was upgraded in place: Name "old → new" versions, Path the binary, Took the switch, Msg what was handed over, Err why it did not take
)

// Entry is one line of the journal. Fields that do not apply to a kind are
// left out of the line.
type Entry struct {
	// Mono is CLOCK_MONOTONIC in nanoseconds: comparable between the shim
	// and the `delete` action run after it, and immune to clock changes.
	Mono int64     `json:"mono"`
	Time time.Time `json:"time"` // the wall clock, for humans
	Kind Kind      `json:"kind"`
	ID   string    `json:"id,omitempty"`   // the container
	Exec string    `json:"exec,omitempty"` // the exec process; empty for the init process

	Name   string   `json:"name,omitempty"`
	Took   int64    `json:"took,omitempty"` // nanoseconds
	Err    string   `json:"err,omitempty"`
	Msg    string   `json:"msg,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Pid    int      `json:"pid,omitempty"`
	Code   *int     `json:"code,omitempty"` // exit status; a pointer, since 0 is a status
	Signal int      `json:"signal,omitempty"`
	All    bool     `json:"all,omitempty"`
	Path   string   `json:"path,omitempty"`
	FD     int      `json:"fd,omitempty"`
	Bytes  int64    `json:"bytes,omitempty"`
	End    *Ending  `json:"end,omitempty"`

	// Repeats, on an entry of a kind that comes in floods (an OOM kill and
	// its event, in a container whose processes the OOM killer kills over
	// and over), makes it a count: it stands for this many entries like
	// it, from Since to Mono, that came after one that was written and
	// were counted, not written one by one (Journal.Record).
	Repeats int   `json:"repeats,omitempty"`
	Since   int64 `json:"since,omitempty"`

	// Shared is set by the reader, never written: the entry comes from a
	// grouped shim's shim-wide journal, merged into a container's story
	// (SharedDir).
	Shared bool `json:"-"`
}

// Cause says why a process ended.
type Cause string

const (
	CauseExited      Cause = "exited"       // it exited by itself
	CauseKillRequest Cause = "kill-request" // the signal of a Kill (or Delete) request from containerd
	CauseOOMKiller   Cause = "oom-killer"   // SIGKILL from the kernel, right after an OOM kill in its cgroup
	CauseInitExited  Cause = "init-exited"  // an exec killed because its container's init ended
	CauseOtherSignal Cause = "other-signal" // a signal the shim did not relay: from inside the container or the host
)

// Ending is a process's exit forensics: how and why it ended, its life's
// landmarks (monotonic, like Entry.Mono; zero when unknown) and what its
// stdio streams carried.
type Ending struct {
	Code       int    `json:"code"`             // the exit status as a shell shows it: 128+signal when killed
	Signal     int    `json:"signal,omitempty"` // the signal that killed it
	Cause      Cause  `json:"cause"`
	By         string `json:"by,omitempty"` // who sent the signal: "Kill request", "Delete request"
	KillSignal int    `json:"killSignal,omitempty"`
	KillAt     int64  `json:"killAt,omitempty"`
	OOMAt      int64  `json:"oomAt,omitempty"`
	Created    int64  `json:"created,omitempty"`
	Started    int64  `json:"started,omitempty"`
	Exited     int64  `json:"exited"`
	Stdin      int64  `json:"stdin"`
	Stdout     int64  `json:"stdout"`
	Stderr     int64  `json:"stderr"`
}

// Now reads the monotonic clock.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// Code boxes an exit status for Entry.Code.
func Code(c int) *int { return &c }

// maxLine bounds a journal line the reader accepts; the writer's lines are
// far shorter (an argv, an error message).
const maxLine = 256 << 10

var errNoKind = errors.New("journal line has no kind")

// ParseLine reads one journal line. It takes outside input (a file anyone
// with access to /run could have written), so it checks what the renderer
// relies on: a kind, and times that are not negative.
func ParseLine(line []byte) (Entry, error) {
	var e Entry
	if len(line) > maxLine {
		return e, fmt.Errorf("journal line of %d bytes is longer than %d", len(line), maxLine)
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return Entry{}, fmt.Errorf("journal line is not JSON: %w", err)
	}
	if e.Kind == "" {
		return Entry{}, errNoKind
	}
	if e.Mono < 0 || e.Took < 0 || e.Bytes < 0 || e.Repeats < 0 || e.Since < 0 {
		return Entry{}, fmt.Errorf("journal line of kind %q has a negative time or count", e.Kind)
	}
	if e.End != nil && (e.End.Exited < 0 || e.End.Created < 0 || e.End.Started < 0 || e.End.KillAt < 0 || e.End.OOMAt < 0) {
		return Entry{}, fmt.Errorf("journal line of kind %q has a negative time", e.Kind)
	}
	return e, nil
}

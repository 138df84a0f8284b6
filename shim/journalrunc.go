package shim

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	runc "github.com/containerd/go-runc"
)

// The journal records each runc command with its argv, pid and exit status.
// go-runc builds the command itself and shows it only to its Monitor, one
// for the whole process; so runcCommands stands in as the Monitor, passing
// each command on to the one it wraps (the Reaper, in the shim server), and
// a journaled command carries a tag in its environment (go-runc's
// WithExtraEnv) by which it is known when it starts and exits. Commands of
// a container whose journal is off carry no tag, and pass straight through.

// commandTagEnv is the environment variable holding the tag. runc ignores
// it; the container never sees it (its environment comes from config.json).
const commandTagEnv = "TEACH_SHIM_COMMAND"

// runcCommands is go-runc's Monitor while the journal watches: it hands
// each command to the Monitor it wraps, and notes what it sees of tagged
// ones.
type runcCommands struct {
	runc.ProcessMonitor
	inProgress sync.Map // tag → *observedCommand
	lastTag    atomic.Uint64
}

// watchRuncCommands makes runcCommands go-runc's Monitor, in front of
// monitor. It changes a global of go-runc's: a process calls it once, before
// its first runc command.
func watchRuncCommands(monitor runc.ProcessMonitor) *runcCommands {
	w := &runcCommands{ProcessMonitor: monitor}
	runc.Monitor = w
	return w
}

// observedCommand is what the Monitor saw of one tagged command.
type observedCommand struct {
	tag string

	mu     sync.Mutex
	argv   []string // guarded by mu
	pid    int      // guarded by mu
	status int      // guarded by mu
	exited bool     // guarded by mu
}

// watch tags the runc commands run with the returned context; forget ends
// the watch. Without a watcher (a unit test's journal) nothing is tagged.
func (w *runcCommands) watch(ctx context.Context) (context.Context, *observedCommand) {
	if w == nil {
		return ctx, nil
	}
	seen := &observedCommand{tag: strconv.FormatUint(w.lastTag.Add(1), 10)}
	w.inProgress.Store(seen.tag, seen)
	return runc.WithExtraEnv(ctx, commandTagEnv+"="+seen.tag), seen
}

func (w *runcCommands) forget(seen *observedCommand) {
	if seen != nil {
		w.inProgress.Delete(seen.tag)
	}
}

// result returns what was seen; exited is false if no command ended.
func (c *observedCommand) result() (argv []string, pid, status int, exited bool) {
	if c == nil {
		return nil, 0, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.argv, c.pid, c.status, c.exited
}

// seenAs finds the observation a command's tag points to.
func (w *runcCommands) seenAs(cmd *exec.Cmd) *observedCommand {
	// The tag is appended last; scan from the end.
	for i := len(cmd.Env) - 1; i >= 0; i-- {
		if tag, ok := strings.CutPrefix(cmd.Env[i], commandTagEnv+"="); ok {
			if seen, ok := w.inProgress.Load(tag); ok {
				return seen.(*observedCommand)
			}
			return nil
		}
	}
	return nil
}

// Start starts the command through the wrapped Monitor, and notes its argv
// and pid.
func (w *runcCommands) Start(cmd *exec.Cmd) (chan runc.Exit, error) {
	exits, err := w.ProcessMonitor.Start(cmd)
	if err == nil {
		w.noteStarted(cmd)
	}
	return exits, err
}

// StartLocked is Start for a command with a parent-death signal.
func (w *runcCommands) StartLocked(cmd *exec.Cmd) (chan runc.Exit, error) {
	exits, err := w.ProcessMonitor.StartLocked(cmd)
	if err == nil {
		w.noteStarted(cmd)
	}
	return exits, err
}

// Wait waits through the wrapped Monitor, and notes the exit status.
func (w *runcCommands) Wait(cmd *exec.Cmd, exits chan runc.Exit) (int, error) {
	status, err := w.ProcessMonitor.Wait(cmd, exits)
	if seen := w.seenAs(cmd); seen != nil && err == nil {
		seen.mu.Lock()
		seen.status, seen.exited = status, true
		seen.mu.Unlock()
	}
	return status, err
}

func (w *runcCommands) noteStarted(cmd *exec.Cmd) {
	if seen := w.seenAs(cmd); seen != nil {
		seen.mu.Lock()
		seen.argv, seen.pid = cmd.Args, cmd.Process.Pid
		seen.mu.Unlock()
	}
}

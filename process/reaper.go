package process

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// Reaper is the one place in the shim that calls wait4. The shim is a child
// subreaper (prctl PR_SET_CHILD_SUBREAPER), so every container process whose
// parent dies — and runc's own short-lived commands — end up as our children,
// and each exit must be collected exactly once.
//
// Two kinds of children exit:
//   - runc commands (create, start, delete, kill…) that go-runc is waiting
//     for. go-runc's Monitor hook lets the Reaper start them, so their exit is
//     handed back to go-runc instead of being stolen by wait4(-1).
//   - everything else: container processes. Their exits go to the channel
//     returned by Exits, in the order they were reaped.
type Reaper struct {
	// mu is held while a command is started and while wait4 runs, so a runc
	// command cannot exit and be reaped before its pid is in commands.
	mu       sync.Mutex
	commands map[int]chan runc.Exit

	exits   chan runc.Exit
	sigchld chan os.Signal
}

// exitQueueSize bounds how many container exits may wait for the shim's exit
// pipeline. The pipeline drains it continuously; the size only absorbs bursts
// such as a container with many processes dying at once.
const exitQueueSize = 1024

// commandOutputDelay bounds how long a finished command's output may stay
// open (see Start).
const commandOutputDelay = 2 * time.Second

// NewReaper makes the shim's Reaper and installs it as go-runc's Monitor, so
// it must be made once, before any runc command runs. It listens for SIGCHLD
// from now on, and reaps from Run on.
func NewReaper() *Reaper {
	r := &Reaper{
		commands: make(map[int]chan runc.Exit),
		exits:    make(chan runc.Exit, exitQueueSize),
		sigchld:  make(chan os.Signal, 32),
	}
	signal.Notify(r.sigchld, unix.SIGCHLD)
	runc.Monitor = r
	return r
}

// Run starts reaping: at once, for the children that exited before (a shim
// that took over from an earlier one, by an upgrade, collects the exits that
// came during the switch, whose SIGCHLD the earlier shim received), and then
// on every SIGCHLD.
func (r *Reaper) Run() {
	r.reap()
	go func() {
		for range r.sigchld {
			r.reap()
		}
	}()
}

// Adopt registers a child an earlier shim in this process started as a
// command, a logging program (io/logger.go): after an upgrade, its exit is
// handed back as it would have been to the shim that started it. Adopt is
// called before Run, while nothing is reaped: a child collected first would
// have its exit taken for a container's.
func (r *Reaper) Adopt(pid int) chan runc.Exit {
	r.mu.Lock()
	defer r.mu.Unlock()
	waiter := make(chan runc.Exit, 1)
	r.commands[pid] = waiter
	return waiter
}

// Exits delivers the exit of every child that is not a runc command.
func (r *Reaper) Exits() <-chan runc.Exit { return r.exits }

// reap collects every child that has exited. SIGCHLD signals coalesce, so one
// signal may stand for many exits: loop until wait4 has nothing more.
func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var status unix.WaitStatus
		pid, err := unix.Wait4(-1, &status, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		exit := runc.Exit{Timestamp: time.Now(), Pid: pid, Status: ExitCode(status)}
		if waiter, ok := r.commands[pid]; ok {
			delete(r.commands, pid)
			waiter <- exit // buffered: never blocks
			continue
		}
		r.exits <- exit
	}
}

// ExitCode turns a wait status into the number a shell would report:
// the exit code, or 128 plus the signal that killed the process.
func ExitCode(status unix.WaitStatus) int {
	if status.Signaled() {
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}

// Start starts a runc command and registers it for its exit (go-runc's
// ProcessMonitor).
func (r *Reaper) Start(cmd *exec.Cmd) (chan runc.Exit, error) {
	if cmd.WaitDelay == 0 {
		// A runc killed at its deadline may leave a child holding its
		// output pipe; cmd.Wait then waits for that pipe's end no longer
		// than this.
		cmd.WaitDelay = commandOutputDelay
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waiter := make(chan runc.Exit, 1)
	r.commands[cmd.Process.Pid] = waiter
	return waiter, nil
}

// StartLocked is what go-runc calls for commands with a parent-death signal,
// which the kernel ties to the starting thread. The shim never sets one on
// runc (runc must outlive nothing of ours), so it is plain Start.
func (r *Reaper) StartLocked(cmd *exec.Cmd) (chan runc.Exit, error) {
	return r.Start(cmd)
}

// Wait waits for a command started by Start. The exec.Cmd's own Wait would
// call wait4 on a pid the Reaper already collected, so only its I/O copying
// is finished here: cmd.Wait returns ECHILD, which is expected. Go's os/exec
// holds a pidfd for every command it starts and closes it only when a wait
// through it succeeds; that one failed, so the pidfd is released here rather
// than when the garbage collector finds the command.
func (r *Reaper) Wait(cmd *exec.Cmd, waiter chan runc.Exit) (int, error) {
	exit := <-waiter
	_ = cmd.Wait()
	cmd.Process.Release()
	return exit.Status, nil
}

// Pause stops reaping, and starting runc commands, until Resume: an upgrade
// of the shim leaves the exits that come meanwhile to the next shim, as
// zombies. A zombie stays waitable across execve, for the shim's pid is the
// same, and it stays the shim's child.
func (r *Reaper) Pause() { r.mu.Lock() }

// Resume undoes Pause: the upgrade was called off. Exits that came
// meanwhile are collected at once.
func (r *Reaper) Resume() {
	r.mu.Unlock()
	r.reap()
}

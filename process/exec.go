package process

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
	"github.com/teach/containerd-shim-teach-v2/observe"
)

// ExecConfig describes a process to run inside a running container.
type ExecConfig struct {
	ID          string // the exec id, unique within the container
	ContainerID string
	Bundle      string
	Runc        *runc.Runc // the container's runc: same binary, root and log
	Spec        *specs.Process
	Stdio       stdio.Paths
	// Observer is told of the exec's runc command, stdio and signals
	// (observe.Nop watches nothing).
	Observer observe.Observer
}

// ExecProcess is a process added to a running container: `docker exec`,
// `ctr task exec`, `kubectl exec`. containerd first registers it (Exec), then
// starts it (Start); until then it is only a description.
type ExecProcess struct {
	cfg  ExecConfig
	life *Lifecycle

	// mu guards the fields below. It is never held while runc runs: State,
	// Pid, Kill and the container's other requests never wait for a start.
	mu       sync.Mutex
	starting bool // a Start is running runc exec
	pid      int
	streams  stdio.Streams // nil until started
	// pidfd names the process once started (see pidfd.go); it has a lock
	// of its own.
	pidfd Pidfd
}

// NewExec records an exec process in the Created state; nothing runs yet.
//
// The request's Terminal flag, not the process spec's, says whether the
// process gets a terminal: containerd's client asks for one with
// cio.WithTerminal while the spec it sends may still say terminal: false,
// and runc refuses a console socket for a process spec without a terminal.
func NewExec(cfg ExecConfig) *ExecProcess {
	if cfg.Spec != nil {
		spec := *cfg.Spec // the caller's spec stays as it was sent
		spec.Terminal = cfg.Stdio.Terminal
		cfg.Spec = &spec
	}
	return &ExecProcess{cfg: cfg, life: NewLifecycle()}
}

func (e *ExecProcess) ID() string               { return e.cfg.ID }
func (e *ExecProcess) State() State             { return e.life.State() }
func (e *ExecProcess) Stdio() stdio.Paths       { return e.cfg.Stdio }
func (e *ExecProcess) Exited() <-chan struct{}  { return e.life.Exited() }
func (e *ExecProcess) Exit() (ExitStatus, bool) { return e.life.Exit() }

// ExitAttribution says whether the process's exit is told by its pidfd or by
// wait4's pid alone.
func (e *ExecProcess) ExitAttribution() ExitAttribution { return e.pidfd.Attribution() }

// OwnsExit confirms that the exit reaped for pid is this process's.
func (e *ExecProcess) OwnsExit(pid int) bool { return e.pidfd.OwnsExit(pid) }

func (e *ExecProcess) Pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pid
}

// OutputDone is closed once the output has reached the FIFOs; for a process
// that never started there is no output, so it is closed at once.
func (e *ExecProcess) OutputDone() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.streams == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return e.streams.OutputDone()
}

// Start runs `runc exec --detach`: runc joins the container's namespaces and
// cgroup, starts the process and returns, leaving it a child of the shim
// (the subreaper). The process may exit before runc even returns; the
// caller's StartWindow keeps that exit until the pid is claimed.
func (e *ExecProcess) Start(ctx context.Context) (err error) {
	if err := e.beginStart(); err != nil {
		return err
	}
	defer e.endStart()
	paths := e.cfg.Stdio
	paths.Observer = e.cfg.Observer
	setup, err := prepareStdio(paths)
	if err != nil {
		return fmt.Errorf("set up stdio for exec %s: %w", e.cfg.ID, err)
	}
	pidFile := filepath.Join(e.cfg.Bundle, e.cfg.ID+".pid")
	pidfds, noPidfd := listenForPidfd(ctx, e.cfg.Observer, e.cfg.Runc)
	opts := &runc.ExecOpts{IO: setup.runcIO(), ConsoleSocket: setup.consoleSocket(), PidfdSocket: pidfds.runcSocket(),
		PidFile: pidFile, Detach: true}
	if err := runcCall(ctx, e.cfg.Observer, e.cfg.Runc, "exec", e.cfg.ContainerID, func(ctx context.Context) error {
		return e.cfg.Runc.Exec(ctx, e.cfg.ContainerID, *e.cfg.Spec, opts)
	}); err != nil {
		pidfds.Close()
		setup.abort()
		return err
	}
	streams, err := setup.started(ctx)
	if err != nil {
		pidfds.Close()
		setup.abort()
		return err
	}
	defer func() {
		if err != nil {
			streams.Close()
		}
	}()
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		pidfds.Close()
		return fmt.Errorf("read pid file of exec %s: %w", e.cfg.ID, err)
	}
	if err := adoptPidfd(ctx, pidfds, noPidfd, pid, &e.pidfd, log.Fields{"id": e.cfg.ContainerID, "exec": e.cfg.ID}); err != nil {
		// The process runs, but its exit could not be told from that of
		// a later process given its pid. Its exit is reaped through the
		// caller's StartWindow, which claims no pid for a failed start.
		unix.Kill(pid, unix.SIGKILL)
		return fmt.Errorf("runc exec %s (exec %s): %w", e.cfg.ContainerID, e.cfg.ID, err)
	}
	e.mu.Lock()
	e.pid, e.streams = pid, streams
	e.mu.Unlock()
	if err := e.life.MoveTo(Running, e.cfg.ID); err != nil && e.life.State() != Stopped {
		return err
	}
	return nil
}

// beginStart lets one Start run: a second Start of the same exec, while
// the first runs or after it, is refused.
func (e *ExecProcess) beginStart() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.starting {
		return fmt.Errorf("exec %s is already being started: %w", e.cfg.ID, errdefs.ErrFailedPrecondition)
	}
	if err := e.life.Check(Running, e.cfg.ID); err != nil {
		return err
	}
	e.starting = true
	return nil
}

func (e *ExecProcess) endStart() {
	e.mu.Lock()
	e.starting = false
	e.mu.Unlock()
}

// Kill signals the exec process directly: runc kill addresses only a
// container's init (or all of its processes), not one exec.
func (e *ExecProcess) Kill(ctx context.Context, signal uint32, all bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.life.State() {
	case Created:
		return fmt.Errorf("exec %s has not been started: %w", e.cfg.ID, errdefs.ErrFailedPrecondition)
	case Stopped, Deleted:
		return fmt.Errorf("exec %s already finished: %w", e.cfg.ID, errdefs.ErrNotFound)
	}
	sentAt := time.Now()
	if held, err := e.pidfd.Signal(unix.Signal(signal)); held {
		noteSignalSent(e.cfg.Observer, sentAt, e.pid, signal, sentThroughPidfd)
		return signalError(err, e.cfg.ID, signal)
	}
	// Without a pidfd the pid is used. Its state is not Stopped, but the
	// process may have been reaped a moment ago and its exit not yet
	// recorded: in that moment the kernel may give the pid to another
	// process. The pidfd closes that gap.
	noteSignalSent(e.cfg.Observer, sentAt, e.pid, signal, sentToPid)
	return signalError(unix.Kill(e.pid, unix.Signal(signal)), e.cfg.ID, signal)
}

// Delete forgets the exec process and closes its stdio. A running exec must
// be killed first; one that was never started is simply dropped.
func (e *ExecProcess) Delete(ctx context.Context) (ExitStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.starting {
		return ExitStatus{}, fmt.Errorf("exec %s is being started; delete it once its Start has returned: %w", e.cfg.ID, errdefs.ErrFailedPrecondition)
	}
	if state := e.life.State(); state == Running || state == Paused {
		return ExitStatus{}, fmt.Errorf("exec %s is still running; kill it before deleting it: %w", e.cfg.ID, errdefs.ErrFailedPrecondition)
	}
	if e.streams != nil {
		e.streams.Close()
	}
	e.pidfd.Close()
	exit, _ := e.life.Exit()
	if err := e.life.MoveTo(Deleted, e.cfg.ID); err != nil {
		return ExitStatus{}, err
	}
	return exit, nil
}

// CloseIO closes the process's stdin: it reads end-of-file.
func (e *ExecProcess) CloseIO() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.streams != nil {
		e.streams.CloseStdin()
	}
}

// Resize sets the window size of the process's terminal.
func (e *ExecProcess) Resize(width, height uint32) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.streams == nil {
		return fmt.Errorf("exec %s has not been started: %w", e.cfg.ID, errdefs.ErrFailedPrecondition)
	}
	return e.streams.Resize(width, height)
}

// SetExited records the exit the Reaper collected.
func (e *ExecProcess) SetExited(code int, at time.Time) {
	e.mu.Lock()
	pid, streams := e.pid, e.streams
	e.mu.Unlock()
	e.pidfd.Close()
	e.life.SetExited(ExitStatus{Pid: pid, Code: code, ExitedAt: at})
	if streams != nil {
		streams.ProcessExited()
	}
}

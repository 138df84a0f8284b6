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

// InitConfig describes the container to create.
type InitConfig struct {
	ID           string
	Bundle       string // holds config.json and the mounted rootfs
	Runc         RuncConfig
	Stdio        stdio.Paths
	NoPivotRoot  bool // runc --no-pivot: for rootfs on ramfs, where pivot_root fails
	NoNewKeyring bool // runc --no-new-keyring: keep the caller's session keyring
	// Checkpoint, when set, makes Start restore the container from a CRIU
	// checkpoint instead of starting what runc create made (restore.go).
	Checkpoint *RestoreConfig
	// Observer is told of the init process's runc commands, stdio and
	// signals (observe.Nop watches nothing).
	Observer observe.Observer
}

// InitProcess is a container's first process: the one runc creates from the
// bundle's config.json. Its exit is the container's exit.
type InitProcess struct {
	id      string
	bundle  string
	runc    *runc.Runc
	runcCfg RuncConfig // what runc was made of: handed over on an upgrade (handover.go)
	paths   stdio.Paths
	life    *Lifecycle
	// checkpoint is where a container created from a checkpoint is
	// restored from; nil for one runc created.
	checkpoint *RestoreConfig
	noPivot    bool
	observer   observe.Observer

	// turn makes the runc commands that change the container (start,
	// pause, resume, update, checkpoint, delete) take turns, so that each
	// sees the state the previous one left. It is the one lock the shim
	// holds across a runc command, so nothing that reads, reports, signals
	// or reaps ever takes it: State, Pid, Kill and the exit pipeline go on
	// while runc runs.
	turn sync.Mutex

	// started guards pid and streams. runc create sets them before anyone
	// else sees the process; a container restored from a checkpoint gets
	// them only when Start's runc restore returns, while State or CloseIO
	// may be asking.
	started sync.Mutex
	pid     int
	streams stdio.Streams
	// pidfd names the process for Kill and for exit attribution; it has a
	// lock of its own, since an exit is attributed while mu may be held.
	pidfd Pidfd
}

// CreateInit runs `runc create`: runc sets up namespaces and cgroups and
// leaves the container's process waiting, not yet running the user's program.
func CreateInit(ctx context.Context, cfg InitConfig) (_ *InitProcess, err error) {
	if cfg.Checkpoint != nil {
		return createFromCheckpoint(cfg)
	}
	p := &InitProcess{
		id:       cfg.ID,
		bundle:   cfg.Bundle,
		runc:     NewRunc(cfg.Runc),
		runcCfg:  cfg.Runc,
		paths:    cfg.Stdio,
		life:     NewLifecycle(),
		observer: cfg.Observer,
	}
	cfg.Stdio.Observer = cfg.Observer
	setup, err := prepareStdio(cfg.Stdio)
	if err != nil {
		return nil, fmt.Errorf("set up stdio for %s: %w", cfg.ID, err)
	}
	pidFile := filepath.Join(cfg.Bundle, "init.pid")
	pidfds, noPidfd := listenForPidfd(ctx, p.observer, p.runc)
	opts := &runc.CreateOpts{
		IO:            setup.runcIO(),
		ConsoleSocket: setup.consoleSocket(),
		PidfdSocket:   pidfds.runcSocket(),
		PidFile:       pidFile,
		NoPivot:       cfg.NoPivotRoot,
		NoNewKeyring:  cfg.NoNewKeyring,
	}
	if err := runcCall(ctx, p.observer, p.runc, "create", p.id, func(ctx context.Context) error {
		return p.runc.Create(ctx, p.id, cfg.Bundle, opts)
	}); err != nil {
		pidfds.Close()
		setup.abort()
		return nil, err
	}
	if p.streams, err = setup.started(ctx); err != nil {
		pidfds.Close()
		setup.abort()
		p.forceDelete(ctx)
		return nil, err
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		pidfds.Close()
		p.streams.Close()
		p.forceDelete(ctx)
		return nil, fmt.Errorf("read pid file of %s: %w", p.id, err)
	}
	p.pid = pid
	if err := adoptPidfd(ctx, pidfds, noPidfd, pid, &p.pidfd, log.Fields{"id": p.id}); err != nil {
		p.streams.Close()
		p.forceDelete(ctx)
		return nil, fmt.Errorf("runc create %s: %w", p.id, err)
	}
	return p, nil
}

func (p *InitProcess) ID() string                  { return p.id }
func (p *InitProcess) State() State                { return p.life.State() }
func (p *InitProcess) Stdio() stdio.Paths          { return p.paths }
func (p *InitProcess) Exited() <-chan struct{}     { return p.life.Exited() }
func (p *InitProcess) Exit() (ExitStatus, bool)    { return p.life.Exit() }
func (p *InitProcess) OutputDone() <-chan struct{} { return p.io().OutputDone() }

// Pid is the container's init pid; 0 while a container created from a
// checkpoint has not been restored.
func (p *InitProcess) Pid() int {
	p.started.Lock()
	defer p.started.Unlock()
	return p.pid
}

func (p *InitProcess) io() stdio.Streams {
	p.started.Lock()
	defer p.started.Unlock()
	return p.streams
}

// ExitAttribution says whether the process's exit is told by its pidfd or by
// wait4's pid alone.
func (p *InitProcess) ExitAttribution() ExitAttribution { return p.pidfd.Attribution() }

// OwnsExit confirms that the exit reaped for pid is this process's.
func (p *InitProcess) OwnsExit(pid int) bool { return p.pidfd.OwnsExit(pid) }

// Runc is the container's runc, shared by its exec processes.
func (p *InitProcess) Runc() *runc.Runc { return p.runc }

// CloseIO closes the process's stdin: it reads end-of-file.
func (p *InitProcess) CloseIO() { p.io().CloseStdin() }

// Resize sets the window size of the process's terminal.
func (p *InitProcess) Resize(width, height uint32) error { return p.io().Resize(width, height) }

// Start runs `runc start`: the waiting process now executes the user's
// program. A container created from a checkpoint is restored instead (runc
// restore, see restore.go). The program may exit before runc even returns;
// the Reaper will have delivered that exit through SetExited, and Start
// still succeeds.
func (p *InitProcess) Start(ctx context.Context) error {
	p.turn.Lock()
	defer p.turn.Unlock()
	if err := p.life.Check(Running, p.id); err != nil {
		return err
	}
	var err error
	if p.life.State() == CreatedFromCheckpoint {
		err = p.restore(ctx)
	} else {
		err = runcCall(ctx, p.observer, p.runc, "start", p.id, func(ctx context.Context) error { return p.runc.Start(ctx, p.id) })
	}
	if err != nil {
		return err
	}
	if err := p.life.MoveTo(Running, p.id); err != nil && p.life.State() != Stopped {
		return err
	}
	return nil
}

// Kill sends a signal: through the pidfd, or `runc kill`. It does not wait
// for its turn: a SIGKILL must not wait for a checkpoint that may take
// minutes, and runc kill needs no other command to be finished.
func (p *InitProcess) Kill(ctx context.Context, signal uint32, all bool) error {
	return p.kill(ctx, signal, all)
}

func (p *InitProcess) kill(ctx context.Context, signal uint32, all bool) error {
	if _, exited := p.life.Exit(); exited {
		// The stock runc shim answers NotFound here, and containerd's
		// callers (CRI's StopContainer among them) rely on that kind.
		return fmt.Errorf("process %s already finished: %w", p.id, errdefs.ErrNotFound)
	}
	if p.life.State() == CreatedFromCheckpoint {
		return fmt.Errorf("container %s has no process to signal until Start restores it from its checkpoint: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	// One process is signalled through its pidfd, which cannot reach a
	// recycled pid. A paused container goes through runc: a SIGKILL to a
	// frozen process (cgroup v1) waits for a thaw, which runc kill does.
	if !all && p.life.State() != Paused {
		sentAt := time.Now()
		if held, err := p.pidfd.Signal(unix.Signal(signal)); held {
			noteSignalSent(p.observer, sentAt, p.Pid(), signal, sentThroughPidfd)
			return signalError(err, p.id, signal)
		}
	}
	return runcCall(ctx, p.observer, p.runc, "kill", p.id, func(ctx context.Context) error {
		return p.runc.Kill(ctx, p.id, int(signal), &runc.KillOpts{All: all})
	})
}

// KillRemaining sends SIGKILL to every process left in the container's
// cgroup once its init has exited (`runc kill --all`). Kill refuses that
// (its process has finished); but a container without a pid namespace of its
// own keeps the rest of its processes when init dies, and they must not
// outlive it.
func (p *InitProcess) KillRemaining(ctx context.Context) error {
	return runcCall(ctx, p.observer, p.runc, "kill", p.id, func(ctx context.Context) error {
		return p.runc.Kill(ctx, p.id, int(unix.SIGKILL), &runc.KillOpts{All: true})
	})
}

// Delete removes the container from runc and closes its stdio. A process that
// was created but never started is killed first, so it too has an exit status
// to report.
func (p *InitProcess) Delete(ctx context.Context) (ExitStatus, error) {
	p.turn.Lock()
	defer p.turn.Unlock()
	switch p.life.State() {
	case Running, Paused:
		return ExitStatus{}, fmt.Errorf("container %s is still running; kill it before deleting it: %w", p.id, errdefs.ErrFailedPrecondition)
	case Deleted:
		return ExitStatus{}, fmt.Errorf("container %s was already deleted: %w", p.id, errdefs.ErrNotFound)
	case CreatedFromCheckpoint:
		return p.dropUnrestored()
	case Created:
		if err := p.kill(ctx, uint32(unix.SIGKILL), false); err != nil && !errdefs.IsNotFound(err) {
			return ExitStatus{}, err
		}
		select {
		case <-p.life.Exited():
		case <-ctx.Done():
			return ExitStatus{}, fmt.Errorf("waiting for created container %s to die: %w", p.id, ctx.Err())
		}
	}
	if err := p.deleteStopped(ctx); err != nil {
		return ExitStatus{}, err
	}
	p.io().Close()
	p.pidfd.Close()
	exit, _ := p.life.Exit()
	if err := p.life.MoveTo(Deleted, p.id); err != nil {
		return ExitStatus{}, err
	}
	return exit, nil
}

// deleteStopped runs `runc delete` for a container whose process has exited.
// Without --force: forcing makes runc signal the container first and poll,
// in 100ms sleeps, for processes that are already gone. Should something
// still run in it (a process outside the pid namespace), it falls back to
// --force.
func (p *InitProcess) deleteStopped(ctx context.Context) error {
	err := runcCall(ctx, p.observer, p.runc, "delete", p.id, func(ctx context.Context) error {
		return p.runc.Delete(ctx, p.id, &runc.DeleteOpts{})
	})
	if err == nil || errdefs.IsNotFound(err) {
		return nil
	}
	return p.forceDelete(ctx)
}

// forceDelete runs `runc delete --force`; a container runc no longer knows is
// already deleted.
func (p *InitProcess) forceDelete(ctx context.Context) error {
	return ForceDelete(ctx, p.observer, p.runc, p.id)
}

// ForceDelete removes container id from runc, killing whatever still runs in
// it. The shim's `delete` action uses it to clean up after a dead shim.
func ForceDelete(ctx context.Context, observer observe.Observer, rc *runc.Runc, id string) error {
	err := runcCall(ctx, observer, rc, "delete", id, func(ctx context.Context) error {
		return rc.Delete(ctx, id, &runc.DeleteOpts{Force: true})
	})
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// SetExited records the exit the Reaper collected.
func (p *InitProcess) SetExited(code int, at time.Time) {
	p.pidfd.Close()
	p.life.SetExited(ExitStatus{Pid: p.Pid(), Code: code, ExitedAt: at})
	p.io().ProcessExited()
}

// Pids lists every process in the container, as runc sees them.
func (p *InitProcess) Pids(ctx context.Context) ([]int, error) {
	var pids []int
	err := runcCall(ctx, p.observer, p.runc, "ps", p.id, func(ctx context.Context) (err error) {
		pids, err = p.runc.Ps(ctx, p.id)
		return err
	})
	return pids, err
}

// Pause freezes every process in the container (`runc pause`: the cgroup
// freezer).
func (p *InitProcess) Pause(ctx context.Context) error {
	p.turn.Lock()
	defer p.turn.Unlock()
	if err := p.life.Check(Paused, p.id); err != nil {
		return err
	}
	if err := runcCall(ctx, p.observer, p.runc, "pause", p.id, func(ctx context.Context) error { return p.runc.Pause(ctx, p.id) }); err != nil {
		return err
	}
	return p.life.MoveTo(Paused, p.id)
}

// Resume thaws a paused container (`runc resume`).
func (p *InitProcess) Resume(ctx context.Context) error {
	p.turn.Lock()
	defer p.turn.Unlock()
	if p.life.State() != Paused {
		return fmt.Errorf("container %s is %s, not paused: %w", p.id, p.life.State(), errdefs.ErrFailedPrecondition)
	}
	if err := runcCall(ctx, p.observer, p.runc, "resume", p.id, func(ctx context.Context) error { return p.runc.Resume(ctx, p.id) }); err != nil {
		return err
	}
	return p.life.MoveTo(Running, p.id)
}

// Update applies new resource limits to the running container (`runc
// update`): cgroup values such as memory.limit_in_bytes or cpu shares.
func (p *InitProcess) Update(ctx context.Context, resources *specs.LinuxResources) error {
	p.turn.Lock()
	defer p.turn.Unlock()
	if state := p.life.State(); state != Running && state != Paused && state != Created {
		return fmt.Errorf("container %s is %s; only a live container can be updated: %w", p.id, state, errdefs.ErrFailedPrecondition)
	}
	return runcCall(ctx, p.observer, p.runc, "update", p.id, func(ctx context.Context) error { return p.runc.Update(ctx, p.id, resources) })
}

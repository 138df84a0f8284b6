package process

import (
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
	"github.com/teach/containerd-shim-teach-v2/observe"
)

// A process across an in-place upgrade of the shim (docs/upgrade.md). The
// process itself does not notice: it keeps its pid and its parent (the
// shim's pid does not change with execve). What the shim knows of it is
// handed over: its state and exit, the pidfd's number, and its frozen relay.

// Handover is one process, as the next shim needs it.
type Handover struct {
	ID          string
	Pid         int
	State       State
	Exit        ExitStatus // valid once the state is stopped
	Pidfd       int        // -1 when none is held
	Attribution ExitAttribution
	Stdin       string
	Stdout      string
	Stderr      string
	Relay       *stdio.RelayHandover // nil before the process started, or once deleted

	Runc RuncConfig     // the init's
	Spec *specs.Process // an exec's
}

// Fds are the descriptors the handover names.
func (h *Handover) Fds() []int {
	var fds []int
	if h.Pidfd >= 0 {
		fds = append(fds, h.Pidfd)
	}
	if h.Relay != nil {
		fds = append(fds, h.Relay.Fds()...)
	}
	return fds
}

// Freeze stops the init's stdio copies and describes the process. A
// process that cannot be handed over yet is refused before anything of it
// was frozen: the caller then thaws what it froze of other processes.
func (p *InitProcess) Freeze() (*Handover, error) {
	if err := handoverable(p.id, p.paths, p.life.State()); err != nil {
		return nil, err
	}
	h := &Handover{ID: p.id, Pid: p.Pid(), Runc: p.runcCfg}
	return h, fillHandover(h, p.life, &p.pidfd, p.paths, p.io())
}

// Freeze is the same for an exec process.
func (e *ExecProcess) Freeze() (*Handover, error) {
	if err := handoverable(e.cfg.ID, e.cfg.Stdio, e.life.State()); err != nil {
		return nil, err
	}
	e.mu.Lock()
	streams := e.streams
	e.mu.Unlock()
	h := &Handover{ID: e.cfg.ID, Pid: e.Pid(), Spec: e.cfg.Spec}
	return h, fillHandover(h, e.life, &e.pidfd, e.cfg.Stdio, streams)
}

func handoverable(id string, paths stdio.Paths, state State) error {
	switch {
	case paths.Terminal:
		return fmt.Errorf("process %s has a terminal, which an upgrade does not hand over yet: %w", id, errdefs.ErrNotImplemented)
	case state == CreatedFromCheckpoint:
		return fmt.Errorf("container %s waits to be restored from a checkpoint; upgrade once it started: %w", id, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func fillHandover(h *Handover, life *Lifecycle, pidfd *Pidfd, paths stdio.Paths, streams stdio.Streams) error {
	h.State = life.State()
	h.Exit, _ = life.Exit()
	h.Stdin, h.Stdout, h.Stderr = paths.Stdin, paths.Stdout, paths.Stderr
	pidfd.mu.Lock()
	h.Pidfd, h.Attribution = stdio.FdOf(pidfd.file), pidfd.attribution
	pidfd.mu.Unlock()
	if relay, ok := streams.(*stdio.Relay); ok && h.State != Deleted {
		frozen, err := relay.Freeze()
		if err != nil {
			return fmt.Errorf("process %s: %w", h.ID, err)
		}
		h.Relay = frozen
	}
	return nil
}

// Thaw lets a frozen process's copies go on: the upgrade was called off.
func (p *InitProcess) Thaw() { thaw(p.io()) }

// Thaw is the same for an exec process.
func (e *ExecProcess) Thaw() {
	e.mu.Lock()
	streams := e.streams
	e.mu.Unlock()
	thaw(streams)
}

func thaw(streams stdio.Streams) {
	if relay, ok := streams.(*stdio.Relay); ok {
		relay.Thaw()
	}
}

// RestoreInit takes over an init process an earlier shim handed over.
func RestoreInit(h *Handover, bundle string, observer observe.Observer) *InitProcess {
	p := &InitProcess{id: h.ID, bundle: bundle, runc: NewRunc(h.Runc), runcCfg: h.Runc, observer: observer,
		paths: stdio.Paths{Stdin: h.Stdin, Stdout: h.Stdout, Stderr: h.Stderr, Observer: observer},
		life:  restoredLifecycle(h), pid: h.Pid}
	restorePidfd(&p.pidfd, h)
	p.streams = restoredStreams(h, observer)
	return p
}

// RestoreExec takes over an exec process an earlier shim handed over; cfg
// holds what the container knows of it (its runc, the owner of its pipes).
func RestoreExec(h *Handover, cfg ExecConfig) *ExecProcess {
	cfg.Spec = h.Spec
	cfg.Stdio.Stdin, cfg.Stdio.Stdout, cfg.Stdio.Stderr, cfg.Stdio.Observer = h.Stdin, h.Stdout, h.Stderr, cfg.Observer
	e := &ExecProcess{cfg: cfg, life: restoredLifecycle(h), pid: h.Pid}
	restorePidfd(&e.pidfd, h)
	if h.Relay != nil {
		e.streams = restoredStreams(h, cfg.Observer)
	}
	return e
}

func restoredLifecycle(h *Handover) *Lifecycle {
	l := newLifecycleAt(h.State)
	if h.State == Stopped || h.State == Deleted {
		l.exit = h.Exit
		close(l.exited)
	}
	return l
}

func restorePidfd(p *Pidfd, h *Handover) {
	p.pid, p.attribution = h.Pid, h.Attribution
	if h.Pidfd >= 0 {
		p.file = stdio.FileOf(h.Pidfd, fmt.Sprintf("pidfd:%d", h.Pid))
	}
}

// restoredStreams is the process's relay, copying again; a process without
// one (deleted) gets one whose output is done.
func restoredStreams(h *Handover, observer observe.Observer) stdio.Streams {
	if h.Relay == nil {
		return stdio.RestoreRelay(&stdio.RelayHandover{StdinRead: -1, StdinHeldWriter: -1, StdinPipe: -1}, observer)
	}
	return stdio.RestoreRelay(h.Relay, observer)
}

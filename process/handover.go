package process

import (
	"fmt"

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
	Terminal    bool                 // since state version 2
	Relay       *stdio.RelayHandover // nil before the process started, or once deleted

	Runc RuncConfig     // the init's
	Spec *specs.Process // an exec's
	// Checkpoint is where a container created from a checkpoint, and not
	// yet started, is to be restored from (restore.go); NoPivot is runc
	// restore's --no-pivot. Since state version 2.
	Checkpoint *RestoreConfig `json:",omitempty"`
	NoPivot    bool           `json:",omitempty"`
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

// Freeze stops the init's stdio copies and describes the process.
func (p *InitProcess) Freeze() *Handover {
	h := &Handover{ID: p.id, Pid: p.Pid(), Runc: p.runcCfg, Checkpoint: p.checkpoint, NoPivot: p.noPivot}
	fillHandover(h, p.life, &p.pidfd, p.paths, p.io())
	return h
}

// Freeze is the same for an exec process.
func (e *ExecProcess) Freeze() *Handover {
	e.mu.Lock()
	streams := e.streams
	e.mu.Unlock()
	h := &Handover{ID: e.cfg.ID, Pid: e.Pid(), Spec: e.cfg.Spec}
	fillHandover(h, e.life, &e.pidfd, e.cfg.Stdio, streams)
	return h
}

func fillHandover(h *Handover, life *Lifecycle, pidfd *Pidfd, paths stdio.Paths, streams stdio.Streams) {
	h.State = life.State()
	h.Exit, _ = life.Exit()
	h.Stdin, h.Stdout, h.Stderr, h.Terminal = paths.Stdin, paths.Stdout, paths.Stderr, paths.Terminal
	pidfd.mu.Lock()
	h.Pidfd, h.Attribution = stdio.FdOf(pidfd.file), pidfd.attribution
	pidfd.mu.Unlock()
	if relay, ok := streams.(*stdio.Relay); ok && h.State != Deleted {
		h.Relay = relay.Freeze()
	}
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

// RestoreInit takes over an init process an earlier shim handed over; cfg
// holds what the container knows of it (its bundle, the owner of its pipes,
// its observer). A logging program is adopted through children, the Reaper.
func RestoreInit(h *Handover, cfg InitConfig, children stdio.Adopter) *InitProcess {
	cfg.Stdio.Stdin, cfg.Stdio.Stdout, cfg.Stdio.Stderr, cfg.Stdio.Terminal = h.Stdin, h.Stdout, h.Stderr, h.Terminal
	cfg.Stdio.Observer = cfg.Observer
	p := &InitProcess{id: h.ID, bundle: cfg.Bundle, runc: NewRunc(h.Runc), runcCfg: h.Runc, observer: cfg.Observer,
		paths: cfg.Stdio, life: restoredLifecycle(h), pid: h.Pid, checkpoint: h.Checkpoint, noPivot: h.NoPivot}
	restorePidfd(&p.pidfd, h)
	p.streams = restoredStreams(h, cfg.Observer, children)
	return p
}

// RestoreExec takes over an exec process an earlier shim handed over; cfg
// holds what the container knows of it (its runc, the owner of its pipes).
func RestoreExec(h *Handover, cfg ExecConfig, children stdio.Adopter) *ExecProcess {
	cfg.Spec = h.Spec
	cfg.Stdio.Stdin, cfg.Stdio.Stdout, cfg.Stdio.Stderr, cfg.Stdio.Terminal = h.Stdin, h.Stdout, h.Stderr, h.Terminal
	cfg.Stdio.Observer = cfg.Observer
	e := &ExecProcess{cfg: cfg, life: restoredLifecycle(h), pid: h.Pid}
	restorePidfd(&e.pidfd, h)
	if h.Relay != nil {
		e.streams = restoredStreams(h, cfg.Observer, children)
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

// restoredStreams is the process's relay, copying again. A process that has
// exited has its terminal's output end once drained; a container not yet
// restored from its checkpoint has no streams yet; one without a relay
// (deleted) gets one whose output is done.
func restoredStreams(h *Handover, observer observe.Observer, children stdio.Adopter) stdio.Streams {
	switch {
	case h.State == CreatedFromCheckpoint:
		return noStreams{}
	case h.Relay == nil:
		return stdio.RestoreRelay(&stdio.RelayHandover{StdinRead: -1, StdinHeldWriter: -1, StdinPipe: -1}, observer, children)
	}
	relay := stdio.RestoreRelay(h.Relay, observer, children)
	if h.State == Stopped {
		relay.ProcessExited()
	}
	return relay
}

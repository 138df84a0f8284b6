package shim

import (
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// The exit pipeline, in one place:
//
//	Reaper (wait4 on SIGCHLD)          process/reaper.go
//	  → ExitRouter.route (pid → process)   this file
//	    → Container.handleExit             container.go: record the exit,
//	      wait for the output to drain, publish TaskExit, answer Wait.
//
// The hard part is a process that exits before runc has told us its pid: a
// `runc create` or `runc exec` whose process dies at once is reaped while
// runc is still running, and its pid is unknown at that moment. Such exits
// are kept by every open StartWindow until the starter claims its pid.
//
// A pid names a process only until it is reaped: an exit kept in a window
// may be that of an earlier process with the number the new one was given.
// So a pid match is confirmed by the process itself (Process.OwnsExit): with
// the pidfd runc sent, the kernel says whether the process the shim tracks
// is the one that died.

// exitTarget is who an exit belongs to.
type exitTarget struct {
	container *Container
	process   *tracked
}

// ExitRouter hands each exit the Reaper collects to the process it belongs to.
type ExitRouter struct {
	// shimJournal finds the shim-wide journal: it records the exits of
	// pids no process claimed when they were reaped.
	shimJournal func() *journal.Journal

	mu      sync.Mutex
	byPid   map[int]exitTarget
	windows map[*StartWindow]struct{}
}

func NewExitRouter() *ExitRouter {
	return &ExitRouter{
		byPid:   make(map[int]exitTarget),
		windows: make(map[*StartWindow]struct{}),
	}
}

// Run routes exits until the channel closes. It never blocks on a process:
// each exit is handled in its own goroutine, so one container waiting for its
// output to drain holds up no other.
func (r *ExitRouter) Run(exits <-chan runc.Exit) {
	for exit := range exits {
		r.route(exit)
	}
}

func (r *ExitRouter) route(exit runc.Exit) {
	r.mu.Lock()
	target, known := r.byPid[exit.Pid]
	if known && !target.process.OwnsExit(exit.Pid) {
		log.L.WithFields(log.Fields{"pid": exit.Pid, "id": target.process.ID()}).
			Error("reaped a pid whose tracked process is still alive (its pidfd says so); the exit is not its")
		known = false
	}
	if known {
		delete(r.byPid, exit.Pid)
	} else {
		for w := range r.windows {
			w.early = append(w.early, exit)
		}
	}
	r.mu.Unlock()
	if known {
		target.process.journal.Record(reapedEntry(exit))
		go target.container.handleExit(target.process, exit)
	} else if r.shimJournal != nil {
		r.shimJournal().Record(reapedEntry(exit))
	}
	// An exit nobody claims is a process the shim never started: a
	// daemon inside a container, re-parented to us when its parent died.
	// Reaping it is all there is to do.
}

// StartWindow is open while a process is being started and its pid is not
// yet known. Exits of unknown pids seen meanwhile are kept in it.
type StartWindow struct {
	router *ExitRouter
	early  []runc.Exit // guarded by router.mu
}

// OpenWindow must be called before the runc command that starts the process.
func (r *ExitRouter) OpenWindow() *StartWindow {
	w := &StartWindow{router: r}
	r.mu.Lock()
	r.windows[w] = struct{}{}
	r.mu.Unlock()
	return w
}

// Claim registers pid as target's process and closes the window. If the
// process already exited while the window was open, its exit is handled now.
func (w *StartWindow) Claim(pid int, target exitTarget) {
	r := w.router
	r.mu.Lock()
	delete(r.windows, w)
	var early *runc.Exit
	for i := range w.early {
		if w.early[i].Pid == pid && target.process.OwnsExit(pid) {
			early = &w.early[i]
		}
	}
	if early == nil {
		r.byPid[pid] = target
	}
	r.mu.Unlock()
	if early != nil {
		target.process.journal.Record(reapedEntry(*early))
		go target.container.handleExit(target.process, *early)
	}
}

// reapedEntry is the journal's line for an exit the Reaper collected.
func reapedEntry(exit runc.Exit) journal.Entry {
	return journal.Entry{Kind: journal.KindReaped, Pid: exit.Pid, Code: journal.Code(exit.Status),
		Mono: journal.Now() - int64(time.Since(exit.Timestamp))}
}

// Close closes a window whose start failed.
func (w *StartWindow) Close() {
	w.router.mu.Lock()
	delete(w.router.windows, w)
	w.router.mu.Unlock()
}

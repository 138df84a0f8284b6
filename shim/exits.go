package shim

import (
	"sync"

	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"

	"github.com/teach/containerd-shim-teach-v2/observe"
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
	// observer is the shim's: it is told the exits no process claimed.
	observer observe.Observer

	mu      sync.Mutex
	byPid   map[int]exitTarget
	windows map[*StartWindow]struct{}

	// handling counts the exits on their way through handleExit; drains
	// asks Run to route what the Reaper queued (an upgrade, upgrade.go).
	handling inflight
	drains   chan chan struct{}
}

// NewExitRouter makes a router with no process registered; Run starts it.
func NewExitRouter(observer observe.Observer) *ExitRouter {
	return &ExitRouter{
		observer: observer,
		byPid:    make(map[int]exitTarget),
		windows:  make(map[*StartWindow]struct{}),
		drains:   make(chan chan struct{}),
	}
}

// Run routes exits until the channel closes. It never blocks on a process:
// each exit is handled in its own goroutine, so one container waiting for its
// output to drain holds up no other.
func (r *ExitRouter) Run(exits <-chan runc.Exit) {
	for {
		select {
		case exit, ok := <-exits:
			if !ok {
				return
			}
			r.route(exit)
		case drained := <-r.drains:
			r.routeQueued(exits)
			close(drained)
		}
	}
}

// routeQueued routes the exits already queued, without waiting for more.
func (r *ExitRouter) routeQueued(exits <-chan runc.Exit) {
	for {
		select {
		case exit := <-exits:
			r.route(exit)
		default:
			return
		}
	}
}

// drainQueue returns once Run has routed every exit queued so far. With the
// Reaper paused, nothing is queued after.
func (r *ExitRouter) drainQueue() {
	drained := make(chan struct{})
	r.drains <- drained
	<-drained
}

// handle runs the end of the exit pipeline for one process, counted.
func (r *ExitRouter) handle(target exitTarget, exit runc.Exit) {
	r.handling.begin()
	go func() {
		defer r.handling.end()
		target.container.handleExit(target.process, exit)
	}()
}

func (r *ExitRouter) route(exit runc.Exit) {
	r.mu.Lock()
	target, known := r.byPid[exit.Pid]
	if known && !target.process.OwnsExit(exit.Pid) {
		log.L.WithFields(log.Fields{"pid": exit.Pid, "id": target.process.ID()}).
			Error("reaped a pid whose tracked process is still alive (its pidfd says so); the exit is not its")
		known = false
	}
	held := !known && len(r.windows) > 0
	if known {
		delete(r.byPid, exit.Pid)
	} else if held {
		h := &heldExit{exit: exit, windows: len(r.windows)}
		for w := range r.windows {
			w.early = append(w.early, h)
		}
	}
	r.mu.Unlock()
	switch {
	case known:
		target.process.observer.Reaped(reapOf(exit, false))
		r.handle(target, exit)
	case !held:
		// An exit nobody claims is a process the shim never started:
		// a daemon inside a container, re-parented to us when its
		// parent died. Reaping it is all there is to do.
		r.observer.Reaped(reapOf(exit, false))
	}
}

// reapOf is an exit as the observers are told it.
func reapOf(exit runc.Exit, held bool) observe.Reap {
	return observe.Reap{Pid: exit.Pid, Status: exit.Status, At: exit.Timestamp, Held: held}
}

// heldExit is an exit kept by the start windows that were open when it was
// reaped. The observers are told of it once, too: as its process's when a
// window claims it, or as nobody's when the last window closes without
// claiming it; either way with the time it was reaped.
type heldExit struct {
	exit    runc.Exit
	windows int  // the windows still holding it; guarded by ExitRouter.mu
	claimed bool // guarded by ExitRouter.mu
}

// StartWindow is open while a process is being started and its pid is not
// yet known. Exits of unknown pids seen meanwhile are kept in it.
type StartWindow struct {
	router *ExitRouter
	early  []*heldExit // guarded by router.mu
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
	var early *heldExit
	for _, h := range w.early {
		if h.exit.Pid == pid && !h.claimed && target.process.OwnsExit(pid) {
			early = h
		}
	}
	if early != nil {
		early.claimed = true
	} else {
		r.byPid[pid] = target
	}
	unclaimed := w.closeLocked()
	r.mu.Unlock()
	if early != nil {
		target.process.observer.Reaped(reapOf(early.exit, true))
		r.handle(target, early.exit)
	}
	w.tellUnclaimed(unclaimed)
}

// Close closes a window whose start failed.
func (w *StartWindow) Close() {
	w.router.mu.Lock()
	unclaimed := w.closeLocked()
	w.router.mu.Unlock()
	w.tellUnclaimed(unclaimed)
}

// closeLocked removes the window and lets go of the exits it held; it
// returns those that no window claimed, now that none holds them.
func (w *StartWindow) closeLocked() []runc.Exit {
	delete(w.router.windows, w)
	var unclaimed []runc.Exit
	for _, h := range w.early {
		h.windows--
		if h.windows == 0 && !h.claimed {
			unclaimed = append(unclaimed, h.exit)
		}
	}
	return unclaimed
}

// tellUnclaimed tells the shim's observer of the held exits no window
// claimed.
func (w *StartWindow) tellUnclaimed(exits []runc.Exit) {
	for _, exit := range exits {
		w.router.observer.Reaped(reapOf(exit, true))
	}
}

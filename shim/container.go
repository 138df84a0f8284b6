package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/teach/containerd-shim-teach-v2/cgroup"
	"github.com/teach/containerd-shim-teach-v2/observe"
	"github.com/teach/containerd-shim-teach-v2/process"
)

// outputDrainLimit bounds how long an exit waits for the process's output to
// reach the FIFOs. Normally the output ends with the process: when a
// container's init dies the kernel kills everything in its pid namespace, and
// every holder of the pipe is gone. A process outside the container (a
// container sharing the host's pid namespace, say) may keep the pipe open
// forever; the exit must still be reported.
const outputDrainLimit = 5 * time.Second

// tracked is one process of a container together with what the shim knows
// about it beyond the process itself.
type tracked struct {
	process.Process
	// exitReported is closed once TaskExit is queued for containerd; Wait
	// answers and Delete proceeds only after it.
	exitReported chan struct{}
	observer     observe.Observer
	// steps counts the commands under way whose event must reach
	// containerd before this process's TaskExit: its Start (TaskStart,
	// TaskExecStarted), and for the init Pause, Resume and Checkpoint.
	steps inflight
}

func track(p process.Process, observer observe.Observer) *tracked {
	return &tracked{Process: p, exitReported: make(chan struct{}), observer: observer}
}

func (t *tracked) waitExitReported(ctx context.Context) error {
	select {
	case <-t.exitReported:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Container is one container the shim runs: its bundle, its mounted rootfs,
// its init process and its exec processes.
//
// Locks, outermost first. None is held across a runc command, or while
// waiting for a process or for another request:
//
//	InitProcess.turn       the init's state-changing runc commands take turns
//	                       (start, pause, resume, update, checkpoint, delete);
//	                       it is the one lock held across runc, and nothing
//	                       that reads, reports or signals ever waits for it
//	TaskService.mu         the shim's map of containers
//	Container.eventOrder   the order of the events containerd receives
//	Container.mu           execs and cgroup
//	ExecProcess.mu         an exec's pid, streams and start in progress
//	process locks          Lifecycle.mu, Pidfd.mu, InitProcess.started:
//	                       a field or two each, never held while taking
//	                       another
//
// containerd's event order is kept by waiting, not by locking (handleExit):
//   - a process's TaskExit waits for its steps (tracked.steps) to be
//     published: TaskStart or TaskExecStarted, TaskPaused...;
//   - the init's exit waits for every exec being started (execStarts), and
//     then for the TaskExit of every exec that started (an exited one's
//     may still be on its way);
//   - TaskOOM is read under eventOrder just before a TaskExit is queued.
type Container struct {
	ID     string
	Bundle string
	rootfs string // where the rootfs mounts were mounted; empty if none
	// sharesHostPids: the container has no pid namespace of its own, so
	// the kernel does not kill its other processes when init dies.
	sharesHostPids bool
	// ioUID and ioGID own the stdio pipes of every process (runc options
	// IoUid/IoGid); exec processes get the same as the init.
	ioUID, ioGID int
	init         *process.InitProcess
	initTracked  *tracked
	events       *EventSink
	// observer is the container's: its mounts and container-wide events.
	// Each process has its own (tracked.observer). journalLevel is the
	// level it was asked for, handed over on an upgrade.
	observer     observe.Observer
	journalLevel string

	// eventOrder is held while an event is queued for containerd, so that
	// the OOM kills counted just before a TaskExit are queued before it.
	eventOrder sync.Mutex
	// oomsReported counts the OOM kills already published as TaskOOM;
	// guarded by eventOrder.
	oomsReported uint64

	// execStarts counts the exec processes being started. While one is,
	// the init's exit is held back (handleExit).
	execStarts inflight

	mu     sync.Mutex
	execs  map[string]*tracked // guarded by mu
	cgroup cgroup.Cgroup       // guarded by mu; nil until found, or if it cannot be
}

// process finds the init process (execID "") or an exec process.
func (c *Container) process(execID string) (*tracked, error) {
	if execID == "" {
		return c.initTracked, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("container %s has no exec process %q: %w", c.ID, execID, errdefs.ErrNotFound)
	}
	return p, nil
}

// mountRootfs mounts the snapshot containerd prepared at <bundle>/rootfs,
// where the bundle's config.json expects it.
func mountRootfs(bundle string, mounts []*types.Mount, observer observe.Observer) (string, error) {
	if len(mounts) == 0 {
		return "", nil // the bundle brought its own rootfs
	}
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o711); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("create rootfs folder: %w", err)
	}
	var toMount []mount.Mount
	for _, m := range mounts {
		toMount = append(toMount, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	if err := mount.All(toMount, rootfs); err != nil {
		observer.Mounted(observe.Mount{Target: rootfs, Err: err})
		unmountRootfs(rootfs, observer)
		return "", fmt.Errorf("mount rootfs at %s: %w", rootfs, err)
	}
	for _, m := range toMount {
		observer.Mounted(observe.Mount{Type: m.Type, Source: m.Source, Target: filepath.Join(rootfs, m.Target)})
	}
	return rootfs, nil
}

// unmountRootfs unmounts everything at rootfs, stacked mounts included.
func unmountRootfs(rootfs string, observer observe.Observer) error {
	if rootfs == "" {
		return nil
	}
	err := mount.UnmountRecursive(rootfs, 0)
	observer.Unmounted(observe.Mount{Target: rootfs, Err: err})
	if err != nil {
		return fmt.Errorf("unmount rootfs %s: %w", rootfs, err)
	}
	return nil
}

// publish queues an event for containerd, and tells the observer of what it
// is about: the container's, or one process's.
func (c *Container) publish(about observe.Observer, topic string, event events.Event) {
	about.EventPublished(topic, event)
	c.events.Publish(topic, event)
}

// publishInOrder queues one event under eventOrder.
func (c *Container) publishInOrder(about observe.Observer, topic string, event events.Event) {
	c.eventOrder.Lock()
	defer c.eventOrder.Unlock()
	c.publish(about, topic, event)
}

// publishCreate tells containerd the task exists (TaskCreate).
func (c *Container) publishCreate(req *taskAPI.CreateTaskRequest) {
	c.publishInOrder(c.observer, topicTaskCreate, &eventstypes.TaskCreate{
		ContainerID: c.ID,
		Bundle:      c.Bundle,
		Rootfs:      req.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal},
		Checkpoint:  req.Checkpoint,
		Pid:         uint32(c.init.Pid()),
	})
}

// AddExec registers an exec process (TaskExecAdded); Start runs it.
func (c *Container) AddExec(cfg process.ExecConfig) error {
	if state := c.init.State(); state != process.Running {
		return fmt.Errorf("container %s is %s; exec needs a running container: %w", c.ID, state, errdefs.ErrFailedPrecondition)
	}
	c.mu.Lock()
	if _, exists := c.execs[cfg.ID]; exists {
		c.mu.Unlock()
		return fmt.Errorf("container %s already has an exec process %q: %w", c.ID, cfg.ID, errdefs.ErrAlreadyExists)
	}
	cfg.Observer = c.observer.Process(cfg.ID)
	exec := track(process.NewExec(cfg), cfg.Observer)
	c.execs[cfg.ID] = exec
	c.mu.Unlock()

	c.publishInOrder(exec.observer, topicTaskExecAdded, &eventstypes.TaskExecAdded{ContainerID: c.ID, ExecID: cfg.ID})
	return nil
}

// Start starts the init process or an exec process, and publishes TaskStart
// or TaskExecStarted. No lock is held while runc runs: the process's exit,
// which may come before runc even returns, waits for this start's event
// (tracked.steps), and other requests of the container go on meanwhile.
func (c *Container) Start(ctx context.Context, execID string, exits *ExitRouter) (int, error) {
	p, err := c.process(execID)
	if err != nil {
		return 0, err
	}
	p.steps.begin()
	defer p.steps.end()
	switch {
	case execID != "":
		return c.startExec(ctx, p, exits)
	case p.State() == process.CreatedFromCheckpoint:
		return c.restore(ctx, exits)
	}
	if err := p.Start(ctx); err != nil {
		return 0, err
	}
	c.publishInOrder(p.observer, topicTaskStart, &eventstypes.TaskStart{ContainerID: c.ID, Pid: uint32(p.Pid())})
	return p.Pid(), nil
}

// startExec runs `runc exec` for p. Its pid is learnt only when runc returns,
// so its exit is routed through a StartWindow opened before.
//
// containerd's contract for an init that dies meanwhile (its regression test
// for containerd issue 10589): while an exec is being started, the init's
// exit is held back, so the task still reports running and accepts more
// Exec requests; those execs then fail to start, and every exec's TaskExit
// comes before the init's.
func (c *Container) startExec(ctx context.Context, p *tracked, exits *ExitRouter) (int, error) {
	c.execStarts.begin()
	defer c.execStarts.end()
	// Counted first, checked second: an init exit recorded before the
	// count began is seen here; one recorded after it waits for the count.
	if _, exited := c.init.Exit(); exited {
		return 0, fmt.Errorf("container %s has stopped; exec %s cannot start: %w", c.ID, p.ID(), errdefs.ErrFailedPrecondition)
	}
	window := exits.OpenWindow()
	if err := p.Start(ctx); err != nil {
		window.Close()
		return 0, err
	}
	window.Claim(p.Pid(), exitTarget{container: c, process: p})
	c.publishInOrder(p.observer, topicTaskExecStarted, &eventstypes.TaskExecStarted{ContainerID: c.ID, ExecID: p.ID(), Pid: uint32(p.Pid())})
	return p.Pid(), nil
}

// restore brings the container back from its checkpoint (runc restore) and
// publishes TaskStart: to containerd, the restored container has started.
// The caller counts it among the init's steps.
func (c *Container) restore(ctx context.Context, exits *ExitRouter) (int, error) {
	window := exits.OpenWindow()
	if err := c.init.Start(ctx); err != nil {
		window.Close()
		return 0, err
	}
	window.Claim(c.init.Pid(), exitTarget{container: c, process: c.initTracked})
	c.watchResources()
	c.publishInOrder(c.initTracked.observer, topicTaskStart, &eventstypes.TaskStart{ContainerID: c.ID, Pid: uint32(c.init.Pid())})
	return c.init.Pid(), nil
}

// handleExit is the end of the exit pipeline (see exits.go): record the exit,
// let the output drain, then tell containerd.
func (c *Container) handleExit(p *tracked, exit runc.Exit) {
	if p == c.initTracked {
		// Held back while execs are being started (see startExec).
		c.execStarts.wait()
	}
	p.SetExited(exit.Status, exit.Timestamp)
	if p == c.initTracked {
		c.afterInitExit()
	}
	select {
	case <-p.OutputDone():
	case <-time.After(outputDrainLimit):
		log.L.WithField("id", p.ID()).Warn("output still open after the process exited (a process outside the container holds it); reporting the exit anyway")
	}
	// TaskStart (or TaskExecStarted, TaskPaused...) of a command that was
	// still running when the process died goes first.
	p.steps.wait()
	status, _ := p.Exit()
	c.eventOrder.Lock()
	// An OOM kill and the exit it causes race to the shim (eventfd and
	// SIGCHLD); containerd wants TaskOOM first, so the counter is read here.
	c.reportOOMsLocked()
	c.publish(p.observer, topicTaskExit, &eventstypes.TaskExit{
		ContainerID: c.ID,
		ID:          p.ID(),
		Pid:         uint32(status.Pid),
		ExitStatus:  uint32(status.Code),
		ExitedAt:    protobuf.ToTimestamp(status.ExitedAt),
	})
	c.eventOrder.Unlock()
	close(p.exitReported)
}

// afterInitExit ends the container's other processes with its init, and waits
// for their exits to be reported first: containerd expects every exec's
// TaskExit before the init's.
func (c *Container) afterInitExit() {
	if c.sharesHostPids {
		// Without a pid namespace of its own, nothing kills the rest of
		// the container when init dies; runc kill --all does.
		ctx, cancel := context.WithTimeout(context.Background(), outputDrainLimit)
		if err := c.init.KillRemaining(ctx); err != nil && !errdefs.IsNotFound(err) {
			log.L.WithError(err).WithField("id", c.ID).Warn("kill the container's remaining processes")
		}
		cancel()
	}
	// An exec whose start began after the exit was let through, but before
	// it was recorded, is waited for too: its runc exec fails, or it runs
	// and is counted below.
	c.execStarts.wait()
	for _, e := range c.startedExecs() {
		c.awaitExecExit(e)
	}
}

// startedExecs are the execs that started: running, paused, or exited with
// their TaskExit perhaps still on its way (an exec's exit waits for its
// output, and for its TaskExecStarted, before it is published).
func (c *Container) startedExecs() []*tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	var started []*tracked
	for _, e := range c.execs {
		switch e.State() {
		case process.Running, process.Paused, process.Stopped:
			started = append(started, e)
		}
	}
	return started
}

// awaitExecExit waits until e's TaskExit is queued. The exec dies with the
// container (the kernel kills its pid namespace, or KillRemaining did), so
// the wait has an end, however slow the machine; no timer cuts it short,
// for the init's TaskExit must not overtake the exec's. One that seems to
// take long is logged, each outputDrainLimit.
func (c *Container) awaitExecExit(e *tracked) {
	for {
		select {
		case <-e.exitReported:
			return
		case <-time.After(outputDrainLimit):
			log.L.WithFields(log.Fields{"id": c.ID, "exec": e.ID()}).Warn("the init has exited; its TaskExit waits for this exec's, which has not come yet")
		}
	}
}

// Wait waits until the process's exit is reported, and returns it.
func (c *Container) Wait(ctx context.Context, execID string) (process.ExitStatus, error) {
	p, err := c.process(execID)
	if err != nil {
		return process.ExitStatus{}, err
	}
	if err := p.waitExitReported(ctx); err != nil {
		return process.ExitStatus{}, err
	}
	exit, _ := p.Exit()
	return exit, nil
}

// Delete deletes one exec process, or the container (execID ""): the init
// process, the rootfs mounts, and TaskDelete.
func (c *Container) Delete(ctx context.Context, execID string) (process.ExitStatus, error) {
	p, err := c.process(execID)
	if err != nil {
		return process.ExitStatus{}, err
	}
	if execID == "" && p.State() == process.Created {
		// InitProcess.Delete kills a created init, so that it too has
		// an exit to report.
		p.observer.SignalSent(observe.Signal{Number: int(unix.SIGKILL), Pid: p.Pid(), By: "Delete request"})
	}
	if p.State() == process.Stopped {
		// Let the exit handler finish delivering output before the
		// relay is closed.
		if err := p.waitExitReported(ctx); err != nil {
			return process.ExitStatus{}, err
		}
	}
	exit, err := p.Delete(ctx)
	if err != nil {
		return process.ExitStatus{}, err
	}
	if execID != "" {
		c.mu.Lock()
		delete(c.execs, execID)
		c.mu.Unlock()
		return exit, nil
	}
	// A created init was killed by Delete: its exit is reported too. A
	// container never restored from its checkpoint had no process (pid 0)
	// and has no TaskExit; Wait answers with the status Delete recorded.
	if exit.Pid == 0 {
		close(p.exitReported)
	} else if err := p.waitExitReported(ctx); err != nil {
		return process.ExitStatus{}, err
	}
	if err := unmountRootfs(c.rootfs, c.observer); err != nil {
		return process.ExitStatus{}, err
	}
	c.publishInOrder(c.observer, topicTaskDelete, &eventstypes.TaskDelete{
		ContainerID: c.ID,
		Pid:         uint32(exit.Pid),
		ExitStatus:  uint32(exit.Code),
		ExitedAt:    protobuf.ToTimestamp(exit.ExitedAt),
	})
	return exit, nil
}

// Pause freezes the container and publishes TaskPaused, before the init's
// TaskExit should it die meanwhile.
func (c *Container) Pause(ctx context.Context) error {
	c.initTracked.steps.begin()
	defer c.initTracked.steps.end()
	if err := c.init.Pause(ctx); err != nil {
		return err
	}
	c.observeFreezer("pause")
	c.publishInOrder(c.observer, topicTaskPaused, &eventstypes.TaskPaused{ContainerID: c.ID})
	return nil
}

// Resume thaws the container and publishes TaskResumed.
func (c *Container) Resume(ctx context.Context) error {
	c.initTracked.steps.begin()
	defer c.initTracked.steps.end()
	if err := c.init.Resume(ctx); err != nil {
		return err
	}
	c.observeFreezer("resume")
	c.publishInOrder(c.observer, topicTaskResumed, &eventstypes.TaskResumed{ContainerID: c.ID})
	return nil
}

// observeFreezer tells the observer what the kernel says of the container's
// freezer once runc paused or resumed it: runc's exit status says runc is
// done, the cgroup says whether the processes stopped (cgroup.events on v2,
// freezer.state on v1).
func (c *Container) observeFreezer(step string) {
	cg := c.resources()
	if cg == nil {
		return
	}
	state, err := cg.Freezer()
	c.observer.CgroupRead(observe.Cgroup{Step: step, File: state.File, Says: state.Says, Err: err})
}

// watchResources finds the container's cgroup, once runc has put the init
// process in it, and starts watching it for OOM kills.
func (c *Container) watchResources() {
	cg, err := cgroup.Of(c.init.Pid())
	if err != nil {
		log.L.WithError(err).WithField("id", c.ID).Warn("no cgroup found: no stats or OOM events for this container")
		return
	}
	c.mu.Lock()
	c.cgroup = cg
	c.mu.Unlock()
	if err := cg.WatchOOM(c.reportOOMs); err != nil {
		log.L.WithError(err).WithField("id", c.ID).Warn("cannot watch for OOM kills")
	}
}

func (c *Container) reportOOMs() {
	c.eventOrder.Lock()
	defer c.eventOrder.Unlock()
	c.reportOOMsLocked()
}

// reportOOMsLocked publishes a TaskOOM for each OOM kill not yet reported.
func (c *Container) reportOOMsLocked() {
	cg := c.resources()
	if cg == nil {
		return
	}
	kills, err := cg.OOMKills()
	if err != nil {
		return // the cgroup is gone: the container was deleted
	}
	for ; c.oomsReported < kills; c.oomsReported++ {
		c.observer.CgroupRead(observe.Cgroup{Step: "oom", File: cg.OOMKillsFile(), Says: fmt.Sprintf("%d OOM kills", kills)})
		c.publish(c.observer, topicTaskOOM, &eventstypes.TaskOOM{ContainerID: c.ID})
	}
}

// Metrics reads the container's cgroup metrics.
func (c *Container) Metrics() (*anypb.Any, error) {
	cg := c.resources()
	if cg == nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, cgroup.ErrNoCgroup)
	}
	return cg.Metrics()
}

// resources is the container's cgroup, or nil.
func (c *Container) resources() cgroup.Cgroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cgroup
}

// Checkpoint saves the container and publishes TaskCheckpointed (which the
// stock runc shim never sends).
func (c *Container) Checkpoint(ctx context.Context, cfg process.CheckpointConfig) error {
	c.initTracked.steps.begin()
	defer c.initTracked.steps.end()
	if err := c.init.Checkpoint(ctx, cfg); err != nil {
		return err
	}
	c.publishInOrder(c.observer, topicTaskCheckpointed, &eventstypes.TaskCheckpointed{ContainerID: c.ID, Checkpoint: cfg.ImagePath})
	return nil
}

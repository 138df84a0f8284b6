package shim

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teach/containerd-shim-teach-v2/cgroup"
	stdio "github.com/teach/containerd-shim-teach-v2/io"
	"github.com/teach/containerd-shim-teach-v2/observe"
	"github.com/teach/containerd-shim-teach-v2/process"
	"github.com/teach/containerd-shim-teach-v2/version"
)

// TaskService is the shim's RPC surface: containerd calls it over ttrpc as
// task API v3 (containerd 2.x) or v2 (containerd 1.7), one implementation
// for both (plugin.go). It validates each request, finds the container,
// hands the work to the container and its processes, and publishes the
// events.
type TaskService struct {
	namespace string
	events    *EventSink
	exits     *ExitRouter
	shutdown  shutdown.Service
	// observer is the shim's (observe.Nop, or the journal): it sees each
	// request, and gives each container its own.
	observer observe.Observer

	// mu guards containers. It is never held across a runc command.
	mu         sync.Mutex
	containers map[string]*Container
	// creating holds ids whose Create is in progress, so a second Create
	// with the same id is refused while the first runs.
	creating map[string]struct{}
	// joining holds ids of containers a `start` joined to this shim, whose
	// Create has not arrived; leaving is set once Shutdown decided the shim
	// exits. Both: group.go.
	joining map[string]struct{}
	leaving bool
	// deleting holds the containers whose Delete is in progress; the
	// channel closes when it ends (delete.go).
	deleting map[string]chan struct{}

	// socket is what the shim serves on; set before it serves.
	socket *serverSocket

	// checkpointing counts the Checkpoint requests under way; upgrade is
	// the in-place upgrade's state (upgrade.go).
	checkpointing atomic.Int32
	upgrade       upgradeState
}

// NewTaskService makes a task service that serves no container yet. It
// starts nothing and takes over nothing of the process: the shim server
// starts the Reaper and hands its exits to the service's ExitRouter (Run).
// observer is the shim's; observe.Nop watches nothing.
func NewTaskService(namespace string, events *EventSink, shutdown shutdown.Service, observer observe.Observer) *TaskService {
	return &TaskService{
		namespace:  namespace,
		events:     events,
		exits:      NewExitRouter(observer),
		shutdown:   shutdown,
		observer:   observer,
		containers: make(map[string]*Container),
		creating:   make(map[string]struct{}),
		joining:    make(map[string]struct{}),
		deleting:   make(map[string]chan struct{}),
	}
}

// Create mounts the rootfs and runs `runc create`. With a checkpoint (the
// folder of CRIU images containerd prepared) nothing runs yet: Start restores
// the container from it.
func (s *TaskService) Create(ctx context.Context, req *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, err error) {
	if err := validateID("container", req.ID); err != nil {
		return nil, err
	}
	if err := s.reserve(req.ID); err != nil {
		return nil, err
	}
	defer s.release(req.ID)

	spec, err := readBundleSpec(req.Bundle)
	if err != nil {
		return nil, err
	}
	opts, err := runcOptions(req.Options)
	if err != nil {
		return nil, err
	}
	own, err := shimOptionsOf(req.Options)
	if err != nil {
		return nil, err
	}
	journalLevel := journalSetting(spec, own)
	observer, err := s.observer.Container(observe.Container{ID: req.ID, Bundle: req.Bundle, Level: journalLevel})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", req.ID, err)
	}
	if err := saveRuncOptions(req.Bundle, opts); err != nil {
		return nil, err
	}
	if opts.ShimCgroup != "" {
		if err := cgroup.MoveProcess(opts.ShimCgroup, os.Getpid()); err != nil {
			return nil, fmt.Errorf("move the shim into cgroup %s (runtime option ShimCgroup): %w", opts.ShimCgroup, err)
		}
	}
	rootfs, err := mountRootfs(req.Bundle, req.Rootfs, observer)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unmountRootfs(rootfs, observer)
		}
	}()

	c := &Container{
		ID:             req.ID,
		Bundle:         req.Bundle,
		rootfs:         rootfs,
		sharesHostPids: !hasNamespace(spec, specs.PIDNamespace),
		ioUID:          int(opts.IoUid),
		ioGID:          int(opts.IoGid),
		events:         s.events,
		observer:       observer,
		journalLevel:   journalLevel,
		execs:          make(map[string]*tracked),
	}
	if err := s.createInit(ctx, c, process.InitConfig{
		ID:     req.ID,
		Bundle: req.Bundle,
		Runc: process.RuncConfig{
			Binary:        opts.BinaryName,
			Root:          opts.Root,
			Namespace:     s.namespace,
			Bundle:        req.Bundle,
			SystemdCgroup: opts.SystemdCgroup,
		},
		Stdio: stdio.Paths{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal,
			Owner: stdio.Owner{ContainerID: req.ID, Namespace: s.namespace},
			IOUid: int(opts.IoUid), IOGid: int(opts.IoGid)},
		NoPivotRoot:  opts.NoPivotRoot,
		NoNewKeyring: opts.NoNewKeyring,
		Checkpoint:   restoreConfig(req, opts),
	}); err != nil {
		return nil, fmt.Errorf("create %s: %w", req.ID, err)
	}
	s.mu.Lock()
	s.containers[req.ID] = c
	s.mu.Unlock()
	c.publishCreate(req)
	return &taskAPI.CreateTaskResponse{Pid: uint32(c.init.Pid())}, nil
}

// createInit creates the container's init process. The process can die as
// soon as runc has created it (killed, or its setup failed); the window keeps
// such an exit until its pid is claimed.
func (s *TaskService) createInit(ctx context.Context, c *Container, cfg process.InitConfig) (err error) {
	cfg.Observer = c.observer.Process("")
	if cfg.Checkpoint != nil {
		// No process yet: Container.Start restores it and routes its exit.
		if c.init, err = process.CreateInit(ctx, cfg); err != nil {
			return err
		}
		c.initTracked = track(c.init, cfg.Observer)
		return nil
	}
	// The init process can die as soon as runc has created it (killed, or
	// its setup failed); the window keeps such an exit until its pid is
	// claimed.
	window := s.exits.OpenWindow()
	if c.init, err = process.CreateInit(ctx, cfg); err != nil {
		window.Close()
		return err
	}
	c.initTracked = track(c.init, cfg.Observer)
	window.Claim(c.init.Pid(), exitTarget{container: c, process: c.initTracked})
	c.watchResources()
	return nil
}

func (s *TaskService) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, exists := s.containers[id]
	_, pending := s.creating[id]
	if exists || pending {
		return fmt.Errorf("container %s already exists in this shim: %w", id, errdefs.ErrAlreadyExists)
	}
	if s.leaving {
		return fmt.Errorf("create %s: this shim is exiting; start the container again to get a new one: %w", id, errdefs.ErrFailedPrecondition)
	}
	delete(s.joining, id) // awaited no longer: it is being created
	s.creating[id] = struct{}{}
	return nil
}

func (s *TaskService) release(id string) {
	s.mu.Lock()
	delete(s.creating, id)
	s.mu.Unlock()
}

// container finds a container.
func (s *TaskService) container(id string) (*Container, error) {
	s.mu.Lock()
	c, ok := s.containers[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("container %s is not in this shim: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// process finds the init process (execID "") or an exec process of a
// container.
func (s *TaskService) process(id, execID string) (*Container, *tracked, error) {
	c, err := s.container(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.process(execID)
	return c, p, err
}

// Start runs `runc start` for the init process, `runc exec` for an exec.
func (s *TaskService) Start(ctx context.Context, req *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	pid, err := c.Start(ctx, req.ExecID, s.exits)
	if err != nil {
		return nil, err
	}
	return &taskAPI.StartResponse{Pid: uint32(pid)}, nil
}

// Exec registers a process to run in a running container; Start runs it.
func (s *TaskService) Exec(ctx context.Context, req *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	if err := validateID("exec", req.ExecID); err != nil {
		return nil, err
	}
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	spec, err := processSpec(req.Spec)
	if err != nil {
		return nil, err
	}
	err = c.AddExec(process.ExecConfig{
		ID:          req.ExecID,
		ContainerID: c.ID,
		Bundle:      c.Bundle,
		Runc:        c.init.Runc(),
		Spec:        spec,
		Stdio: stdio.Paths{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal,
			Owner: stdio.Owner{ContainerID: c.ID, Namespace: s.namespace},
			IOUid: c.ioUID, IOGid: c.ioGID},
	})
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// State reports a process's state and, once it has exited, its exit status.
func (s *TaskService) State(ctx context.Context, req *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	paths := p.Stdio()
	resp := &taskAPI.StateResponse{
		ID:       p.ID(),
		Bundle:   c.Bundle,
		Pid:      uint32(p.Pid()),
		Status:   taskStatus(p.State()),
		Stdin:    paths.Stdin,
		Stdout:   paths.Stdout,
		Stderr:   paths.Stderr,
		Terminal: paths.Terminal,
		ExecID:   req.ExecID,
	}
	if exit, ok := p.Exit(); ok {
		resp.ExitStatus = uint32(exit.Code)
		resp.ExitedAt = protobuf.ToTimestamp(exit.ExitedAt)
	}
	return resp, nil
}

func taskStatus(state process.State) task.Status {
	switch state {
	case process.Created, process.CreatedFromCheckpoint:
		return task.Status_CREATED
	case process.Running:
		return task.Status_RUNNING
	case process.Paused:
		return task.Status_PAUSED
	case process.Stopped, process.Deleted:
		return task.Status_STOPPED
	}
	return task.Status_UNKNOWN
}

// Kill relays a signal to the container's process (all: to every process in
// it).
func (s *TaskService) Kill(ctx context.Context, req *taskAPI.KillRequest) (*emptypb.Empty, error) {
	_, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	undelivered := p.observer.SignalSent(observe.Signal{Number: int(req.Signal), Pid: p.Pid(), All: req.All, By: "Kill request"})
	if err := p.Kill(ctx, req.Signal, req.All); err != nil {
		undelivered()
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Wait answers once the process has exited and its exit has been published,
// which is after all of its output reached the FIFOs.
func (s *TaskService) Wait(ctx context.Context, req *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	exit, err := c.Wait(ctx, req.ExecID)
	if err != nil {
		return nil, err
	}
	return &taskAPI.WaitResponse{ExitStatus: uint32(exit.Code), ExitedAt: protobuf.ToTimestamp(exit.ExitedAt)}, nil
}

// Delete removes a stopped (or never started) container or exec process.
func (s *TaskService) Delete(ctx context.Context, req *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	var exit process.ExitStatus
	if req.ExecID == "" {
		exit, err = s.deleteContainer(ctx, c)
	} else {
		exit, err = c.Delete(ctx, req.ExecID)
	}
	if err != nil {
		return nil, err
	}
	return &taskAPI.DeleteResponse{Pid: uint32(exit.Pid), ExitStatus: uint32(exit.Code), ExitedAt: protobuf.ToTimestamp(exit.ExitedAt)}, nil
}

// Pids lists the container's processes.
//
// A container that has exited but is not yet deleted answers with its init's
// pid alone, the process whose exit it holds. containerd, reconnecting to its
// shims after a restart, takes an empty list (1.7: any error; 2.x: NotFound)
// for a leftover shim and deletes its task, and the exit that happened while
// containerd was down would never reach anyone who Waits for it.
func (s *TaskService) Pids(ctx context.Context, req *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	if _, exited := c.init.Exit(); exited {
		return &taskAPI.PidsResponse{Processes: []*task.ProcessInfo{{Pid: uint32(c.init.Pid())}}}, nil
	}
	pids, err := c.init.Pids(ctx)
	if err != nil {
		return nil, err
	}
	return &taskAPI.PidsResponse{Processes: c.describePids(pids)}, nil
}

// Connect tells containerd (again, after a restart) which shim and which
// process it is talking to.
func (s *TaskService) Connect(ctx context.Context, req *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: version.Version}
	if c, err := s.container(req.ID); err == nil {
		resp.TaskPid = uint32(c.init.Pid())
	}
	return resp, nil
}

// eventFlushLimit bounds how long the shim, exiting, waits for queued
// events to reach containerd.
const eventFlushLimit = 10 * time.Second

// Shutdown ends the shim once it runs no container and awaits none.
// containerd calls it after deleting a task, or giving up on one; a shim that
// still has containers stays (leaveIfIdle, group.go).
func (s *TaskService) Shutdown(ctx context.Context, req *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	if !s.leaveIfIdle(ctx, req.ID) {
		return &emptypb.Empty{}, nil
	}
	// The answer goes at once: containerd waits for it only a few seconds
	// (3 in containerd 2.x), and then fails the Delete. The events still
	// queued reach containerd after it, before the process exits
	// (runServer): they travel on the shim's own connection to containerd,
	// which this answer does not close.
	s.shutdown.Shutdown() // runServer returns
	return &emptypb.Empty{}, nil
}

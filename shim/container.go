package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"

	"github.com/teach/containerd-shim-teach-v2/process"
)

// outputDrainLimit bounds how long an exit waits for the process's output to
// reach the FIFOs. Normally the output ends with the process: when a
// container's init dies the kernel kills everything in its pid namespace, and
// every holder of the pipe is gone. A process outside the container (a
// container sharing the host's pid namespace, say) may keep the pipe open
// forever; the exit must still be reported.
const outputDrainLimit = 5 * time.Second

// Container is one container the shim runs: its bundle, its mounted rootfs
// and its init process.
type Container struct {
	ID     string
	Bundle string
	rootfs string // where the rootfs mounts were mounted; empty if none
	init   *process.InitProcess
	events *EventSink

	// eventOrder keeps this container's events in the order containerd
	// relies on: TaskCreate < TaskStart < TaskExit < TaskDelete. Start holds
	// it across `runc start` and TaskStart, so an exit that races with
	// Start is published after TaskStart.
	eventOrder sync.Mutex
	// exitReported is closed once TaskExit is published; Wait answers and
	// Delete proceeds only after it.
	exitReported chan struct{}
}

// mountRootfs mounts the snapshot containerd prepared at <bundle>/rootfs,
// where the bundle's config.json expects it.
func mountRootfs(bundle string, mounts []*types.Mount) (string, error) {
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
		unmountRootfs(rootfs)
		return "", fmt.Errorf("mount rootfs at %s: %w", rootfs, err)
	}
	return rootfs, nil
}

// unmountRootfs unmounts everything at rootfs, stacked mounts included.
func unmountRootfs(rootfs string) error {
	if rootfs == "" {
		return nil
	}
	if err := mount.UnmountRecursive(rootfs, 0); err != nil {
		return fmt.Errorf("unmount rootfs %s: %w", rootfs, err)
	}
	return nil
}

// publishCreate tells containerd the task exists (TaskCreate).
func (c *Container) publishCreate(req *taskAPI.CreateTaskRequest) {
	c.eventOrder.Lock()
	defer c.eventOrder.Unlock()
	c.events.Publish(runtime.TaskCreateEventTopic, &eventstypes.TaskCreate{
		ContainerID: c.ID,
		Bundle:      c.Bundle,
		Rootfs:      req.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal},
		Checkpoint:  req.Checkpoint,
		Pid:         uint32(c.init.Pid()),
	})
}

// Start starts the init process and publishes TaskStart.
func (c *Container) Start(ctx context.Context) error {
	c.eventOrder.Lock()
	defer c.eventOrder.Unlock()
	if err := c.init.Start(ctx); err != nil {
		return err
	}
	c.events.Publish(runtime.TaskStartEventTopic, &eventstypes.TaskStart{ContainerID: c.ID, Pid: uint32(c.init.Pid())})
	return nil
}

// handleExit is the end of the exit pipeline (see exits.go): record the exit,
// let the output drain, then tell containerd.
func (c *Container) handleExit(p process.Process, exit runc.Exit) {
	p.SetExited(exit.Status, exit.Timestamp)
	select {
	case <-p.OutputDone():
	case <-time.After(outputDrainLimit):
		log.L.WithField("id", p.ID()).Warn("output still open after the process exited (a process outside the container holds it); reporting the exit anyway")
	}
	status, _ := p.Exit()
	c.eventOrder.Lock()
	c.events.Publish(runtime.TaskExitEventTopic, &eventstypes.TaskExit{
		ContainerID: c.ID,
		ID:          p.ID(),
		Pid:         uint32(status.Pid),
		ExitStatus:  uint32(status.Code),
		ExitedAt:    protobuf.ToTimestamp(status.ExitedAt),
	})
	c.eventOrder.Unlock()
	close(c.exitReported)
}

// WaitExitReported waits until TaskExit has been published.
func (c *Container) WaitExitReported(ctx context.Context) error {
	select {
	case <-c.exitReported:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Delete deletes the init process, unmounts the rootfs and publishes
// TaskDelete.
func (c *Container) Delete(ctx context.Context) (process.ExitStatus, error) {
	if c.init.State() == process.Stopped {
		// Let the exit handler finish delivering output before the
		// relay is closed.
		if err := c.WaitExitReported(ctx); err != nil {
			return process.ExitStatus{}, err
		}
	}
	exit, err := c.init.Delete(ctx)
	if err != nil {
		return process.ExitStatus{}, err
	}
	if err := c.WaitExitReported(ctx); err != nil {
		return process.ExitStatus{}, err
	}
	if err := unmountRootfs(c.rootfs); err != nil {
		return process.ExitStatus{}, err
	}
	c.eventOrder.Lock()
	defer c.eventOrder.Unlock()
	c.events.Publish(runtime.TaskDeleteEventTopic, &eventstypes.TaskDelete{
		ContainerID: c.ID,
		Pid:         uint32(exit.Pid),
		ExitStatus:  uint32(exit.Code),
		ExitedAt:    protobuf.ToTimestamp(exit.ExitedAt),
	})
	return exit, nil
}

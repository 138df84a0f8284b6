package integration

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
)

// The steps of a container's life, as a user of the Go client takes them:
// create the container, create its task (the shim starts, runc creates),
// Wait, Start, read the exit status, delete the task, delete the container.
// Each step comes in two forms: one returning an error, usable from
// goroutines, and one for the test's own goroutine that fails the test.

// exitTimeout bounds the wait for a container that is expected to exit.
const exitTimeout = time.Minute

// createContainer creates container id from the busybox image, to run
// command with the session's runtime. Later opts override earlier ones, so a
// test can pass its own client.WithRuntime.
func (s *session) createContainer(id string, command []string, opts ...client.NewContainerOpts) (client.Container, error) {
	base := []client.NewContainerOpts{
		client.WithImage(s.image),
		client.WithNewSnapshot(id+"-rootfs", s.image),
		client.WithRuntime(s.runtime, nil),
		client.WithNewSpec(oci.WithImageConfig(s.image), oci.WithProcessArgs(command...)),
	}
	container, err := s.client.NewContainer(s.ctx, id, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	return container, nil
}

// newContainer is createContainer for the test goroutine. The container,
// and its task if one is left, is deleted when the test ends.
func (s *session) newContainer(t *testing.T, id string, command []string, opts ...client.NewContainerOpts) client.Container {
	t.Helper()
	container, err := s.createContainer(id, command, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeContainer(s.ctx, container); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return container
}

// removeContainer deletes whatever is left of a container: a running task
// (killed first), a stopped one, the container and its snapshot.
func removeContainer(ctx context.Context, container client.Container) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if task, err := container.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task %s: %w", container.ID(), err)
		}
	}
	if err := container.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", container.ID(), err)
	}
	return nil
}

// createTask creates the container's task with the given stdio. The FIFOs
// are made in the daemon's folder rather than the shared /run/containerd/fifo.
func (s *session) createTask(container client.Container, streams *stdio, opts ...client.NewTaskOpts) (client.Task, error) {
	var stdin io.Reader
	var closer *stdinCloser
	if streams.stdin != nil {
		closer = &stdinCloser{reader: streams.stdin, ctx: s.ctx}
		stdin = closer
	}
	creator := cio.NewCreator(cio.WithStreams(stdin, &streams.stdout, &streams.stderr), cio.WithFIFODir(s.daemon.FIFODir))
	task, err := container.NewTask(s.ctx, creator, opts...)
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w", container.ID(), err)
	}
	if closer != nil {
		closer.attach(task)
	}
	return task, nil
}

// startTaskE creates and starts the task and returns it with the channel
// its exit status arrives on. Wait is asked for before Start: a process
// that exits at once could otherwise exit before anyone waits.
func (s *session) startTaskE(container client.Container, streams *stdio, opts ...client.NewTaskOpts) (client.Task, <-chan client.ExitStatus, error) {
	task, err := s.createTask(container, streams, opts...)
	if err != nil {
		return nil, nil, err
	}
	exitCh, err := task.Wait(s.ctx)
	if err != nil {
		return task, nil, fmt.Errorf("wait task %s: %w", container.ID(), err)
	}
	if err := task.Start(s.ctx); err != nil {
		return task, nil, fmt.Errorf("start task %s: %w", container.ID(), err)
	}
	return task, exitCh, nil
}

// startTask is startTaskE for the test goroutine.
func (s *session) startTask(t *testing.T, container client.Container, streams *stdio, opts ...client.NewTaskOpts) (client.Task, <-chan client.ExitStatus) {
	t.Helper()
	task, exitCh, err := s.startTaskE(container, streams, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return task, exitCh
}

// awaitExit reads one exit status, or gives up after timeout.
func awaitExit(exitCh <-chan client.ExitStatus, timeout time.Duration) (uint32, error) {
	select {
	case status := <-exitCh:
		code, _, err := status.Result()
		return code, err
	case <-time.After(timeout):
		return 0, fmt.Errorf("no exit within %v", timeout)
	}
}

// exitCodeOf is awaitExit for the test goroutine.
func exitCodeOf(t *testing.T, exitCh <-chan client.ExitStatus) uint32 {
	t.Helper()
	code, err := awaitExit(exitCh, exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// deleteTaskE deletes a stopped task and checks that Delete reports the
// exit code Wait did: the shim answers both from one record of the exit.
// Delete also waits for the client's stdio copies to end, so the output
// buffers are complete once it returns.
func deleteTaskE(ctx context.Context, task client.Task, waitCode uint32) error {
	status, err := task.Delete(ctx)
	if err != nil {
		return fmt.Errorf("delete task %s: %w", task.ID(), err)
	}
	if status.ExitCode() != waitCode {
		return fmt.Errorf("task %s: Delete reports exit code %d, Wait reported %d", task.ID(), status.ExitCode(), waitCode)
	}
	return nil
}

// deleteTask is deleteTaskE for the test goroutine.
func deleteTask(t *testing.T, ctx context.Context, task client.Task, waitCode uint32) {
	t.Helper()
	if err := deleteTaskE(ctx, task, waitCode); err != nil {
		t.Fatal(err)
	}
}

// runResult is the end of a container that ran to completion.
type runResult struct {
	exitCode uint32
	stdout   string
	stderr   string
}

// run runs command in a new container id until it exits, then deletes task
// and container, and returns what it printed and its exit code.
func (s *session) run(id string, stdin io.Reader, command ...string) (result runResult, err error) {
	container, err := s.createContainer(id, command)
	if err != nil {
		return result, err
	}
	defer func() {
		if removeErr := removeContainer(s.ctx, container); err == nil {
			err = removeErr
		}
	}()
	streams := &stdio{stdin: stdin}
	task, exitCh, err := s.startTaskE(container, streams)
	if err != nil {
		return result, err
	}
	code, err := awaitExit(exitCh, exitTimeout)
	if err != nil {
		return result, fmt.Errorf("container %s: %w", id, err)
	}
	if err := deleteTaskE(s.ctx, task, code); err != nil {
		return result, err
	}
	return runResult{exitCode: code, stdout: streams.stdout.String(), stderr: streams.stderr.String()}, nil
}

// runToExit is run for the test goroutine.
func (s *session) runToExit(t *testing.T, id string, stdin io.Reader, command ...string) runResult {
	t.Helper()
	result, err := s.run(id, stdin, command...)
	if err != nil {
		t.Fatal(err)
	}
	return result
}

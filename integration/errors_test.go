package integration

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// A request the shim cannot honour must fail with the errdefs kind
// containerd's users test for (errdefs.IsNotFound, IsFailedPrecondition...),
// and must leave the shim and the machine fit for the next container.
// Requests go through the client where it passes them on as they are, and
// straight to containerd's task service where the client would check them
// itself first and never reach the shim.

func TestBadRequests(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, s *session)
	}{
		{"kill stopped process", killStoppedProcess},
		{"delete running task", deleteRunningTask},
		{"unknown exec id", unknownExecID},
		{"runc binary missing", runcBinaryMissing},
	}
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				tc.run(t, s)
				assertStillWorks(t, s)
			})
		}
	})
}

// assertStillWorks runs a fresh container after a failed request.
func assertStillWorks(t *testing.T, s *session) {
	t.Helper()
	result := s.runToExit(t, "after-"+sanitize(t.Name()), nil, "sh", "-c", "echo fine")
	switch {
	case result.exitCode != 0:
		t.Errorf("next container: exit code %d, want 0", result.exitCode)
	case result.stdout != "fine\n":
		s.shimFellShort(t, "next container printed %q, want %q", result.stdout, "fine\n")
	}
}

// sanitize turns a subtest name into a container id fragment.
func sanitize(name string) string {
	name = name[strings.LastIndex(name, "/")+1:]
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
}

func assertKind(t *testing.T, what string, err error, kind func(error) bool, kindName string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, kindName)
	} else if !kind(err) {
		t.Errorf("%s: error %q is not %s", what, err, kindName)
	}
}

// killStoppedProcess: the process has exited but its task is not deleted;
// there is nothing left to signal.
func killStoppedProcess(t *testing.T, s *session) {
	container := s.newContainer(t, "stopped", []string{"true"})
	task, exitCh := s.startTask(t, container, &stdio{})
	code := exitCodeOf(t, exitCh)

	err := task.Kill(s.ctx, syscall.SIGKILL)
	assertKind(t, "kill of a stopped process", err, errdefs.IsNotFound, "NotFound")
	deleteTask(t, s.ctx, task, code)
}

// deleteRunningTask: deleting a running task must be refused, not turn into
// a kill. The client refuses by itself, so the request goes to the service.
func deleteRunningTask(t *testing.T, s *session) {
	container := s.newContainer(t, "running", []string{"sleep", "1000"})
	task, exitCh := s.startTask(t, container, &stdio{})

	_, err := s.client.TaskService().Delete(s.ctx, &tasksapi.DeleteTaskRequest{ContainerID: container.ID()})
	err = errgrpc.ToNative(err)
	if s.runtime == harness.RuncRuntime {
		// The stock shim refuses with a plain error ("cannot delete a running
		// process"), which reaches the client as Unknown: its row can only
		// vouch for the refusal. Ours is held to the kind the client's own
		// check uses.
		if err == nil {
			t.Error("delete of a running task: no error")
		}
		t.Logf("stock shim refuses the delete with: %v", err)
	} else {
		assertKind(t, "delete of a running task", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	}

	status, err := task.Status(s.ctx)
	if err != nil || status.Status != client.Running {
		t.Errorf("after the refused delete: status %v (%v), want running", status.Status, err)
	}
	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deleteTask(t, s.ctx, task, exitCodeOf(t, exitCh))
}

// unknownExecID: State, Kill and the client's LoadProcess on an exec id the
// task never had.
func unknownExecID(t *testing.T, s *session) {
	container := s.newContainer(t, "no-such-exec", []string{"sleep", "1000"})
	task, exitCh := s.startTask(t, container, &stdio{})
	id := container.ID()
	service := s.client.TaskService()

	_, err := task.LoadProcess(s.ctx, "nope", nil)
	assertKind(t, "LoadProcess of an unknown exec", err, errdefs.IsNotFound, "NotFound")
	_, err = service.Get(s.ctx, &tasksapi.GetRequest{ContainerID: id, ExecID: "nope"})
	assertKind(t, "state of an unknown exec", errgrpc.ToNative(err), errdefs.IsNotFound, "NotFound")
	_, err = service.Kill(s.ctx, &tasksapi.KillRequest{ContainerID: id, ExecID: "nope", Signal: uint32(syscall.SIGKILL)})
	assertKind(t, "kill of an unknown exec", errgrpc.ToNative(err), errdefs.IsNotFound, "NotFound")

	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deleteTask(t, s.ctx, task, exitCodeOf(t, exitCh))
}

// runcBinaryMissing: the runtime options name a runc that does not exist.
// Creating the task must fail and say why, and the rootfs the shim mounted
// for it must not stay mounted.
func runcBinaryMissing(t *testing.T, s *session) {
	const missing = "/nonexistent/runc"
	container := s.newContainer(t, "no-runc", []string{"true"},
		client.WithRuntime(s.runtime, &options.Options{BinaryName: missing}))

	_, err := s.createTask(container, &stdio{})
	if err == nil {
		t.Fatal("task created with a runc binary that does not exist")
	}
	t.Logf("create with BinaryName %s: %v", missing, err)
	if !strings.Contains(err.Error(), missing) && !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("error %q names neither %s nor a missing file", err, missing)
	}
	s.daemon.AssertNoContainerTraces(t, s.ns, container.ID())
}

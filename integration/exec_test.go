package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Exec processes join a running container: `docker exec`, `kubectl exec`,
// `ctr task exec`. Each gets its own stdio, its own exit status and its own
// events, and dies with the container.

// runningTask starts `sleep 1000` and returns its task; the test's cleanup
// kills and deletes it.
func (s *session) runningTask(t *testing.T, id string) (client.Container, client.Task, <-chan client.ExitStatus) {
	t.Helper()
	container := s.newContainer(t, id, []string{"sleep", "1000"})
	task, exitCh := s.startTask(t, container, &stdio{})
	return container, task, exitCh
}

// sleepingExec starts `sleep 1000` as exec id in task; the test's end kills
// and deletes it.
func sleepingExec(t *testing.T, s *session, container client.Container, task client.Task, id string) client.Process {
	t.Helper()
	process, err := task.Exec(s.ctx, id, execSpec(t, s, container, "sleep", "1000"), cio.NewCreator())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		process.Kill(s.ctx, unix.SIGKILL)
		process.Delete(s.ctx)
	})
	if err := process.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	return process
}

// execSpec is the container's process spec with other args: what
// `ctr task exec` sends.
func execSpec(t *testing.T, s *session, container client.Container, args ...string) *specs.Process {
	t.Helper()
	spec, err := container.Spec(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	process := *spec.Process
	process.Args = args
	process.Terminal = false
	return &process
}

// execResult is what one exec process left behind.
type execResult struct {
	code           uint32
	stdout, stderr string
}

func runExec(s *session, task client.Task, execID string, spec *specs.Process, stdin string, more ...cio.Opt) (execResult, error) {
	streams := &stdio{}
	opts := []cio.Opt{cio.WithStreams(nil, &streams.stdout, &streams.stderr)}
	var closer *stdinCloser
	if stdin != "" {
		closer = &stdinCloser{reader: strings.NewReader(stdin), ctx: s.ctx}
		opts = []cio.Opt{cio.WithStreams(closer, &streams.stdout, &streams.stderr)}
	}
	process, err := task.Exec(s.ctx, execID, spec, cio.NewCreator(append(opts, more...)...))
	if err != nil {
		return execResult{}, fmt.Errorf("exec %s: %w", execID, err)
	}
	defer process.Delete(s.ctx)
	exitCh, err := process.Wait(s.ctx)
	if err != nil {
		return execResult{}, err
	}
	if err := process.Start(s.ctx); err != nil {
		return execResult{}, fmt.Errorf("start exec %s: %w", execID, err)
	}
	if closer != nil {
		closer.attach(process)
	}
	code, err := awaitExit(exitCh, time.Minute)
	if err != nil {
		return execResult{}, fmt.Errorf("exec %s: %w", execID, err)
	}
	if _, err := process.Delete(s.ctx); err != nil {
		return execResult{}, fmt.Errorf("delete exec %s: %w", execID, err)
	}
	return execResult{code: code, stdout: streams.stdout.String(), stderr: streams.stderr.String()}, nil
}

func TestExecOutputAndExitCode(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container, task, _ := s.runningTask(t, "exec-target")
		spec := execSpec(t, s, container, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 5")
		result, err := runExec(s, task, "e1", spec, "")
		if err != nil {
			t.Fatal(err)
		}
		if result.code != 5 {
			t.Errorf("exec: exit code %d, want 5", result.code)
		}
		if result.stdout != "exec-out\n" || result.stderr != "exec-err\n" {
			s.shimFellShort(t, "exec: stdout %q, stderr %q; want \"exec-out\\n\", \"exec-err\\n\"", result.stdout, result.stderr)
		}
		status, err := task.Status(s.ctx)
		if err != nil || status.Status != client.Running {
			t.Fatalf("container after its exec ended: %v, %v", status.Status, err)
		}
	})
}

func TestExecStdinAndCloseIO(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container, task, _ := s.runningTask(t, "exec-cat")
		result, err := runExec(s, task, "cat", execSpec(t, s, container, "cat"), "typed into exec\n")
		if err != nil {
			t.Fatal(err)
		}
		if result.code != 0 {
			t.Errorf("cat: exit code %d, want 0", result.code)
		}
		if result.stdout != "typed into exec\n" {
			s.shimFellShort(t, "cat: stdout %q, want %q", result.stdout, "typed into exec\n")
		}
	})
}

func TestExecThatCannotStartSaysWhy(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container, task, _ := s.runningTask(t, "exec-fails")
		_, err := runExec(s, task, "nosuch", execSpec(t, s, container, "/no/such/binary"), "")
		if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
			t.Fatalf("exec of a missing binary: %v; want runc's reason naming the binary", err)
		}
		result, err := runExec(s, task, "after", execSpec(t, s, container, "true"), "")
		if err != nil || result.code != 0 {
			t.Fatalf("the next exec: %+v, %v", result, err)
		}
	})
}

func TestManyConcurrentExecs(t *testing.T) {
	const execs = 100
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container, task, _ := s.runningTask(t, "exec-many")
		var wg sync.WaitGroup
		errs := make(chan error, execs)
		for i := range execs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := uint32(i % 50)
				spec := execSpec(t, s, container, "sh", "-c", fmt.Sprintf("echo %d; exit %d", i, want))
				result, err := runExec(s, task, fmt.Sprintf("e%d", i), spec, "")
				switch {
				case err != nil:
					errs <- err
				case result.code != want:
					errs <- fmt.Errorf("exec %d: exit code %d, want %d", i, result.code, want)
				case result.stdout != fmt.Sprintf("%d\n", i):
					// The stock shim reports an exec's exit without waiting
					// for its output, and was seen, under load, to lose it.
					s.shimFellShort(t, "exec %d: stdout %q, want %q", i, result.stdout, fmt.Sprintf("%d\n", i))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestExecsDieWithTheContainer(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container, task, initExit := s.runningTask(t, "exec-orphans")
		process, err := task.Exec(s.ctx, "sleeper", execSpec(t, s, container, "sleep", "1000"), cio.NewCreator())
		if err != nil {
			t.Fatal(err)
		}
		execExit, err := process.Wait(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := process.Start(s.ctx); err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(s.ctx, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code, err := awaitExit(execExit, time.Minute); err != nil || code != 137 {
			t.Fatalf("exec after its container was killed: %d, %v; want 137", code, err)
		}
		if code, err := awaitExit(initExit, time.Minute); err != nil || code != 137 {
			t.Fatalf("init: %d, %v; want 137", code, err)
		}
		process.Delete(s.ctx)
	})
}

// Pause freezes every process of the container, Resume thaws them: the
// task's status says so, and so does the kernel, in the container's cgroup:
// freezer.state on cgroup v1; on v2 cgroup.freeze, which runc writes, and
// the frozen line of cgroup.events, which the kernel sets once every process
// has stopped.
func TestPauseAndResume(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		_, task, _ := s.runningTask(t, "pausable")
		if err := task.Pause(s.ctx); err != nil {
			t.Fatal(err)
		}
		if status, err := task.Status(s.ctx); err != nil || status.Status != client.Paused {
			t.Fatalf("after pause: %v, %v", status.Status, err)
		}
		assertFreezer(t, int(task.Pid()), "FROZEN", "1", "frozen 1")
		if err := task.Resume(s.ctx); err != nil {
			t.Fatal(err)
		}
		if status, err := task.Status(s.ctx); err != nil || status.Status != client.Running {
			t.Fatalf("after resume: %v, %v", status.Status, err)
		}
		assertFreezer(t, int(task.Pid()), "THAWED", "0", "frozen 0")
	})
}

// Update changes the limits of a running container (`runc update`): the
// memory limit, the CPU quota and the number of processes, each read back
// from the file the kernel enforces it from, in v1's or v2's names.
func TestUpdateResources(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		_, task, _ := s.runningTask(t, "updatable")
		memory, pids := int64(96<<20), int64(64)
		quota, period := int64(50000), uint64(100000)
		err := task.Update(s.ctx, client.WithResources(&specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: &memory},
			CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
			Pids:   &specs.LinuxPids{Limit: &pids},
		}))
		if err != nil {
			t.Fatal(err)
		}
		pid := int(task.Pid())
		for _, limit := range []cgroupLimit{
			{"memory", "memory.limit_in_bytes", "memory.max", fmt.Sprint(memory), fmt.Sprint(memory)},
			{"pids", "pids.max", "pids.max", fmt.Sprint(pids), fmt.Sprint(pids)},
			{"cpu", "cpu.cfs_quota_us", "cpu.max", fmt.Sprint(quota), fmt.Sprintf("%d %d", quota, period)},
			{"cpu", "cpu.cfs_period_us", "cpu.max", fmt.Sprint(period), fmt.Sprintf("%d %d", quota, period)},
		} {
			limit.check(t, pid)
		}
	})
}

// IoUid/IoGid in the runtime options own the process's stdio pipes, so a
// process running as that user can reopen them. runc then gives the owner
// to the container process's own user (here root: 0) as it sets the
// process up, and leaves the group: the group shows the shim's chown.
func TestIoUidOwnsTheStdioPipes(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container := s.newContainer(t, "iouid", []string{"stat", "-L", "-c", "%u:%g", "/proc/self/fd/1"},
			client.WithRuntime(s.runtime, &options.Options{IoUid: 1234, IoGid: 5678}))
		streams := &stdio{}
		task, exitCh := s.startTask(t, container, streams)
		code := exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, code)
		if got := strings.TrimSpace(streams.stdout.String()); code != 0 || got != "0:5678" {
			t.Fatalf("stdout pipe owned by %q (exit %d), want 0:5678", got, code)
		}
	})
}

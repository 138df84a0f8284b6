package integration

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Containers of one group (a Kubernetes pod: the CRI sandbox-id annotation;
// or our own group annotation) share one shim process, and each still gets
// its own exit.

func TestGroupedContainersShareOneShim(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		runGroup(t, s, "io.kubernetes.cri.sandbox-id", "pod1")
	})
}

func TestOwnGroupAnnotation(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		if s.runtime != harness.TeachRuntime {
			t.Skip("the group annotation is io.containerd.teach.v2's own")
		}
		runGroup(t, s, "io.containerd.teach.v2.group", "mygroup")
	})
}

func runGroup(t *testing.T, s *session, annotation, group string) {
	const members = 10
	type member struct {
		task   client.Task
		exitCh <-chan client.ExitStatus
	}
	var all []member
	for i := range members {
		// Each runs until SIGTERM, then exits with a code of its own. It
		// says ready once the trap is set: as a pid namespace's init, sh
		// would ignore a SIGTERM that came earlier (the kernel drops
		// signals an init has no handler for).
		script := fmt.Sprintf("trap 'exit %d' TERM; echo ready; while :; do sleep 0.1; done", 10+i)
		container := s.newContainer(t, fmt.Sprintf("%s-%d", group, i), []string{"sh", "-c", script},
			withSpecOpts(oci.WithAnnotations(map[string]string{annotation: group})))
		streams := &stdio{}
		task, exitCh := s.startTask(t, container, streams)
		harness.Eventually(t, time.Minute, "the container to set its trap", func() error {
			if !strings.Contains(streams.stdout.String(), "ready") {
				return errors.New("not ready yet")
			}
			return nil
		})
		all = append(all, member{task, exitCh})
	}
	shims := map[int]bool{}
	for _, m := range all {
		parent, err := harness.ParentPID(int(m.task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		shims[parent] = true
	}
	if len(shims) != 1 {
		t.Fatalf("%d containers of one group have %d shims as parents, want 1", members, len(shims))
	}
	var wg sync.WaitGroup
	for i, m := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.task.Kill(s.ctx, unix.SIGTERM); err != nil {
				t.Error(err)
				return
			}
			code := exitCodeOf(t, m.exitCh)
			if code != uint32(10+i) {
				t.Errorf("member %d: exit code %d, want %d", i, code, 10+i)
			}
			deleteTask(t, s.ctx, m.task, code)
		}()
	}
	wg.Wait()
	for shim := range shims {
		harness.AssertProcessGone(t, shim, "the group's shim after its last container was deleted")
	}
}

// groupMember is a container of a group, running until SIGTERM.
type groupMember struct {
	id      string
	task    client.Task
	exitCh  <-chan client.ExitStatus
	streams *stdio
}

// newGroupMember creates a container of group that prints its id once its
// trap is set, then runs until SIGTERM, and exits with code.
func newGroupMember(t *testing.T, s *session, group, id string, code int) (client.Container, error) {
	script := fmt.Sprintf("trap 'exit %d' TERM; echo %s; while :; do sleep 0.1; done", code, id)
	container, err := s.createContainer(id, []string{"sh", "-c", script},
		withSpecOpts(oci.WithAnnotations(map[string]string{groupAnnotation: group})))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { removeContainer(s.ctx, container) })
	return container, nil
}

// startGroupMember starts a member's task: containerd runs `start`, which
// joins the group's shim or launches it.
func startGroupMember(s *session, container client.Container) (*groupMember, error) {
	m := &groupMember{id: container.ID(), streams: &stdio{}}
	var err error
	m.task, m.exitCh, err = s.startTaskE(container, m.streams)
	return m, err
}

// endGroupMember ends a member with SIGTERM and checks its exit code.
func endGroupMember(s *session, m *groupMember, code int) error {
	if err := m.task.Kill(s.ctx, unix.SIGTERM); err != nil {
		return fmt.Errorf("kill %s: %w", m.id, err)
	}
	got, err := awaitExit(m.exitCh, exitTimeout)
	if err != nil {
		return fmt.Errorf("%s: %w", m.id, err)
	}
	if got != uint32(code) {
		return fmt.Errorf("%s: exit code %d, want %d", m.id, got, code)
	}
	return nil
}

// stopGroupMember ends a member and deletes its task.
func stopGroupMember(s *session, m *groupMember, code int) error {
	if err := endGroupMember(s, m, code); err != nil {
		return err
	}
	return deleteTaskE(s.ctx, m.task, uint32(code))
}

// assertGroupSocketGone: a group's socket, and the lock file beside it, go
// with the group's shim.
func assertGroupSocketGone(t *testing.T, socket string) {
	t.Helper()
	for _, path := range []string{socket, socket + ".lock"} {
		harness.Eventually(t, time.Minute, "the group's socket and its lock to be removed", func() error {
			return harness.PathGone(path)
		})
	}
}

// Every container of a group created at once, before the group has a shim:
// one `start` launches the shim and all the others join it, however slowly
// it comes up.
func TestGroupStartedAllAtOnce(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		if s.runtime != harness.TeachRuntime {
			t.Skip("the group annotation is io.containerd.teach.v2's own")
		}
		const members = 50
		all := make([]*groupMember, members)
		errs := make([]error, members)
		var wg sync.WaitGroup
		for i := range members {
			wg.Go(func() {
				container, err := newGroupMember(t, s, "at-once", fmt.Sprintf("at-once-%02d", i), i)
				if err == nil {
					all[i], err = startGroupMember(s, container)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		shims := map[int][]string{}
		for _, m := range all {
			waitForOutput(t, m.streams, m.id+"\n")
			shim, err := harness.ParentPID(int(m.task.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			shims[shim] = append(shims[shim], m.id)
		}
		if len(shims) != 1 {
			t.Fatalf("%d containers of one group created at once are served by %d shims, want 1: %v", members, len(shims), shims)
		}
		socket, err := s.daemon.ShimSocket(s.ns, all[0].id)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range all {
			wg.Go(func() { errs[i] = stopGroupMember(s, m, i) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for shim := range shims {
			harness.AssertProcessGone(t, shim, "the group's shim after its last container was deleted")
		}
		assertGroupSocketGone(t, socket)
	})
}

// A container of a group started while the group's shim leaves, its last
// container deleted: the start either joins the shim before it decides, and
// the shim stays for the newcomer, or finds it gone and launches another.
// Either way the newcomer runs.
func TestGroupStartWhileItsShimLeaves(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		if s.runtime != harness.TeachRuntime {
			t.Skip("the group annotation is io.containerd.teach.v2's own")
		}
		const rounds = 20
		const group = "relay"
		first, err := newGroupMember(t, s, group, "relay-00", 0)
		if err != nil {
			t.Fatal(err)
		}
		previous, err := startGroupMember(s, first)
		if err != nil {
			t.Fatal(err)
		}
		waitForOutput(t, previous.streams, previous.id+"\n")
		previousShim, err := harness.ParentPID(int(previous.task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		shims := map[int]bool{previousShim: true}
		joined := 0
		for i := 1; i <= rounds; i++ {
			container, err := newGroupMember(t, s, group, fmt.Sprintf("relay-%02d", i), i)
			if err != nil {
				t.Fatal(err)
			}
			if err := endGroupMember(s, previous, i-1); err != nil {
				t.Fatal(err)
			}
			// The group's only container is deleted (containerd then
			// calls Shutdown) while the next one starts.
			var deleteErr error
			var wg sync.WaitGroup
			wg.Go(func() { deleteErr = deleteTaskE(s.ctx, previous.task, uint32(i-1)) })
			next, startErr := startGroupMember(s, container)
			wg.Wait()
			if err := errors.Join(deleteErr, startErr); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			waitForOutput(t, next.streams, next.id+"\n")
			shim, err := harness.ParentPID(int(next.task.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			if shim == previousShim {
				joined++
			}
			shims[shim] = true
			previous, previousShim = next, shim
		}
		t.Logf("of %d starts while their group's shim was leaving, %d joined it and it stayed, %d launched a new one",
			rounds, joined, rounds-joined)
		socket, err := s.daemon.ShimSocket(s.ns, previous.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := stopGroupMember(s, previous, rounds); err != nil {
			t.Fatal(err)
		}
		for shim := range shims {
			harness.AssertProcessGone(t, shim, "a shim of the group")
		}
		assertGroupSocketGone(t, socket)
	})
}

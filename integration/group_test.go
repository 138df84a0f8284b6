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

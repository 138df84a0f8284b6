package integration

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/inspect"
)

// Two containers of one group share one shim. trace tells each one's story
// alone, with what the shim-wide journal says about it merged in (marked
// [shim]); inspect of one says whose the other's pipes and FIFOs are.
func TestTraceAndInspectGroupedContainers(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		group := map[string]string{"io.containerd.teach.v2.group": "tg"}
		first := s.newContainer(t, "pod-a", []string{"sleep", "1000"}, withSpecOpts(oci.WithAnnotations(group)))
		taskA, exitA := s.startTask(t, first, &stdio{})
		second := s.newContainer(t, "pod-b", []string{"sleep", "1000"}, withSpecOpts(oci.WithAnnotations(group)))
		taskB, exitB := s.startTask(t, second, &stdio{})
		probe := groupedExec(t, s, second, taskB, "probe")

		report := inspectReport(t, s, "pod-a")
		assertDescriptor(t, report.Descriptors, "pipe", "stdout of init (pid "+fmt.Sprint(taskB.Pid())+") of another container of this shim: pod-b")
		assertDescriptor(t, report.Descriptors, "fifo", "stdout FIFO of another container of this shim: pod-b (its init)")
		assertDescriptor(t, report.Descriptors, "fifo", "stdout FIFO of another container of this shim: pod-b (its exec probe)")
		assertDescriptor(t, report.Descriptors, "fifo", "stdout FIFO of this container")

		probeExit, err := probe.Wait(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := probe.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		exitCodeOf(t, probeExit)
		if _, err := probe.Delete(s.ctx); err != nil {
			t.Fatal(err)
		}
		for _, end := range []struct {
			task   client.Task
			exitCh <-chan client.ExitStatus
		}{{taskA, exitA}, {taskB, exitB}} {
			if err := end.task.Kill(s.ctx, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if code := exitCodeOf(t, end.exitCh); code != 137 {
				t.Fatalf("exit code %d, want 137", code)
			}
			deleteTask(t, s.ctx, end.task, 137)
		}

		shims := map[string]bool{}
		for id, other := range map[string]string{"pod-a": "pod-b", "pod-b": "pod-a"} {
			got := s.trace(t, id)
			t.Logf("trace %s:\n%s", id, got.stdout)
			if got.code != 0 {
				t.Fatalf("trace %s: exit %d\n%s", id, got.code, got.stderr)
			}
			pid := map[string]uint32{"pod-a": taskA.Pid(), "pod-b": taskB.Pid()}[id]
			inOrder(t, got.stdout,
				`^shim pid \d+ \(group tg\)`,
				`├─+▶│.*  Create$`,
				`\[shim\] container joined, journal level info`,
				`runc create .*→ exit 0`,
				`\$ runc .* create .* `+id+`$`,
				`Start → ok, pid `+fmt.Sprint(pid),
				`├─+▶│.*  Kill$`,
				fmt.Sprintf(`init \(pid %d\) killed by SIGKILL \(status 137\): Kill request from containerd`, pid),
				`├─+▶│.*  Delete$`,
				`container deleted; journal closed`,
				`\[shim\] container left`,
			)
			if strings.Contains(got.stdout, other) {
				t.Errorf("the trace of %s tells of %s:\n%s", id, other, got.stdout)
			}
			shims[regexp.MustCompile(`(?m)^shim pid (\d+)`).FindStringSubmatch(got.stdout)[1]] = true
			if id == "pod-a" {
				// The shim started in the first container's bundle.
				inOrder(t, got.stdout, `\[shim\] shim pid \d+ started for group tg, in this container's bundle`, `Create$`)
			} else {
				inOrder(t, got.stdout, `\[exec probe\] Exec$`, `exec probe \(pid \d+\) killed by SIGKILL`, `\[exec probe\] Delete → ok`)
			}
		}
		if len(shims) != 1 {
			t.Errorf("the traces name shims %v; the group has one", shims)
		}
	})
}

// groupedExec starts `sleep 1000` as exec id, with its FIFOs in the test
// daemon's folder.
func groupedExec(t *testing.T, s *session, container client.Container, task client.Task, id string) client.Process {
	t.Helper()
	streams := &stdio{}
	creator := cio.NewCreator(cio.WithStreams(nil, &streams.stdout, &streams.stderr), cio.WithFIFODir(s.daemon.FIFODir))
	process, err := task.Exec(s.ctx, id, execSpec(t, s, container, "sleep", "1000"), creator)
	if err != nil {
		t.Fatal(err)
	}
	if err := process.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	return process
}

// assertDescriptor checks that one of the shim's descriptors is of kind and
// has meaning in what inspect says of it.
func assertDescriptor(t *testing.T, fds []inspect.Descriptor, kind, meaning string) {
	t.Helper()
	for _, fd := range fds {
		if fd.Kind == kind && strings.Contains(fd.Meaning, meaning) {
			return
		}
	}
	var lines []string
	for _, fd := range fds {
		lines = append(lines, fmt.Sprintf("%d %s %s: %s", fd.FD, fd.Kind, fd.Target, fd.Meaning))
	}
	t.Errorf("no %s descriptor whose meaning says %q:\n%s", kind, meaning, strings.Join(lines, "\n"))
}

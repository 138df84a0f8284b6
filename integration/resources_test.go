package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The container's cgroup as the shim reports it: metrics (ctr task metrics,
// docker stats, the kubelet) and OOM kills (TaskOOM).

// Stats reads the container's cgroup: the Go client gets the metrics type
// of the host's cgroup version (v1's or v2's Metrics), with what the
// container uses and its limits; `ctr task metrics` prints them under each
// version's names.
func TestMetricsOfARunningContainer(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		const memoryLimit, pidsLimit = 64 << 20, 50
		container := s.newContainer(t, "metered", []string{"sleep", "1000"},
			withSpecOpts(oci.WithMemoryLimit(memoryLimit), oci.WithPidsLimit(pidsLimit)))
		task, _ := s.startTask(t, container, &stdio{})
		metric, err := task.Metrics(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		data, err := typeurl.UnmarshalAny(metric.Data)
		if err != nil {
			t.Fatal(err)
		}
		var want []string // lines of ctr task metrics
		switch m := data.(type) {
		case *v1.Metrics:
			if onCgroupV2() {
				t.Fatalf("cgroup v1 metrics on a cgroup v2 host: %v", m)
			}
			if m.Pids == nil || m.Pids.Current < 1 || m.Pids.Limit != pidsLimit ||
				m.Memory == nil || m.Memory.Usage == nil || m.Memory.Usage.Usage == 0 || m.Memory.Usage.Limit != memoryLimit {
				t.Fatalf("cgroup v1 metrics miss the running process or its limits: pids %v, memory %v", m.Pids, m.Memory)
			}
			want = []string{"memory.limit_in_bytes " + fmt.Sprint(memoryLimit), "pids.limit " + fmt.Sprint(pidsLimit), "pids.current"}
		case *v2.Metrics:
			if !onCgroupV2() {
				t.Fatalf("cgroup v2 metrics on a cgroup v1 host: %v", m)
			}
			// runc's own setup ran in the cgroup before sleep did, so
			// some CPU time is always accounted.
			if m.Pids == nil || m.Pids.Current < 1 || m.Pids.Limit != pidsLimit ||
				m.Memory == nil || m.Memory.Usage == 0 || m.Memory.UsageLimit != memoryLimit ||
				m.CPU == nil || m.CPU.UsageUsec == 0 || m.MemoryEvents == nil {
				t.Fatalf("cgroup v2 metrics miss the running process or its limits: pids %v, memory %v, cpu %v, memory events %v",
					m.Pids, m.Memory, m.CPU, m.MemoryEvents)
			}
			want = []string{"memory.usage_limit " + fmt.Sprint(memoryLimit), "pids.limit " + fmt.Sprint(pidsLimit), "pids.current", "cpu.usage_usec"}
		default:
			t.Fatalf("metrics of type %s", reflect.TypeOf(data))
		}

		result := s.daemon.Ctr(t, s.ns, "task", "metrics", "metered")
		// ctr aligns its table with spaces: one space between the
		// columns makes the lines comparable.
		table := strings.Join(strings.Fields(strings.ReplaceAll(string(result.Stdout), "\n", " | ")), " ")
		for _, line := range want {
			if result.ExitCode != 0 || !strings.Contains(table, line) {
				t.Fatalf("ctr task metrics has no %q: exit %d\n%s%s", line, result.ExitCode, result.Stdout, result.Stderr)
			}
		}
	})
}

// The kernel's OOM killer kills a process over the container's memory
// limit: containerd must hear TaskOOM before TaskExit, the exit status is
// 137 (SIGKILL), and the kernel counted the kill in the container's cgroup
// (oom_kill in memory.events on v2, memory.oom_control on v1).
func TestOOMKillIsReportedBeforeTheExit(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		filter := fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, s.ns)
		envelopes, errs := s.client.Subscribe(s.ctx, filter)

		// dd reads into one 64 MiB buffer: past the 32 MiB limit, the
		// kernel's OOM killer kills it.
		container := s.newContainer(t, "oom", []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"},
			withSpecOpts(oci.WithMemoryLimit(32<<20)))
		task, exitCh := s.startTask(t, container, &stdio{})
		code := exitCodeOf(t, exitCh)
		if code != 137 {
			t.Fatalf("exit code %d, want 137 (killed by the OOM killer)", code)
		}
		// The cgroup stays until the task is deleted.
		counter := oomKillsOf(t, s, container)
		deleteTask(t, s.ctx, task, code)
		if counter != "1" {
			t.Errorf("the kernel counted %q OOM kills in the container's cgroup, want 1", counter)
		}

		got := strings.Join(collectTaskEvents(t, s, envelopes, errs), "\n")
		assertShimEventOrder(t, s)
		oom := strings.Index(got, "/tasks/oom")
		exit := strings.Index(got, "/tasks/exit")
		if oom < 0 || exit < 0 || oom > exit {
			s.shimFellShort(t, "want /tasks/oom before /tasks/exit, got:\n%s", got)
		}
	})
}

// oomKillsOf reads the kernel's count of OOM kills in a container's cgroup,
// found from its spec's cgroupsPath: its process is gone.
func oomKillsOf(t *testing.T, s *session, container client.Container) string {
	t.Helper()
	spec, err := container.Spec(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := "memory.oom_control"
	if onCgroupV2() {
		file = "memory.events"
	}
	content, err := harness.CgroupFile("memory", spec.Linux.CgroupsPath, file)
	if err != nil {
		t.Fatalf("read %s of the container's cgroup %s: %v", file, spec.Linux.CgroupsPath, err)
	}
	return keyedValue(content, "oom_kill")
}

// On cgroup v2 there is no OOM eventfd (v1's memory.oom_control with
// cgroup.event_control): the kernel counts OOM kills in the container's
// memory.events, and a shim learns of them by watching that file with
// inotify. The shim's descriptors show the watch: the fdinfo of an inotify
// descriptor lists the inode of each file it watches.
func TestShimWatchesMemoryEvents(t *testing.T) {
	needCgroupV2(t, "on v1 the OOM watch is an eventfd registered in cgroup.event_control, which /proc ties to no file")
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		_, task, _ := s.runningTask(t, "watched")
		shim, err := harness.ParentPID(int(task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		events := filepath.Join(cgroupDirOf(t, int(task.Pid()), "memory"), "memory.events")
		var stat unix.Stat_t
		if err := unix.Stat(events, &stat); err != nil {
			t.Fatal(err)
		}
		watches, err := harness.InotifyWatches(shim)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range watches {
			if w.Inode == stat.Ino && w.Major == unix.Major(stat.Dev) && w.Minor == unix.Minor(stat.Dev) {
				return
			}
		}
		t.Errorf("shim %s does not watch %s (inode %d); its inotify watches: %v",
			harness.DescribeProcess(shim), events, stat.Ino, watches)
	})
}

// withSpecOpts changes the spec createContainer made from the image, where
// another WithNewSpec would replace it.
func withSpecOpts(opts ...oci.SpecOpts) client.NewContainerOpts {
	return func(ctx context.Context, c *client.Client, container *containers.Container) error {
		var spec oci.Spec
		if err := json.Unmarshal(container.Spec.GetValue(), &spec); err != nil {
			return err
		}
		for _, opt := range opts {
			if err := opt(ctx, c, container, &spec); err != nil {
				return err
			}
		}
		any, err := typeurl.MarshalAny(&spec)
		if err != nil {
			return err
		}
		container.Spec = any
		return nil
	}
}

// The runtime option ShimCgroup moves the shim itself into a cgroup the
// operator made, so the shim's own use is accounted there.
func TestShimCgroupOption(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		name := "/" + s.ns + "-shim"
		// One hierarchy is enough: the shim joins the path where it exists.
		dir := filepath.Join("/sys/fs/cgroup/pids", name)
		if cgroups.Mode() == cgroups.Unified {
			dir = filepath.Join("/sys/fs/cgroup", name)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Registered first, so it runs last: after the container, and
		// with it the shim, is gone.
		t.Cleanup(func() {
			harness.Eventually(t, time.Minute, "the shim's cgroup to empty", func() error { return os.Remove(dir) })
		})
		container := s.newContainer(t, "shimcg", []string{"sleep", "1000"},
			client.WithRuntime(s.runtime, &options.Options{ShimCgroup: name}))
		task, _ := s.startTask(t, container, &stdio{})
		shim, err := harness.ParentPID(int(task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", shim))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), ":"+name+"\n") {
			t.Fatalf("shim %d is not in %s:\n%s", shim, name, data)
		}
	})
}

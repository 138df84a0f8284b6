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

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The container's cgroup as the shim reports it: metrics (ctr task metrics,
// docker stats, the kubelet) and OOM kills (TaskOOM).

func TestMetricsOfARunningContainer(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		_, task, _ := s.runningTask(t, "metered")
		metric, err := task.Metrics(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		data, err := typeurl.UnmarshalAny(metric.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch m := data.(type) {
		case *v1.Metrics:
			if m.Pids == nil || m.Pids.Current < 1 || m.Memory == nil || m.Memory.Usage == nil || m.Memory.Usage.Usage == 0 {
				t.Fatalf("cgroup v1 metrics miss the running process: pids %v, memory %v", m.Pids, m.Memory)
			}
		case *v2.Metrics:
			if m.Pids == nil || m.Pids.Current < 1 || m.Memory == nil || m.Memory.Usage == 0 {
				t.Fatalf("cgroup v2 metrics miss the running process: pids %v, memory %v", m.Pids, m.Memory)
			}
		default:
			t.Fatalf("metrics of type %s", reflect.TypeOf(data))
		}

		result := s.daemon.Ctr(t, s.ns, "task", "metrics", "metered")
		if result.ExitCode != 0 || !strings.Contains(string(result.Stdout), "pids.current") {
			t.Fatalf("ctr task metrics: exit %d\n%s%s", result.ExitCode, result.Stdout, result.Stderr)
		}
	})
}

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
		deleteTask(t, s.ctx, task, code)

		got := strings.Join(collectTaskEvents(t, envelopes, errs), "\n")
		assertShimEventOrder(t, s)
		oom := strings.Index(got, "/tasks/oom")
		exit := strings.Index(got, "/tasks/exit")
		if oom < 0 || exit < 0 || oom > exit {
			s.shimFellShort(t, "want /tasks/oom before /tasks/exit, got:\n%s", got)
		}
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

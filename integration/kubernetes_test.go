package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Kubernetes reaches the shim through containerd's CRI plugin: a runtime
// handler named in containerd's config,
//
//	[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.teach]
//	  runtime_type = "io.containerd.teach.v2"
//
// picked by a pod's RuntimeClass (handler: teach), or by
// `crictl runp --runtime teach`. The tests here are what a kubelet asks for
// one pod, typed with crictl: run the pod sandbox, create and start two
// containers in it, exec, read logs and stats, stop and remove everything.
// The reference row uses the CRI's built-in "runc" handler (the stock
// io.containerd.runc.v2 shim).
//
// Pods run on the host network, so no CNI plugin is needed.

// criHandlers are the handlers the test daemons configure next to "runc".
var criHandlers = []harness.RuntimeHandler{
	{Name: "teach", RuntimeType: harness.TeachRuntime},
}

var criRows = []struct{ name, handler, shim string }{
	{name: "teach", handler: "teach", shim: harness.TeachShimBinaryName},
	{name: "runc", handler: "runc", shim: harness.RuncShimBinaryName},
}

// podSession is one row's pod: the daemon, the handler, and the ids of
// what crictl made.
type podSession struct {
	d       *harness.Containerd
	handler string
	shim    string
	dir     string // the row's folder for config files

	podConfig string // the pod config file, which `crictl create` reads too
	pod       string
	one, two  string
}

// TestKubernetesPod runs one pod's life per pinned containerd and handler,
// as TestKubernetesPod/containerd-<version>/<handler>/<step>.
func TestKubernetesPod(t *testing.T) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			harness.ShimBinary(t)
			d := harness.StartContainerdWith(t, release.Version, harness.Options{CRI: true, RuntimeHandlers: criHandlers})
			podLife(t, d)
		})
	}
}

// podLife runs one pod's life through each handler of d, a daemon started
// with the CRI and criHandlers: subtests <handler>/<step>. Later steps need
// the earlier ones: a failed step skips the rest of its row.
func podLife(t *testing.T, d *harness.Containerd) {
	steps := []struct {
		name string
		run  func(t *testing.T, s *podSession)
	}{
		{"runp", podRun},
		{"create-start-two", podCreateStartTwo},
		{"one-shim-per-pod", podSharesOneShim},
		{"cgroups-under-the-pod-parent", podCgroupsUnderTheParent},
		{"cgroup-namespace", podCgroupNamespace},
		{"exec-sync", podExecSync},
		{"exec-tty", podExecTTY},
		{"logs", podLogs},
		{"stats", podStats},
		{"stop-rm-rmp-leave-nothing", podStopRemove},
	}
	// A failed step leaves the pod unusable only when it is one of these.
	required := map[string]bool{"runp": true, "create-start-two": true}
	for _, row := range criRows {
		t.Run(row.name, func(t *testing.T) {
			s := &podSession{d: d, handler: row.handler, shim: row.shim, dir: t.TempDir()}
			for _, step := range steps {
				if !t.Run(step.name, func(t *testing.T) { step.run(t, s) }) && required[step.name] {
					t.Fatalf("step %s failed; the pod cannot go on", step.name)
				}
			}
		})
	}
}

// podState is the part of `crictl inspect -o json` and
// `crictl inspectp -o json` the tests read.
type podState struct {
	Status struct {
		State    string `json:"state"`
		ExitCode int    `json:"exitCode"`
	} `json:"status"`
	Info struct {
		Pid         int    `json:"pid"`
		RuntimeType string `json:"runtimeType"`
	} `json:"info"`
}

func (s *podSession) inspect(t *testing.T, command, id string) podState {
	t.Helper()
	out := s.d.MustCrictl(t, command, "--output", "json", id)
	var state podState
	if err := json.Unmarshal([]byte(out), &state); err != nil {
		t.Fatalf("crictl %s: %v\n%s", command, err, out)
	}
	return state
}

// loopUntilTERM is a container's command: it prints one line to each
// stream, then waits, and exits 0 on SIGTERM as a well-behaved service does.
func loopUntilTERM(name string) []string {
	return []string{"sh", "-c", fmt.Sprintf("echo %s-out; echo %s-err >&2; trap 'exit 0' TERM; while :; do sleep 0.1; done", name, name)}
}

// podRun: `crictl runp --runtime <handler>` starts the sandbox, whose
// pause process runs under the handler's shim.
func podRun(t *testing.T, s *podSession) {
	config := s.d.NewPodConfig(t, "pod-"+s.handler)
	s.podConfig = harness.WriteJSON(t, filepath.Join(s.dir, "pod.json"), config)
	s.pod = s.d.MustCrictl(t, "runp", "--runtime", s.handler, s.podConfig)
	state := s.inspect(t, "inspectp", s.pod)
	if state.Status.State != "SANDBOX_READY" {
		t.Errorf("pod state %s, want SANDBOX_READY", state.Status.State)
	}
	assertShimBinary(t, state.Info.Pid, s.shim)
}

// assertShimBinary checks pid's parent runs the shim binary and returns
// the shim's pid.
func assertShimBinary(t *testing.T, pid int, shim string) int {
	t.Helper()
	parent, err := harness.ParentPID(pid)
	if err != nil {
		t.Fatalf("parent of %d: %v", pid, err)
	}
	exe, err := harness.Executable(parent)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(exe) != shim {
		t.Errorf("parent of %d is %s, want the shim %s", pid, harness.DescribeProcess(parent), shim)
	}
	return parent
}

// podCreateStartTwo: two containers in the pod, created and started.
func podCreateStartTwo(t *testing.T, s *podSession) {
	for _, name := range []string{"one", "two"} {
		config := harness.ContainerConfig{
			Metadata: harness.ContainerMetadata{Name: name},
			Image:    harness.ImageSpec{Image: harness.BusyboxImage},
			Command:  loopUntilTERM(name),
			LogPath:  name + ".log",
		}
		id := s.d.MustCrictl(t, "create", s.pod, harness.WriteJSON(t, filepath.Join(s.dir, name+".json"), config), s.podConfig)
		s.d.MustCrictl(t, "start", id)
		if state := s.inspect(t, "inspect", id); state.Status.State != "CONTAINER_RUNNING" {
			t.Errorf("container %s: %s, want CONTAINER_RUNNING", name, state.Status.State)
		}
		if name == "one" {
			s.one = id
		} else {
			s.two = id
		}
	}
}

// podSharesOneShim: the sandbox and both containers are children of one
// shim process, as with the stock shim: one shim per pod, not per
// container. (containerd 2.x sends a pod's containers to its sandbox's shim
// itself; containerd 1.7 runs `shim start` for each, and the shim must
// answer with the address of the pod's shim.)
func podSharesOneShim(t *testing.T, s *podSession) {
	sandboxShim := assertShimBinary(t, s.inspect(t, "inspectp", s.pod).Info.Pid, s.shim)
	for _, id := range []string{s.one, s.two} {
		if shim := assertShimBinary(t, s.inspect(t, "inspect", id).Info.Pid, s.shim); shim != sandboxShim {
			t.Errorf("container %.12s runs under shim %s, the sandbox under shim %s; want one shim for the pod",
				id, harness.DescribeProcess(shim), harness.DescribeProcess(sandboxShim))
		}
	}
}

// podCgroupsUnderTheParent: the sandbox and both containers are in
// cgroups below the pod's cgroup_parent, where a kubelet accounts and
// limits the pod as a whole (kubepods/...). On cgroup v2 each has one
// folder there, in the unified tree; on v1 one per controller.
func podCgroupsUnderTheParent(t *testing.T, s *podSession) {
	parent := s.d.PodCgroupParent()
	pids := map[string]int{"the sandbox": s.inspect(t, "inspectp", s.pod).Info.Pid}
	for name, id := range map[string]string{"container one": s.one, "container two": s.two} {
		pids[name] = s.inspect(t, "inspect", id).Info.Pid
	}
	for name, pid := range pids {
		dir := cgroupDirOf(t, pid, "memory")
		within := strings.TrimPrefix(dir, "/sys/fs/cgroup")
		if !onCgroupV2() {
			within = strings.TrimPrefix(within, "/memory")
		}
		if !strings.HasPrefix(within, parent+"/") {
			t.Errorf("%s (pid %d) is in cgroup %s, not below the pod's parent %s", name, pid, dir, parent)
		}
	}
}

// podCgroupNamespace: on a cgroup v2 host the CRI plugin gives each
// container a cgroup namespace of its own, so that it sees its own cgroup as
// the root of the tree ("0::/" in /proc/self/cgroup); on v1 it gives none,
// as older workloads expect the host's paths. An exec joins the container's.
func podCgroupNamespace(t *testing.T, s *podSession) {
	pid := s.inspect(t, "inspect", s.one).Info.Pid
	inside, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	r := s.d.Crictl(t, "exec", "--sync", s.one, "cat", "/proc/self/cgroup")
	seen := strings.TrimSpace(string(r.Stdout))
	if r.ExitCode != 0 {
		t.Fatalf("crictl exec cat /proc/self/cgroup: %s", r)
	}
	if onCgroupV2() {
		if inside == host || seen != "0::/" {
			t.Errorf("cgroup namespace %s (the host's: %s); the exec sees %q; want one of its own, and 0::/", inside, host, seen)
		}
		return
	}
	if inside != host || !strings.Contains(seen, s.d.PodCgroupParent()+"/") {
		t.Errorf("cgroup namespace %s (the host's: %s); the exec sees %q; want the host's, and paths below %s", inside, host, seen, s.d.PodCgroupParent())
	}
}

// podExecSync: `crictl exec -s` (ExecSync, what a probe uses) returns the
// command's stdout and stderr (crictl prints both on its stdout, one after
// the other); a failing command's exit code comes back in crictl's error,
// and crictl exits 1.
func podExecSync(t *testing.T, s *podSession) {
	r := s.d.Crictl(t, "exec", "--sync", s.one, "sh", "-c", "echo exec-out; echo exec-err >&2")
	if r.ExitCode != 0 || strings.Join(strings.Fields(string(r.Stdout)), " ") != "exec-out exec-err" {
		t.Errorf("crictl exec -s: %s\nwant exit code 0, and exec-out then exec-err", r)
	}
	r = s.d.Crictl(t, "exec", "--sync", s.two, "sh", "-c", "exit 3")
	if r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "exited with 3") {
		t.Errorf("crictl exec -s of a command exiting 3, in the second container: %s\nwant exit code 1 and \"exited with 3\"", r)
	}
}

// podExecTTY: `crictl exec -it` streams through the CRI's stream server to
// a process with a terminal of its own.
func podExecTTY(t *testing.T, s *podSession) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := harness.RunInTerminal(t, ctx, s.d.CrictlCommand(ctx, "exec", "-it", s.one, "sh", "-c", "tty; exit 4"))
	if !strings.Contains(r.Output, "/dev/pts/") || !strings.Contains(r.Output, "exit code 4") {
		t.Errorf("crictl exec -it: exit code %d, terminal %q; want a /dev/pts/ name and \"exit code 4\"", r.ExitCode, r.Output)
	}
}

// podLogs: `crictl logs` reads the CRI's log file of the container, which
// the CRI plugin fills from the shim's stdio: stdout and stderr apart.
func podLogs(t *testing.T, s *podSession) {
	r := s.d.Crictl(t, "logs", s.one)
	if r.ExitCode != 0 || string(r.Stdout) != "one-out\n" || string(r.Stderr) != "one-err\n" {
		t.Errorf("crictl logs: %s\nwant stdout \"one-out\\n\", stderr \"one-err\\n\"", r)
	}
}

// criStats is the part of `crictl stats -o json` the test reads. The CRI
// encodes 64-bit counters as strings.
type criStats struct {
	Stats []struct {
		CPU struct {
			UsageCoreNanoSeconds struct {
				Value string `json:"value"`
			} `json:"usageCoreNanoSeconds"`
		} `json:"cpu"`
		Memory struct {
			WorkingSetBytes struct {
				Value string `json:"value"`
			} `json:"workingSetBytes"`
		} `json:"memory"`
	} `json:"stats"`
}

// podStats: `crictl stats` reads CPU and memory through the shim's Stats.
func podStats(t *testing.T, s *podSession) {
	out := s.d.MustCrictl(t, "stats", "--output", "json", "--id", s.one)
	var stats criStats
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatalf("crictl stats: %v\n%s", err, out)
	}
	if len(stats.Stats) != 1 {
		t.Fatalf("crictl stats: %d entries, want 1\n%s", len(stats.Stats), out)
	}
	memory, _ := strconv.ParseUint(stats.Stats[0].Memory.WorkingSetBytes.Value, 10, 64)
	cpu, _ := strconv.ParseUint(stats.Stats[0].CPU.UsageCoreNanoSeconds.Value, 10, 64)
	if memory == 0 || cpu == 0 {
		t.Errorf("crictl stats: working set %d bytes, cpu %d ns; want both above 0\n%s", memory, cpu, out)
	}
}

// podStopRemove: stop one container (SIGTERM: it exits 0), remove it, stop
// and remove the pod (which removes the other container), and find nothing
// left: not in the CRI, not in containerd, not on the host.
func podStopRemove(t *testing.T, s *podSession) {
	s.d.MustCrictl(t, "stop", "--timeout", "10", s.one)
	if state := s.inspect(t, "inspect", s.one); state.Status.State != "CONTAINER_EXITED" || state.Status.ExitCode != 0 {
		t.Errorf("after crictl stop: %s exit code %d, want CONTAINER_EXITED 0", state.Status.State, state.Status.ExitCode)
	}
	s.d.MustCrictl(t, "rm", s.one)
	s.d.MustCrictl(t, "stopp", s.pod)
	s.d.MustCrictl(t, "rmp", s.pod)

	ids := []string{s.pod, s.one, s.two}
	harness.Eventually(t, harness.SettleTimeout, "traces of the pod", func() error {
		var traces []error
		if out := s.d.MustCrictl(t, "pods", "--quiet", "--id", s.pod); out != "" {
			traces = append(traces, fmt.Errorf("crictl pods lists %s", out))
		}
		if out := s.d.MustCrictl(t, "ps", "--all", "--quiet", "--pod", s.pod); out != "" {
			traces = append(traces, fmt.Errorf("crictl ps -a lists %s", out))
		}
		mounts, err := harness.MountsUnder(s.d.Dir)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := s.d.Client().LoadContainer(harness.CRIContext(), id); err == nil {
				traces = append(traces, fmt.Errorf("containerd still has container %.12s", id))
			}
			// Bundle, rootfs mount, runc state.
			traces = append(traces, s.d.ContainerTraces(harness.CRINamespace, id))
			if shims, _ := harness.ShimsServing(s.d.Address, id); len(shims) > 0 {
				traces = append(traces, fmt.Errorf("shim still running: %s", harness.DescribeProcess(shims[0])))
			}
			// The sandbox's /dev/shm, under the CRI plugin's state.
			for _, m := range mounts {
				if strings.Contains(m.MountPoint, id) {
					traces = append(traces, fmt.Errorf("still mounted: %s", m.MountPoint))
				}
			}
		}
		for _, cgroup := range s.d.PodCgroups() {
			for _, id := range ids {
				if strings.HasSuffix(cgroup, id) {
					traces = append(traces, fmt.Errorf("cgroup still there: %s", cgroup))
				}
			}
		}
		return errors.Join(traces...)
	})
}

// TestKubernetesRuntimeOptions: a runtime handler may carry an options
// table, here runc's Root:
//
//	[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.teach.options]
//	  Root = "/run/teach-runc"
//
// and the pod's runc state must land there. The CRI plugin sends the
// options of io.containerd.runc.v2 as runc options, and of any other
// runtime type as containerd's generic runtimeoptions.v1.Options, with the
// table as TOML in ConfigBody.
func TestKubernetesRuntimeOptions(t *testing.T) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			roots := t.TempDir()
			harness.ShimBinary(t)
			var handlers []harness.RuntimeHandler
			for _, row := range criRows {
				handlers = append(handlers, harness.RuntimeHandler{
					Name:        row.name + "-options",
					RuntimeType: map[string]string{"teach": harness.TeachRuntime, "runc": harness.RuncRuntime}[row.name],
					Options:     map[string]string{"Root": filepath.Join(roots, row.name)},
				})
			}
			d := harness.StartContainerdWith(t, release.Version, harness.Options{CRI: true, RuntimeHandlers: handlers})
			for _, row := range criRows {
				t.Run(row.name, func(t *testing.T) {
					config := d.NewPodConfig(t, "options-"+row.name)
					pod := d.MustCrictl(t, "runp", "--runtime", row.name+"-options", harness.WriteJSON(t, filepath.Join(t.TempDir(), "pod.json"), config))
					state := filepath.Join(roots, row.name, harness.CRINamespace, pod, "state.json")
					if _, err := os.Stat(state); err != nil {
						t.Errorf("runc state of the pod: %v", err)
					}
					d.MustCrictl(t, "rmp", "--force", pod)
				})
			}
		})
	}
}

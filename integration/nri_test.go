package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// A pod sandbox can fail after its pause container already runs in its
// shim: an NRI plugin (a node agent hooked into containerd) may refuse
// RunPodSandbox. containerd then stops and deletes the sandbox's task and
// shuts its shim down, calling it several times; the shim has to stay until
// containerd is done with it and answer each call as the stock shim does.
// Otherwise containerd logs "failed to stop sandbox", keeps the pod as
// SANDBOX_UNKNOWN, and only a person can remove it.
//
// TestFailedPodSandboxIsCleanedUp/containerd-<version>/<handler>: the
// plugin (integration/cmd/nrifailonce) refuses a pod's first start; nothing
// of the pod may be left, and the retry must give a ready pod.
func TestFailedPodSandboxIsCleanedUp(t *testing.T) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			harness.ShimBinary(t)
			d := harness.StartContainerdWith(t, release.Version, harness.Options{CRI: true, NRI: true, RuntimeHandlers: criHandlers})
			startNRIPlugin(t, d)
			for _, row := range criRows {
				runtime := harness.TeachRuntime
				if row.handler == "runc" {
					runtime = harness.RuncRuntime
				}
				t.Run(row.name, func(t *testing.T) { failedPodIsCleanedUp(t, d, row.handler, row.shim, runtime) })
			}
		})
	}
}

func failedPodIsCleanedUp(t *testing.T, d *harness.Containerd, handler, shim, runtime string) {
	name := "nri-fail-once-" + handler
	config := harness.WriteJSON(t, filepath.Join(t.TempDir(), "pod.json"), d.NewPodConfig(t, name))
	shimsBefore, err := harness.ShimsOf(d.Address)
	if err != nil {
		t.Fatal(err)
	}

	first := d.Crictl(t, "runp", "--runtime", handler, config)
	if first.ExitCode == 0 {
		t.Fatalf("crictl runp %s succeeded; the NRI plugin should have refused it", name)
	}
	if !strings.Contains(string(first.Stderr), "nrifailonce refuses") {
		t.Fatalf("crictl runp %s failed for another reason than the plugin's:\n%s", name, first.Stderr)
	}

	// containerd cleaned up before it answered: no pod listed, no shim left.
	pods := podsNamed(t, d, name)
	if len(pods) != 0 {
		t.Errorf("after the failed start, crictl pods lists %s: %v; want nothing", name, pods)
		for _, pod := range pods {
			t.Logf("containerd's log about %s:\n%s", pod.id, d.LogLinesWith(pod.id, 60))
		}
	}
	harness.Eventually(t, readyTimeout, "the failed pod's shim to exit", func() error {
		shims, err := harness.ShimsOf(d.Address)
		if err != nil {
			return err
		}
		if left := newPIDs(shims, shimsBefore); len(left) != 0 {
			return fmt.Errorf("shims still running: %v", describeAll(left))
		}
		return nil
	})
	// containerd's cleanup got every answer it waited for. (Its exit
	// monitor may still lose a call to a shim the cleanup has just shut
	// down, "failed to handle sandbox exit event ... ttrpc: closed", with
	// either shim: two paths of containerd's own race there, and the pod
	// is cleaned up all the same.)
	for _, id := range sandboxIDs(d, name) {
		for _, line := range strings.Split(d.LogLinesWith(id, 200), "\n") {
			if strings.Contains(line, "SANDBOX_UNKNOWN") || strings.Contains(line, "error cleaning up failed sandbox") {
				harness.ShimFellShort(t, runtime, "containerd lost the shim while it cleaned up sandbox %s:\n%s", id, line)
			}
		}
	}

	pod := d.MustCrictl(t, "runp", "--runtime", handler, config)
	state := (&podSession{d: d}).inspect(t, "inspectp", pod)
	if state.Status.State != "SANDBOX_READY" {
		t.Errorf("retried pod is %s, want SANDBOX_READY", state.Status.State)
	}
	assertShimBinary(t, state.Info.Pid, shim)
	d.MustCrictl(t, "stopp", pod)
	d.MustCrictl(t, "rmp", pod)
}

// sandboxIDs finds in containerd's log the ids it gave the sandboxes of
// pods named name.
func sandboxIDs(d *harness.Containerd, name string) []string {
	var ids []string
	for _, line := range strings.Split(d.LogLinesWith(`generated id for sandbox name \"`+name+"_", 20), "\n") {
		if _, id, ok := strings.Cut(line, "podsandboxid="); ok {
			ids = append(ids, strings.Fields(id)[0])
		}
	}
	return ids
}

// listedPod is a pod as `crictl pods` lists it.
type listedPod struct{ id, state string }

// podsNamed lists the pods `crictl pods` shows with that name, in any state.
func podsNamed(t *testing.T, d *harness.Containerd, name string) []listedPod {
	t.Helper()
	var listed struct {
		Items []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	out := d.MustCrictl(t, "pods", "--output", "json")
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("crictl pods: %v\n%s", err, out)
	}
	var pods []listedPod
	for _, pod := range listed.Items {
		if pod.Metadata.Name == name {
			pods = append(pods, listedPod{id: pod.ID, state: pod.State})
		}
	}
	return pods
}

// newPIDs lists the pids of now that were not in before.
func newPIDs(now, before []int) []int {
	var added []int
	for _, pid := range now {
		if !slices.Contains(before, pid) {
			added = append(added, pid)
		}
	}
	return added
}

func describeAll(pids []int) []string {
	described := make([]string, len(pids))
	for i, pid := range pids {
		described[i] = harness.DescribeProcess(pid)
	}
	return described
}

// startNRIPlugin runs integration/cmd/nrifailonce against d's NRI socket
// until the test ends, and waits until containerd has registered it.
func startNRIPlugin(t *testing.T, d *harness.Containerd) {
	t.Helper()
	plugin := exec.Command(harness.TestProgram(t, "nrifailonce"), d.NRISocket())
	stdout, err := plugin.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	plugin.Stderr = &stderr
	if err := plugin.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		plugin.Process.Signal(syscall.SIGTERM)
		plugin.Wait()
	})
	registered := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		registered <- line
	}()
	if line := <-registered; !strings.HasPrefix(line, "registered") {
		t.Fatalf("the NRI plugin did not register: %q; its stderr:\n%s", line, stderr.String())
	}
}

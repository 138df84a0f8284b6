package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// containerd 2.0 to 2.2, shipped by many distributions, start a shim the way
// 1.7 does: flags and environment in, and the shim's answer read from its
// stdout, either as JSON bootstrap parameters ({"version":3,...}) or as a
// plain address, which means task API v2. Our shim answers them with the
// plain address (shim/bootstrap.go says why). The whole suite runs on 2.4
// and 1.7; this smoke set shows the releases between work as well, for both
// shims: TestIntermediateReleases/containerd-<version>/<runtime>/<step>.

func TestIntermediateReleases(t *testing.T) {
	for _, release := range harness.IntermediateReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			harness.ShimBinary(t)
			daemon := harness.StartContainerdWith(t, release.Version, harness.Options{CRI: true, RuntimeHandlers: criHandlers})
			assertDaemonVersion(t, daemon, release.Version)
			for _, row := range runtimeRows {
				t.Run(row.name, func(t *testing.T) {
					s := newSession(t, daemon, row)
					t.Run("lifecycle", func(t *testing.T) { smokeLifecycle(t, s) })
					t.Run("stdio", func(t *testing.T) { smokeStdio(t, s) })
					t.Run("exec", func(t *testing.T) { smokeExec(t, s) })
					t.Run("restart", func(t *testing.T) { smokeRestart(t, s) })
				})
			}
			t.Run("pod", func(t *testing.T) { podLife(t, daemon) })
		})
	}
}

// assertDaemonVersion checks the daemon the harness started is the release
// asked for, as containerd itself reports it.
func assertDaemonVersion(t *testing.T, daemon *harness.Containerd, want string) {
	t.Helper()
	got, err := daemon.Client().Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A build without the release's ldflags says "2.2.10+unknown".
	number := strings.TrimPrefix(want, "v")
	if got.Version != number && !strings.HasPrefix(got.Version, number+"+") {
		t.Fatalf("containerd reports version %s, want %s", got.Version, want)
	}
}

// smokeLifecycle: a container runs, exits with its own code, and leaves
// nothing behind; containerd recorded which task API it speaks to the shim.
func smokeLifecycle(t *testing.T, s *session) {
	container := s.newContainer(t, "smoke-exit", []string{"sh", "-c", "exit 3"})
	task, exitCh := s.startTask(t, container, &stdio{})
	version := bootstrapVersion(t, s, "smoke-exit")
	if code := exitCodeOf(t, exitCh); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	deleteTask(t, s.ctx, task, 3)
	if err := removeContainer(s.ctx, container); err != nil {
		t.Fatal(err)
	}
	s.daemon.AssertNoContainerTraces(t, s.ns, "smoke-exit")
	// Ours says task API v2, the stock shims of these releases v3: both
	// are what containerd then speaks, and both carry the same messages.
	want := 3
	if s.runtime == harness.TeachRuntime {
		want = 2
	}
	if version != want {
		t.Errorf("containerd speaks task API v%d to the shim, want v%d", version, want)
	}
}

// bootstrapVersion reads the task API version containerd 2.x wrote down
// for a running task's shim, in bootstrap.json in its bundle, which it
// reads again to reconnect after a restart.
func bootstrapVersion(t *testing.T, s *session, id string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.daemon.BundleDir(s.ns, id), "bootstrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	var params struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(data, &params); err != nil {
		t.Fatalf("bootstrap.json: %v\n%s", err, data)
	}
	if params.Protocol != "ttrpc" || !strings.HasPrefix(params.Address, "unix://") {
		t.Errorf("bootstrap.json: %s; want a ttrpc unix:// address", data)
	}
	return params.Version
}

// smokeStdio: stdin reaches the container, stdout and stderr come back
// apart, byte for byte.
func smokeStdio(t *testing.T, s *session) {
	typed := "line one\nline two\n"
	result := s.runToExit(t, "smoke-stdio", strings.NewReader(typed), "sh", "-c", "cat; echo to-stderr >&2")
	if result.exitCode != 0 {
		t.Errorf("exit code %d, want 0", result.exitCode)
	}
	if result.stdout != typed || result.stderr != "to-stderr\n" {
		s.shimFellShort(t, "stdout %q, stderr %q; want %q and %q", result.stdout, result.stderr, typed, "to-stderr\n")
	}
}

// smokeExec: an exec prints and exits with its own code while the
// container goes on.
func smokeExec(t *testing.T, s *session) {
	container, task, _ := s.runningTask(t, "smoke-exec")
	result, err := runExec(s, task, "e1", execSpec(t, s, container, "sh", "-c", "echo exec-out; exit 5"), "")
	if err != nil {
		t.Fatal(err)
	}
	if result.code != 5 {
		t.Errorf("exec exit code %d, want 5", result.code)
	}
	if result.stdout != "exec-out\n" {
		s.shimFellShort(t, "exec stdout %q, want %q", result.stdout, "exec-out\n")
	}
}

// smokeRestart: containerd is killed and started again; it finds the
// running container through what it wrote down at start, and the shim
// still answers: ctr lists it RUNNING, an exec runs, and a kill's exit
// status comes back.
func smokeRestart(t *testing.T, s *session) {
	container := s.newContainer(t, "smoke-restart", []string{"sleep", "1000"})
	task, _ := s.startTask(t, container, &stdio{})
	shim, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	s.daemon.Kill(t)
	if !harness.IsAlive(shim) || !harness.IsAlive(int(task.Pid())) {
		t.Fatalf("the shim (pid %d) or its container (pid %d) died with containerd", shim, task.Pid())
	}
	s.daemon.Start(t)

	if status := ctrTaskStatuses(t, s)["smoke-restart"]; status != "RUNNING" {
		t.Fatalf("ctr task ls after the restart: smoke-restart is %q, want RUNNING", status)
	}
	task = reloadTask(t, s, "smoke-restart")
	result, err := runExec(s, task, "after-restart", execSpec(t, s, container, "sh", "-c", "echo back; exit 4"), "")
	if err != nil || result.code != 4 {
		t.Fatalf("exec after the restart: %+v, %v; want exit 4", result, err)
	}
	exitCh, err := task.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeOf(t, exitCh); code != 137 {
		t.Errorf("exit status after SIGKILL %d, want 137", code)
	}
	deleteTask(t, s.ctx, task, 137)
}

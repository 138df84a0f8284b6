package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Docker users meet the shim through daemon.json (docs/examples/daemon.json,
// the file these tests give dockerd):
//
//	{"runtimes": {"teach": {"runtimeType": "io.containerd.teach.v2"}}, "live-restore": true}
//
// and `docker run --runtime teach`. Each test here is a docker command a
// user types, run against a private dockerd on a harness containerd, once
// with --runtime teach and once with --runtime runc, Docker's own default
// (the stock io.containerd.runc.v2 shim), as the reference.
//
// Networking stays off: this machine has loopback only and no iptables, so
// dockerd runs with --bridge=none and the containers with --network none.

// dockerSession is one row: a dockerd, and the --runtime the row passes.
type dockerSession struct {
	dd      *harness.Dockerd
	runtime string // what --runtime says
	shim    string // the shim binary containerd runs for it
	// optionsRoot is the runc Root that daemon.json's <runtime>-options
	// entry sets for the same shim.
	optionsRoot string
}

var dockerRows = []struct{ name, runtime, shim string }{
	{name: "teach", runtime: "teach", shim: harness.TeachShimBinaryName},
	{name: "runc", runtime: "runc", shim: harness.RuncShimBinaryName},
}

// dockerCases run in this order on one dockerd, each with both runtimes.
var dockerCases = []struct {
	name string
	run  func(t *testing.T, s *dockerSession)
}{
	{"run", dockerRun},
	{"logs-follow", dockerLogsFollow},
	{"exec", dockerExec},
	{"exec-tty", dockerExecTTY},
	{"stop", dockerStop},
	{"kill-signal", dockerKillSignal},
	{"pause", dockerPause},
	{"stats", dockerStats},
	{"update-memory", dockerUpdateMemory},
	{"rm-leaves-nothing", dockerRunRmLeavesNothing},
	{"create-error", dockerCreateError},
	{"live-restore", dockerLiveRestore},
	{"runtime-options", dockerRuntimeOptions},
}

// TestDocker runs every Docker case against each pinned containerd, as
// TestDocker/containerd-<version>/<runtime>/<case>.
func TestDocker(t *testing.T) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			roots := t.TempDir() // removed after dockerd is gone
			harness.ShimBinary(t)
			d := harness.StartContainerd(t, release.Version)
			daemonJSON := harness.TeachDaemonJSON(t)
			runtimes := daemonJSON["runtimes"].(map[string]any)
			// dockerd decodes "options" into the stock runc shim's
			// options type, but for any other runtime type into
			// runtimeoptions.v1.Options, keeping only its own keys: our
			// runtime's options are a TOML file named by ConfigPath (see
			// docs/docker.md).
			runtimes["runc-options"] = map[string]any{
				"runtimeType": harness.RuncRuntime,
				"options":     map[string]any{"Root": filepath.Join(roots, "runc")},
			}
			teachOptions := filepath.Join(roots, "teach-options.toml")
			if err := os.WriteFile(teachOptions, []byte(fmt.Sprintf("Root = %q\n", filepath.Join(roots, "teach"))), 0o644); err != nil {
				t.Fatal(err)
			}
			runtimes["teach-options"] = map[string]any{
				"runtimeType": harness.TeachRuntime,
				"options":     map[string]any{"ConfigPath": teachOptions},
			}
			dd := harness.StartDockerd(t, d, daemonJSON)
			dd.LoadBusybox(t)
			for _, row := range dockerRows {
				t.Run(row.name, func(t *testing.T) {
					s := &dockerSession{dd: dd, runtime: row.runtime, shim: row.shim, optionsRoot: filepath.Join(roots, row.name)}
					for _, tc := range dockerCases {
						t.Run(tc.name, func(t *testing.T) { tc.run(t, s) })
					}
				})
			}
		})
	}
}

// runArgs are the arguments of `docker run` for this row.
func (s *dockerSession) runArgs(args ...string) []string {
	return append([]string{"run", "--runtime", s.runtime, "--network", "none"}, args...)
}

// startDetached is `docker run -d`; the container is removed when the test
// ends.
func (s *dockerSession) startDetached(t *testing.T, command ...string) string {
	t.Helper()
	return s.startDetachedWith(t, s.runtime, command...)
}

func (s *dockerSession) startDetachedWith(t *testing.T, runtime string, command ...string) string {
	t.Helper()
	args := append([]string{"run", "--runtime", runtime, "--network", "none", "-d", harness.DockerBusybox}, command...)
	id := s.dd.MustDocker(t, args...)
	t.Cleanup(func() { s.dd.Docker(t, "rm", "--force", id) })
	return id
}

// inspect is `docker inspect -f <format>`.
func (s *dockerSession) inspect(t *testing.T, id, format string) string {
	t.Helper()
	return s.dd.MustDocker(t, "inspect", "--format", format, id)
}

func (s *dockerSession) cgroupPath(id string) string {
	return filepath.Join(s.dd.CgroupParent, id)
}

// trapTERM is a PID 1 that exits 7 on SIGTERM and says so on SIGUSR1. A
// shell runs traps between commands, hence the short sleeps.
const trapTERM = `trap 'echo got-term; exit 7' TERM; trap 'echo got-usr1' USR1; while :; do sleep 0.1; done`

// dockerRun: the container's stdout and stderr reach the CLI's, apart, and
// its exit code becomes the CLI's. The teach row also asks for the runtime
// by its containerd name, which dockerd passes through without a
// daemon.json entry.
func dockerRun(t *testing.T, s *dockerSession) {
	runtimes := []string{s.runtime}
	if s.runtime == "teach" {
		runtimes = append(runtimes, harness.TeachRuntime)
	}
	for _, runtime := range runtimes {
		r := s.dd.Docker(t, "run", "--rm", "--runtime", runtime, "--network", "none", harness.DockerBusybox,
			"sh", "-c", "echo out; echo err >&2; exit 3")
		if r.ExitCode != 3 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
			t.Errorf("docker run --runtime %s: %s\nwant exit code 3, stdout \"out\\n\", stderr \"err\\n\"", runtime, r)
		}
	}
}

// dockerLogsFollow: `docker logs -f` prints what a detached container wrote,
// stdout and stderr apart, and returns when the container exits.
func dockerLogsFollow(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.2; done; exit 6")
	r := s.dd.Docker(t, "logs", "--follow", id)
	if r.ExitCode != 0 || string(r.Stdout) != "out1\nout2\nout3\n" || string(r.Stderr) != "err1\nerr2\nerr3\n" {
		t.Errorf("docker logs -f: %s\nwant out1..3 on stdout, err1..3 on stderr", r)
	}
	if code := s.dd.MustDocker(t, "wait", id); code != "6" {
		t.Errorf("docker wait: %s, want 6", code)
	}
}

// dockerExec: an exec's stdout, stderr and exit code, while the container
// runs on.
func dockerExec(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sleep", "1000")
	r := s.dd.Docker(t, "exec", id, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 4")
	if r.ExitCode != 4 || string(r.Stdout) != "exec-out\n" || string(r.Stderr) != "exec-err\n" {
		t.Errorf("docker exec: %s\nwant exit code 4, stdout \"exec-out\\n\", stderr \"exec-err\\n\"", r)
	}
	if state := s.inspect(t, id, "{{.State.Status}}"); state != "running" {
		t.Errorf("container after the exec: %s, want running", state)
	}
}

// dockerExecTTY: `docker exec -it` gives the process a terminal of its own
// (tty names it) and still returns its exit code.
func dockerExecTTY(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sleep", "1000")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := harness.RunInTerminal(t, ctx, s.dd.DockerCommand(ctx, "exec", "-it", id, "sh", "-c", "tty; exit 8"))
	if r.ExitCode != 8 || !strings.Contains(r.Output, "/dev/pts/") {
		t.Errorf("docker exec -it: exit code %d, terminal %q; want 8 and a /dev/pts/ name", r.ExitCode, r.Output)
	}
}

// dockerStop: `docker stop` sends SIGTERM, and SIGKILL once the grace period
// is over. A container that handles SIGTERM exits with its own code at once;
// one that ignores it (sleep as PID 1 has no handler, and the kernel
// drops unhandled signals to a namespace's init) dies of SIGKILL: 137.
func dockerStop(t *testing.T, s *dockerSession) {
	graceful := s.startDetached(t, "sh", "-c", trapTERM)
	waitForLog(t, s, graceful, "") // the shell is up and its traps are set
	start := time.Now()
	s.dd.MustDocker(t, "stop", "--time", "10", graceful)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("docker stop of a container that exits on SIGTERM took %v", took)
	}
	if code := s.inspect(t, graceful, "{{.State.ExitCode}}"); code != "7" {
		t.Errorf("exit code after SIGTERM: %s, want 7 (the trap's)", code)
	}

	stubborn := s.startDetached(t, "sleep", "1000")
	start = time.Now()
	s.dd.MustDocker(t, "stop", "--time", "1", stubborn)
	if took := time.Since(start); took < time.Second {
		t.Errorf("docker stop --time 1 of a container that ignores SIGTERM took %v, less than the grace period", took)
	}
	if code := s.inspect(t, stubborn, "{{.State.ExitCode}}"); code != "137" {
		t.Errorf("exit code after the grace period: %s, want 137 (SIGKILL)", code)
	}
}

// dockerKillSignal: `docker kill -s` delivers the signal named; the
// container handles SIGUSR1 and runs on, then dies of SIGKILL.
func dockerKillSignal(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sh", "-c", trapTERM)
	waitForLog(t, s, id, "")
	s.dd.MustDocker(t, "kill", "--signal", "USR1", id)
	waitForLog(t, s, id, "got-usr1\n")
	if state := s.inspect(t, id, "{{.State.Status}}"); state != "running" {
		t.Errorf("after SIGUSR1: %s, want running", state)
	}
	s.dd.MustDocker(t, "kill", "--signal", "KILL", id)
	if code := s.dd.MustDocker(t, "wait", id); code != "137" {
		t.Errorf("exit code after docker kill -s KILL: %s, want 137", code)
	}
}

// waitForLog waits until the container's stdout so far is want. An empty
// want waits for the shell to have started: `docker top` lists its sleep.
func waitForLog(t *testing.T, s *dockerSession, id, want string) {
	t.Helper()
	harness.Eventually(t, harness.SettleTimeout, "container output", func() error {
		if want == "" {
			r := s.dd.Docker(t, "top", id)
			if !strings.Contains(string(r.Stdout), "sleep") {
				return fmt.Errorf("docker top: %s", r)
			}
			return nil
		}
		r := s.dd.Docker(t, "logs", id)
		if string(r.Stdout) != want {
			return fmt.Errorf("stdout %q, want %q", r.Stdout, want)
		}
		return nil
	})
}

// dockerPause: a paused container's cgroup is frozen and dockerd refuses
// to exec in it; unpaused, it runs and answers again.
func dockerPause(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sleep", "1000")
	s.dd.MustDocker(t, "pause", id)
	if state := s.inspect(t, id, "{{.State.Status}}"); state != "paused" {
		t.Errorf("after docker pause: %s, want paused", state)
	}
	if freezer, err := harness.CgroupFile("freezer", s.cgroupPath(id), "freezer.state"); err == nil && freezer != "FROZEN" {
		t.Errorf("freezer.state of the paused container: %s, want FROZEN", freezer)
	}
	if r := s.dd.Docker(t, "exec", id, "true"); r.ExitCode == 0 {
		t.Errorf("docker exec in a paused container succeeded")
	}
	s.dd.MustDocker(t, "unpause", id)
	if state := s.inspect(t, id, "{{.State.Status}}"); state != "running" {
		t.Errorf("after docker unpause: %s, want running", state)
	}
	if r := s.dd.Docker(t, "exec", id, "echo", "awake"); r.ExitCode != 0 || string(r.Stdout) != "awake\n" {
		t.Errorf("docker exec after unpause: %s", r)
	}
}

// dockerStats: `docker stats --no-stream` reads the container's memory
// and CPU through the shim's Stats; a running shell uses some memory.
func dockerStats(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sleep", "1000")
	usage := s.dd.MustDocker(t, "stats", "--no-stream", "--format", "{{.MemUsage}}", id)
	if usage == "" || strings.HasPrefix(usage, "0B") || strings.HasPrefix(usage, "--") {
		t.Errorf("docker stats --no-stream: memory %q, want a usage above 0B", usage)
	}
}

// dockerUpdateMemory: `docker update --memory` changes the running
// container's memory limit in its cgroup.
func dockerUpdateMemory(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sleep", "1000")
	s.dd.MustDocker(t, "update", "--memory", "64m", "--memory-swap", "64m", id)
	if limit := s.inspect(t, id, "{{.HostConfig.Memory}}"); limit != "67108864" {
		t.Errorf("docker inspect after update: memory %s, want 67108864", limit)
	}
	limit, err := harness.CgroupFile("memory", s.cgroupPath(id), "memory.limit_in_bytes")
	if errors.Is(err, os.ErrNotExist) {
		limit, err = harness.CgroupFile("memory", s.cgroupPath(id), "memory.max")
	}
	if err != nil || limit != "67108864" {
		t.Errorf("cgroup memory limit after docker update: %q (%v), want 67108864", limit, err)
	}
}

// dockerRunRmLeavesNothing: after `docker run --rm` returns, neither Docker
// nor containerd knows the container, and nothing of it is left on the
// host: bundle, rootfs mount, runc state, shim process, cgroup.
func dockerRunRmLeavesNothing(t *testing.T, s *dockerSession) {
	cidFile := filepath.Join(t.TempDir(), "cid")
	r := s.dd.Docker(t, s.runArgs("--rm", "--cidfile", cidFile, harness.DockerBusybox, "true")...)
	if r.ExitCode != 0 {
		t.Fatalf("docker run --rm: %s", r)
	}
	data, err := os.ReadFile(cidFile)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(data))
	d := s.dd.Containerd
	ctx := namespaces.WithNamespace(t.Context(), s.dd.Namespace)
	harness.Eventually(t, harness.SettleTimeout, "traces of "+id, func() error {
		var traces []error
		if out := s.dd.MustDocker(t, "ps", "--all", "--quiet", "--no-trunc", "--filter", "id="+id); out != "" {
			traces = append(traces, fmt.Errorf("docker ps -a lists %s", out))
		}
		if _, err := d.Client().LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
			traces = append(traces, fmt.Errorf("containerd still has the container (%v)", err))
		}
		traces = append(traces, d.ContainerTraces(s.dd.Namespace, id))
		dockerRuncState := filepath.Join(s.dd.ExecRoot, "runtime-runc", s.dd.Namespace, id)
		if _, err := os.Stat(dockerRuncState); err == nil {
			traces = append(traces, fmt.Errorf("still there: %s", dockerRuncState))
		}
		if shims, _ := harness.ShimsServing(d.Address, id); len(shims) > 0 {
			traces = append(traces, fmt.Errorf("shim still running: %s", harness.DescribeProcess(shims[0])))
		}
		if harness.CgroupExists(s.cgroupPath(id)) {
			traces = append(traces, fmt.Errorf("cgroup %s still there", s.cgroupPath(id)))
		}
		return errors.Join(traces...)
	})
}

// dockerCreateError: when runc cannot start the container, the user reads
// runc's own reason, once, and Docker's exit code for "command not found".
// Docker picks 127 by finding runc's words in the error, so they must reach
// dockerd intact.
func dockerCreateError(t *testing.T, s *dockerSession) {
	r := s.dd.Docker(t, s.runArgs("--rm", harness.DockerBusybox, "no-such-command")...)
	const reason = `exec: "no-such-command": executable file not found in $PATH`
	if r.ExitCode != 127 {
		t.Errorf("docker run of a missing command: %s\nwant exit code 127", r)
	}
	output := string(r.Stdout) + string(r.Stderr)
	if n := strings.Count(output, reason); n != 1 {
		t.Errorf("docker run of a missing command: runc's reason %q appears %d times, want once:\nstdout: %s\nstderr: %s",
			reason, n, r.Stdout, r.Stderr)
	}
}

// dockerLiveRestore: with "live-restore": true, a container keeps running
// while dockerd restarts, and the restarted dockerd finds it: exec and stop
// work on it.
func dockerLiveRestore(t *testing.T, s *dockerSession) {
	id := s.startDetached(t, "sh", "-c", trapTERM)
	pid := s.inspect(t, id, "{{.State.Pid}}")
	s.dd.Restart(t)
	if state, after := s.inspect(t, id, "{{.State.Status}}"), s.inspect(t, id, "{{.State.Pid}}"); state != "running" || after != pid {
		t.Fatalf("after a dockerd restart: %s pid %s, want running pid %s", state, after, pid)
	}
	if r := s.dd.Docker(t, "exec", id, "echo", "still-here"); r.ExitCode != 0 || string(r.Stdout) != "still-here\n" {
		t.Errorf("docker exec after the restart: %s", r)
	}
	s.dd.MustDocker(t, "stop", id)
	if code := s.inspect(t, id, "{{.State.ExitCode}}"); code != "7" {
		t.Errorf("exit code of docker stop after the restart: %s, want 7", code)
	}
}

// dockerRuntimeOptions: a daemon.json runtime may carry "options", here the
// runc Root, and the container's runc state must land there. Docker sends
// the options of io.containerd.runc.v2 as runc options, and of any other
// runtime type as containerd's generic runtimeoptions.v1.Options (the
// options, as TOML, in ConfigBody), the way containerd's CRI plugin does.
func dockerRuntimeOptions(t *testing.T, s *dockerSession) {
	id := s.startDetachedWith(t, s.runtime+"-options", "sleep", "1000")
	state := filepath.Join(s.optionsRoot, s.dd.Namespace, id, "state.json")
	if _, err := os.Stat(state); err != nil {
		t.Errorf("runc state of a container of runtime %s-options: %v", s.runtime, err)
	}
}

// This file is a private Docker daemon on top of a harness containerd, the
// way a user adds the shim to Docker: a daemon.json that names the runtime.
//
//	d := harness.StartContainerd(t, "v2.4.2")
//	dd := harness.StartDockerd(t, d, harness.TeachDaemonJSON(t))
//	dd.LoadBusybox(t)
//	dd.Docker(t, "run", "--rm", "--runtime", "teach", harness.DockerBusybox, "echo", "hi")

package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// DockerBusybox is how Docker names the busybox image once loaded.
	DockerBusybox = "busybox:teach"

	// dockerTimeout bounds one docker command.
	dockerTimeout = 90 * time.Second
	// dockerdStartTimeout is longer than containerd's: dockerd loads its
	// image store and network controller before it answers.
	dockerdStartTimeout = 60 * time.Second
)

// DaemonJSONExample is the daemon.json of the Docker recipe
// (docs/docker.md): the tests run dockerd with this very file.
const DaemonJSONExample = "docs/examples/daemon.json"

// TeachDaemonJSON reads DaemonJSONExample, the daemon.json a user writes to
// run containers with `docker run --runtime teach`: the runtime's name for
// Docker, the containerd runtime behind it, and live-restore, with which
// containers keep running while dockerd restarts (the shim, not dockerd,
// is their parent).
func TeachDaemonJSON(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(RepoRoot(t), DaemonJSONExample))
	if err != nil {
		t.Fatal(err)
	}
	var config map[string]any
	if err := json.Unmarshal(data, &config); err != nil {
		t.Fatalf("%s: %v", DaemonJSONExample, err)
	}
	return config
}

// Dockerd is one private dockerd: its own data-root, exec-root, socket,
// pidfile and log in one folder, its own containerd namespaces, and its own
// cgroup parent, so it shares nothing with a system Docker or another test.
type Dockerd struct {
	Containerd *Containerd

	Dir        string
	Host       string // DOCKER_HOST, unix://<Dir>/docker.sock
	ConfigFile string // daemon.json
	DataRoot   string
	ExecRoot   string
	LogPath    string
	// Namespace is the containerd namespace dockerd keeps its containers
	// and images in; containerd's cleanup empties it.
	Namespace string
	// CgroupParent holds every container's cgroup.
	CgroupParent string

	binary    string
	cliConfig string   // DOCKER_CONFIG: the CLI's own folder, not ~/.docker
	runcRoots []string // where runc keeps the state of this daemon's containers

	mu      sync.Mutex // guards process, exited
	process *exec.Cmd
	exited  <-chan struct{}
}

// StartDockerd starts the pinned dockerd against d, configured with
// daemonJSON, and stops it, with its containers, when the test ends.
//
// Networking stays off: this machine has loopback only and no iptables, so
// the default bridge network cannot be set up (--bridge=none, no iptables
// rules). Containers run with --network none or --network host.
func StartDockerd(t testing.TB, d *Containerd, daemonJSON map[string]any) *Dockerd {
	t.Helper()
	binary := ToolBinary(t, "dockerd", "dockerd")
	_, ns := d.Namespace(t, "moby")
	dir := shortTempDir(t)
	dd := &Dockerd{
		Containerd:   d,
		Dir:          dir,
		Host:         "unix://" + filepath.Join(dir, "docker.sock"),
		ConfigFile:   filepath.Join(dir, "daemon.json"),
		DataRoot:     filepath.Join(dir, "data"),
		ExecRoot:     filepath.Join(dir, "exec"),
		LogPath:      filepath.Join(dir, "dockerd.log"),
		Namespace:    ns,
		CgroupParent: "/" + ns,
		binary:       binary,
		cliConfig:    filepath.Join(dir, "cli"),
	}
	// Docker's own runc runtime keeps its state under the exec-root; a
	// runtime whose options name a Root, there.
	dd.runcRoots = []string{filepath.Join(dd.ExecRoot, "runtime-runc", ns)}
	for _, root := range optionRoots(daemonJSON) {
		dd.runcRoots = append(dd.runcRoots, filepath.Join(root, ns))
	}
	t.Cleanup(func() { dd.cleanup(t) })

	data, err := json.MarshalIndent(daemonJSON, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dd.ConfigFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dd.cliConfig, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := dd.start(); err != nil {
		t.Fatalf("start dockerd: %v\n%s", err, dd.LogTail(40))
	}
	return dd
}

// optionRoots lists the Root options of daemon.json's runtimes.
func optionRoots(daemonJSON map[string]any) []string {
	var roots []string
	runtimes, _ := daemonJSON["runtimes"].(map[string]any)
	for _, runtime := range runtimes {
		spec, _ := runtime.(map[string]any)
		options, _ := spec["options"].(map[string]any)
		if root, ok := options["Root"].(string); ok && root != "" {
			roots = append(roots, root)
		}
	}
	return roots
}

func (dd *Dockerd) args() []string {
	return []string{
		"--config-file", dd.ConfigFile,
		"--data-root", dd.DataRoot,
		"--exec-root", dd.ExecRoot,
		"--pidfile", filepath.Join(dd.Dir, "docker.pid"),
		"--host", dd.Host,
		"--containerd", dd.Containerd.Address,
		"--containerd-namespace", dd.Namespace,
		"--containerd-plugins-namespace", dd.Namespace + "-plugins",
		"--cgroup-parent", dd.CgroupParent,
		"--bridge", "none",
		"--iptables=false",
		"--ip6tables=false",
		// docker-proxy forwards published ports; nothing is published here.
		"--userland-proxy=false",
		"--log-level", "debug",
	}
}

func (dd *Dockerd) start() error {
	logFile, err := os.OpenFile(dd.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(dd.binary, dd.args()...)
	// dockerd asks `runc features` what the default runtime can do; the
	// containerd's PATH finds the pinned runc.
	cmd.Env = dd.Containerd.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	exited, err := startTiedToTest(cmd)
	if err != nil {
		return err
	}
	dd.mu.Lock()
	dd.process, dd.exited = cmd, exited
	dd.mu.Unlock()
	deadline := time.Now().Add(dockerdStartTimeout)
	for {
		err := dd.answers()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("dockerd exited during start")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", dockerdStartTimeout, err)
		}
	}
}

// answers asks the daemon for its version, as `docker version` does.
func (dd *Dockerd) answers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := dd.DockerCommand(ctx, "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker version: %v: %s", err, out)
	}
	return nil
}

// DockerCommand is the docker CLI pointed at this daemon.
func (dd *Dockerd) DockerCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(withoutEnv(os.Environ(), "DOCKER_HOST", "DOCKER_CONFIG"),
		"DOCKER_HOST="+dd.Host, "DOCKER_CONFIG="+dd.cliConfig, "DOCKER_CLI_HINTS=false")
	return cmd
}

// Docker runs the docker CLI with args and returns what it printed and its
// exit code; only a failure to run it at all fails the test.
func (dd *Dockerd) Docker(t testing.TB, args ...string) CommandResult {
	t.Helper()
	return dd.DockerWithStdin(t, nil, args...)
}

// DockerWithStdin is Docker with stdin fed to the CLI.
func (dd *Dockerd) DockerWithStdin(t testing.TB, stdin io.Reader, args ...string) CommandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	return RunCommand(t, ctx, dd.DockerCommand(ctx, args...), stdin)
}

// MustDocker is Docker for a command that has to succeed; it returns its
// stdout without surrounding space.
func (dd *Dockerd) MustDocker(t testing.TB, args ...string) string {
	t.Helper()
	result := dd.Docker(t, args...)
	if result.ExitCode != 0 {
		t.Fatalf("docker %s: %s", strings.Join(args, " "), result)
	}
	return strings.TrimSpace(string(result.Stdout))
}

// LoadBusybox loads the test image with `docker load`, from the same OCI
// archive ImportBusybox gives containerd.
func (dd *Dockerd) LoadBusybox(t testing.TB) {
	t.Helper()
	result := dd.DockerWithStdin(t, bytes.NewReader(BusyboxArchive(t)), "load")
	if result.ExitCode != 0 {
		t.Fatalf("docker load: %s", result)
	}
	dd.MustDocker(t, "image", "inspect", DockerBusybox)
}

// Running reports whether the dockerd process is alive.
func (dd *Dockerd) Running() bool {
	dd.mu.Lock()
	exited := dd.exited
	dd.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for dockerd to exit. With live-restore, its
// containers keep running.
func (dd *Dockerd) Stop(t testing.TB) {
	t.Helper()
	if err := dd.signalAndWait(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Logf("dockerd did not stop on SIGTERM (%v); killing it", err)
		dd.signalAndWait(syscall.SIGKILL, stopTimeout)
	}
}

// Restart stops dockerd and starts it again on the same folders.
func (dd *Dockerd) Restart(t testing.TB) {
	t.Helper()
	dd.Stop(t)
	if err := dd.start(); err != nil {
		t.Fatalf("restart dockerd: %v\n%s", err, dd.LogTail(40))
	}
}

func (dd *Dockerd) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	dd.mu.Lock()
	cmd, exited := dd.process, dd.exited
	dd.mu.Unlock()
	return signalAndWait("dockerd", cmd, exited, sig, timeout)
}

// LogTail returns the last lines of dockerd's log.
func (dd *Dockerd) LogTail(lines int) string { return logTail(dd.LogPath, lines) }

// cleanup removes every container through dockerd while it runs (with
// live-restore they would outlive it), stops it, and removes its folder.
// What dockerd left in containerd goes with containerd's cleanup, which runs
// after this one: the namespace is one containerd handed out, and the cgroup
// parent is named after it.
func (dd *Dockerd) cleanup(t testing.TB) {
	if t.Failed() {
		t.Logf("dockerd log, last lines (%s):\n%s", dd.LogPath, dd.LogTail(60))
	}
	if dd.Running() {
		if ids := dd.Docker(t, "ps", "--all", "--quiet", "--no-trunc"); ids.ExitCode == 0 {
			if list := strings.Fields(string(ids.Stdout)); len(list) > 0 {
				if r := dd.Docker(t, append([]string{"rm", "--force"}, list...)...); r.ExitCode != 0 {
					t.Logf("cleanup: docker rm --force: %s", r)
				}
			}
		}
	}
	dd.Stop(t)
	// containerd's cleanup looks for leftover runc containers under
	// /run/containerd/runc only.
	for _, root := range dd.runcRoots {
		removeRuncContainers(t, dd.Containerd.runcPath, root)
	}
	if err := UnmountAllUnder(dd.Dir); err != nil {
		t.Logf("cleanup: %v", err)
	}
	if err := os.RemoveAll(dd.Dir); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

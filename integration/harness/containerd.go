package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

const (
	// startTimeout bounds how long a daemon may take to answer its socket.
	startTimeout = 30 * time.Second
	// stopTimeout is how long SIGTERM gets before SIGKILL follows.
	stopTimeout = 10 * time.Second

	// unixPathMax is the size of sun_path (108 on Linux) minus some room:
	// a longer socket path cannot be bound, so the daemon folder is kept short.
	unixPathMax = 100
)

// Containerd is one private containerd daemon: its own root, state, sockets
// and log, all in one folder that the cleanup removes. Several run side by
// side sharing only the kernel and /run/containerd, where runc keeps its
// state (per namespace) and shims their sockets (named by a hash of the
// daemon's address).
type Containerd struct {
	Release ContainerdRelease

	Dir          string // the private folder everything below lives in
	RootDir      string // content, snapshots, metadata (root = in config.toml)
	StateDir     string // sockets, bundles (state = in config.toml)
	Address      string // gRPC socket, what clients and ctr dial
	TTRPCAddress string // the socket shims publish their events to
	LogPath      string // the daemon's stdout and stderr, debug level
	FIFODir      string // where the tests' clients make their stdio FIFOs
	TempDir      string // $TMPDIR of the daemon, its shims and ctr

	options   Options
	cri       criState
	crictlDir string   // the pinned crictl's folder
	binDir    string   // the release's containerd, ctr and runc shim
	runcPath  string   // the pinned runc, for the last-resort cleanup
	env       []string // PATH puts our shim, then the pinned runc, first

	mu      sync.Mutex // guards process, exited, client, namespaces
	process *exec.Cmd
	exited  <-chan struct{} // closed once process has been waited for
	client  *client.Client
	// namespaces are the ones handed out by Namespace, the ones Cleanup empties.
	namespaces []string
}

// StartContainerd starts the pinned containerd of the given version ("v2.4.2"
// or "v1.7.35") and stops it, with everything it left, when the test ends.
func StartContainerd(t testing.TB, version string) *Containerd {
	t.Helper()
	return StartContainerdWith(t, version, Options{})
}

// StartContainerdWith is StartContainerd with the Kubernetes API, another
// log level or another shim folder (see Options).
func StartContainerdWith(t testing.TB, version string, opts Options) *Containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerd and runc need root")
	}
	// Registered first, so it runs last: once the daemon and its folder
	// are gone, nothing of it may be left in the machine's temp folders.
	checkpointsBefore := checkpointFolders()
	t.Cleanup(func() { assertNoCheckpointFoldersLeft(t, checkpointsBefore) })
	d := newContainerd(t, FindContainerdRelease(t, version), opts)
	if opts.CRI {
		// Registered before the daemon's own cleanup, so it runs after it:
		// the pods' runc state and cgroups go once the daemon has stopped.
		t.Cleanup(func() { d.removePodLeftovers(t) })
	}
	t.Cleanup(func() { d.cleanup(t) })
	if opts.CRI {
		// Runs first: pods are removed through the CRI while the daemon runs.
		t.Cleanup(func() { d.removePods(t) })
		if err := d.prepareCRI(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.writeConfig(); err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatalf("start containerd %s: %v\n%s", version, err, d.LogTail(40))
	}
	c, err := client.New(d.Address, client.WithTimeout(startTimeout))
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.client = c
	d.mu.Unlock()
	if opts.CRI {
		d.ImportCRIImages(t)
	}
	return d
}

func newContainerd(t testing.TB, release ContainerdRelease, opts Options) *Containerd {
	t.Helper()
	binaries := ToolDir(t, release.Tool)
	for _, name := range []string{"containerd", "ctr", RuncShimBinaryName} {
		ToolBinary(t, release.Tool, name)
	}
	runc := ToolBinary(t, "runc", "runc")
	shims := opts.ShimDir
	if shims == "" {
		var err error
		if shims, err = shimDir(); err != nil {
			t.Fatal(err)
		}
	}

	dir := shortTempDir(t)
	d := &Containerd{
		Release:      release,
		Dir:          dir,
		RootDir:      filepath.Join(dir, "root"),
		StateDir:     filepath.Join(dir, "state"),
		Address:      filepath.Join(dir, "containerd.sock"),
		TTRPCAddress: filepath.Join(dir, "containerd.sock.ttrpc"),
		LogPath:      filepath.Join(dir, "containerd.log"),
		FIFODir:      filepath.Join(dir, "fifo"),
		TempDir:      filepath.Join(dir, "tmp"),
		options:      opts,
		binDir:       binaries,
		runcPath:     runc,
	}
	// containerd finds a shim binary, and the runc shim finds runc, through
	// PATH: putting ours first is what makes the pinned versions win over
	// anything installed on the machine.
	if opts.CRI {
		d.crictlDir = filepath.Dir(ToolBinary(t, "crictl", "crictl"))
	}
	dirs := append(append([]string(nil), opts.ShimDirs...), shims, filepath.Dir(runc), binaries, os.Getenv("PATH"))
	path := strings.Join(dirs, string(os.PathListSeparator))
	// containerd unpacks the checkpoint a task is restored from into a
	// folder it makes in $XDG_RUNTIME_DIR, or in $TMPDIR when that is
	// unset, and never removes it. A temp folder inside the daemon's own
	// goes with it. XDG_RUNTIME_DIR is dropped: it would win over TMPDIR,
	// and containerd 2.x would move the shims' sockets there too.
	if err := os.Mkdir(d.TempDir, 0o700); err != nil {
		t.Fatal(err)
	}
	d.env = append(withoutEnv(os.Environ(), "PATH", "TMPDIR", "XDG_RUNTIME_DIR"), "PATH="+path, "TMPDIR="+d.TempDir)
	return d
}

// shortTempDir makes the daemon folder. t.TempDir would embed the test's name,
// and a long name pushes the socket paths past what bind(2) accepts.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctd-")
	if err == nil && len(dir)+len("/containerd.sock.ttrpc") >= unixPathMax {
		os.Remove(dir)
		dir, err = os.MkdirTemp("/tmp", "ctd-")
	}
	if err != nil {
		t.Fatal(err)
	}
	// Searchable by everyone, as /run/containerd and /var/lib/containerd
	// are: the root of a container in a user namespace of its own is an
	// unprivileged host user, and runc, running as it, must reach the
	// rootfs in the bundle below this folder.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (d *Containerd) path(name string) string { return filepath.Join(d.Dir, name) }
func (d *Containerd) configPath() string      { return d.path("config.toml") }

// start launches the daemon and waits until it answers on its socket.
func (d *Containerd) start() error {
	logFile, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy of the descriptor

	cmd := exec.Command(filepath.Join(d.binDir, "containerd"), "--config", d.configPath())
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	exited, err := startTiedToTest(cmd)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.process, d.exited = cmd, exited
	d.mu.Unlock()
	return d.waitReady(exited)
}

// startTiedToTest starts cmd so that it dies with the test binary (a panic,
// a -timeout) instead of running on with nobody to stop it, and reaps it
// when it exits: the returned channel is closed then.
func startTiedToTest(cmd *exec.Cmd) (<-chan struct{}, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// The kernel sends Pdeathsig when the *thread* that forked the
		// child exits, not the process. Holding this goroutine on its
		// thread, in Wait, for the child's whole life keeps that thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// waitReady asks for the daemon's version until it answers, with a fresh
// connection per try so a refused dial does not stick.
func (d *Containerd) waitReady(exited <-chan struct{}) error {
	return WaitFor(startTimeout, func() error {
		select {
		case <-exited:
			return errors.New("containerd exited during start")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := client.New(d.Address, client.WithTimeout(time.Second))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Version(ctx)
		return err
	})
}

// PID is the daemon's process id, 0 while it is stopped.
func (d *Containerd) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.process == nil || d.process.Process == nil {
		return 0
	}
	return d.process.Process.Pid
}

// Running reports whether the daemon process is alive.
func (d *Containerd) Running() bool {
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
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

// Client is a Go client connected to the daemon, shared by the test. It
// reconnects by itself after Restart.
func (d *Containerd) Client() *client.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client
}

// Namespace makes a namespace name unique to this daemon (label-<random>)
// and returns it with a context that carries it. Unique names matter beyond
// containerd: runc's state root (/run/containerd/runc/<ns>) and the cgroup
// paths (/<ns>/<id>) are shared by every daemon on the machine.
func (d *Containerd) Namespace(t testing.TB, label string) (context.Context, string) {
	t.Helper()
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	ns := label + "-" + hex.EncodeToString(suffix)
	d.mu.Lock()
	d.namespaces = append(d.namespaces, ns)
	d.mu.Unlock()
	return namespaces.WithNamespace(context.Background(), ns), ns
}

func (d *Containerd) handedOutNamespaces() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.namespaces...)
}

// Stop sends SIGTERM and waits for the daemon to exit (SIGKILL after
// stopTimeout). Shims keep running: they do not depend on the daemon.
func (d *Containerd) Stop(t testing.TB) {
	t.Helper()
	if err := d.signalAndWait(syscall.SIGTERM, stopTimeout); err != nil {
		t.Logf("containerd did not stop on SIGTERM (%v); killing it", err)
		d.Kill(t)
	}
}

// Kill sends SIGKILL, the daemon crash a shim must survive.
func (d *Containerd) Kill(t testing.TB) {
	t.Helper()
	if err := d.signalAndWait(syscall.SIGKILL, stopTimeout); err != nil {
		t.Fatalf("kill containerd: %v", err)
	}
}

// Restart stops the daemon and starts it again on the same folder, so it
// finds its containers and reconnects to their running shims.
func (d *Containerd) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.Start(t)
}

// Start starts a daemon that Stop or Kill ended, on the same folder. A test
// that wants to act while containerd is away (kill a container, let output
// pile up) calls Stop or Kill, does so, then Start.
func (d *Containerd) Start(t testing.TB) {
	t.Helper()
	if d.Running() {
		t.Fatalf("containerd pid %d is still running", d.PID())
	}
	if err := d.start(); err != nil {
		t.Fatalf("restart containerd: %v\n%s", err, d.LogTail(40))
	}
}

func (d *Containerd) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	d.mu.Lock()
	cmd, exited := d.process, d.exited
	d.mu.Unlock()
	return signalAndWait("containerd", cmd, exited, sig, timeout)
}

// signalAndWait sends sig to a daemon the harness started and waits for it
// to be gone. It signals by the pid it started, never by name: other
// daemons run here.
func signalAndWait(name string, cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal, timeout time.Duration) error {
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s pid %d still running %v after %v", name, cmd.Process.Pid, timeout, sig)
	}
}

// LogTail returns the last lines of the daemon's log.
func (d *Containerd) LogTail(lines int) string { return logTail(d.LogPath, lines) }

// logTail is the last lines of a daemon's log file.
func logTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// withoutEnv is env without the variables named keys.
func withoutEnv(env []string, keys ...string) []string {
	var kept []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(keys, name) {
			kept = append(kept, kv)
		}
	}
	return kept
}

// LogLinesWith returns the lines of the daemon's log that mention substr, at
// most max of the last ones: what containerd and the shims (whose logs it
// copies into its own) said about one container.
func (d *Containerd) LogLinesWith(substr string, max int) string {
	data, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, substr) {
			lines = append(lines, line)
		}
	}
	if len(lines) > max {
		lines = lines[len(lines)-max:]
	}
	return strings.Join(lines, "\n")
}

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
	"github.com/teach/containerd-shim-teach-v2/journal"
)

// These tests talk to the shim the way containerd does, but without
// containerd: containerd refuses bad ids and bundles before a shim ever sees
// them, and a shim must still refuse them itself. The shim is started with
// `start` (the containerd 1.7 protocol: flags, plain address on stdout), and
// called over ttrpc.

// directShim is one shim server started by hand.
type directShim struct {
	namespace string // unique per test, so runs never share runc state
	task      taskAPI.TTRPCTaskService
	conn      *ttrpc.Client
	address   string // the shim's socket
	ctx       context.Context
	pid       int
	runc      *anypb.Any // runtime options naming the pinned runc
	bundleDir string
}

func startShimDirectly(t *testing.T) *directShim {
	t.Helper()
	return startShimDirectlyIn(t, nil)
}

// startShimDirectlyIn is startShimDirectly with a chance to put files into
// the folder `start` runs in (containerd runs it in the bundle) first.
func startShimDirectlyIn(t *testing.T, prepare func(shimWorkDir string)) *directShim {
	t.Helper()
	work := t.TempDir()
	shimWorkDir := filepath.Join(work, "shim")
	if err := os.Mkdir(shimWorkDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(shimWorkDir)
	}
	shimLog := captureShimLog(t, shimWorkDir)
	// The shim keeps its journals under /run, named after the containerd
	// state folder its bundles imply; with no containerd here, nobody else
	// removes them.
	journals := journal.StateDir(journal.DefaultRoot, journal.StateOfBundle(filepath.Join(work, "bundles", "any")))
	t.Cleanup(func() { os.RemoveAll(journals) })
	// A containerd address that nothing serves: the shim derives its socket
	// name from it, and its events go nowhere (they are queued and retried).
	fakeContainerd := filepath.Join(work, "containerd.sock")
	namespace := fmt.Sprintf("teach-direct-%d", time.Now().UnixNano())
	// The shim's id ("direct") is not its working folder's name, so it is
	// a grouped shim, with a shim-wide journal named after the state folder
	// its working folder implies; that folder is shared with other tests,
	// the namespace is this test's.
	shimJournals := filepath.Join(journal.StateDir(journal.DefaultRoot, journal.StateOfBundle(shimWorkDir)), namespace)
	t.Cleanup(func() { os.RemoveAll(shimJournals) })
	cmd := exec.Command(harness.ShimBinary(t), "-namespace", namespace, "-id", "direct", "-address", fakeContainerd, "start")
	cmd.Dir = shimWorkDir
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+fakeContainerd+".ttrpc")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("shim start: %v: %s", err, stderr.String())
	}
	address := strings.TrimPrefix(strings.TrimSpace(string(out)), "unix://")
	conn, err := net.Dial("unix", address)
	if err != nil {
		t.Fatalf("dial shim at %s: %v", address, err)
	}
	client := ttrpc.NewClient(conn)
	s := &directShim{
		namespace: namespace,
		task:      taskAPI.NewTTRPCTaskClient(client),
		conn:      client,
		address:   address,
		ctx:       namespaces.WithNamespace(context.Background(), namespace),
		bundleDir: filepath.Join(work, "bundles"),
	}
	connected, err := s.task.Connect(s.ctx, &taskAPI.ConnectRequest{})
	if err != nil {
		t.Fatalf("connect: %v\nshim log:\n%s", err, shimLog())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shim log:\n%s", shimLog())
		}
	})
	s.pid = int(connected.ShimPid)
	s.runc, err = typeurl.MarshalAnyToProto(&options.Options{BinaryName: filepath.Join(harness.ToolDir(t, "runc"), "runc")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

// captureShimLog does what containerd does for a shim's log: the server writes
// it to a FIFO named "log" in its working folder, which containerd creates and
// reads (and the server refuses to run without).
func captureShimLog(t *testing.T, dir string) func() string {
	t.Helper()
	path := filepath.Join(dir, "log")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	reader, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		log bytes.Buffer
	)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := reader.Read(buf)
			mu.Lock()
			log.Write(buf[:n])
			mu.Unlock()
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
			if n == 0 {
				time.Sleep(50 * time.Millisecond) // no writer yet, or between writers
			}
		}
	}()
	t.Cleanup(func() { reader.Close() })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}
}

// shimExitWait bounds how long shutdown waits for the shim to exit. Before it
// exits, the shim spends up to its own 10 s event flush limit trying to hand
// its queued events to containerd, which a direct test does not run; the wait
// must outlast that on a busy machine, or the test races the shim's timer.
const shimExitWait = 2 * time.Minute

// shutdown asks the shim to exit, as containerd does after the last Delete,
// and checks it did and removed its socket.
func (s *directShim) shutdown(t *testing.T) {
	_, _ = s.task.Shutdown(s.ctx, &taskAPI.ShutdownRequest{})
	s.conn.Close()
	if err := harness.WaitFor(shimExitWait, func() error {
		if harness.IsAlive(s.pid) {
			return errdefs.ErrFailedPrecondition
		}
		return nil
	}); err != nil {
		unix.Kill(s.pid, unix.SIGKILL)
		t.Errorf("shim %d still running after Shutdown with no containers", s.pid)
	} else if err := harness.PathGone(s.address); err != nil {
		t.Errorf("the shim exited and left its socket: %v", err)
	}
	// A failed test may leave containers behind: remove them from runc.
	runcBinary := filepath.Join(harness.ToolDir(t, "runc"), "runc")
	root := filepath.Dir(harness.RuncStateDir(s.namespace, "x"))
	if ids, err := exec.Command(runcBinary, "--root", root, "list", "-q").Output(); err == nil {
		for _, id := range strings.Fields(string(ids)) {
			t.Errorf("container %s left in runc", id)
			exec.Command(runcBinary, "--root", root, "delete", "--force", id).Run()
		}
	}
	os.Remove(root)
}

// bundle writes a runnable bundle: busybox as the rootfs, args as the
// process, no terminal.
func (s *directShim) bundle(t *testing.T, id string, args ...string) string {
	t.Helper()
	bundle := filepath.Join(s.bundleDir, id)
	rootfsBin := filepath.Join(bundle, "rootfs", "bin")
	if err := os.MkdirAll(rootfsBin, 0o755); err != nil {
		t.Fatal(err)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfsBin, "busybox"), busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "cat", "echo"} {
		os.Symlink("busybox", filepath.Join(rootfsBin, applet))
	}
	runcSpec := exec.Command(filepath.Join(harness.ToolDir(t, "runc"), "runc"), "spec")
	runcSpec.Dir = bundle
	if out, err := runcSpec.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	var spec specs.Spec
	data, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = args
	data, _ = json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func (s *directShim) create(id, bundle string, opts *anypb.Any) error {
	_, err := s.task.Create(s.ctx, &taskAPI.CreateTaskRequest{ID: id, Bundle: bundle, Options: opts})
	return errgrpc.ToNative(err)
}

func TestShimRefusesBadInputAndStaysUp(t *testing.T) {
	s := startShimDirectly(t)
	good := s.bundle(t, "good", "sh", "-c", "exit 3")

	noConfig := filepath.Join(s.bundleDir, "noconfig")
	os.MkdirAll(noConfig, 0o755)
	badConfig := filepath.Join(s.bundleDir, "badconfig")
	os.MkdirAll(badConfig, 0o755)
	os.WriteFile(filepath.Join(badConfig, "config.json"), []byte("{this is not json"), 0o644)
	missingRunc, _ := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "/nonexistent/runc"})

	for _, tc := range []struct {
		name, id, bundle string
		opts             *anypb.Any
		kind             func(error) bool
		says             string
	}{
		{"missing bundle", "c1", filepath.Join(s.bundleDir, "missing"), s.runc, errdefs.IsNotFound, "does not exist"},
		{"no config.json", "c1", noConfig, s.runc, errdefs.IsNotFound, "no config.json"},
		{"invalid config.json", "c1", badConfig, s.runc, errdefs.IsInvalidArgument, "not a valid OCI runtime spec"},
		{"id with a slash", "a/b", good, s.runc, errdefs.IsInvalidArgument, `"a/b"`},
		{"id with ..", "..", good, s.runc, errdefs.IsInvalidArgument, `".."`},
		{"id too long", strings.Repeat("x", 100), good, s.runc, errdefs.IsInvalidArgument, "x"},
		{"runc that does not exist", "c1", good, missingRunc, errdefs.IsNotFound, "/nonexistent/runc"},
		{"options of another type", "c1", good, &anypb.Any{TypeUrl: "example.com/Other", Value: []byte{1}}, errdefs.IsInvalidArgument, "example.com/Other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.create(tc.id, tc.bundle, tc.opts)
			if !tc.kind(err) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v; want the right errdefs kind and a message naming %q", err, tc.says)
			}
		})
	}
	if mounts, _ := harness.MountsUnder(s.bundleDir); len(mounts) != 0 {
		t.Fatalf("bad input left mounts: %v", mounts)
	}

	for _, tc := range []struct {
		name string
		call func() error
		kind func(error) bool
	}{
		{"state of an unknown container", func() error {
			_, err := s.task.State(s.ctx, &taskAPI.StateRequest{ID: "nosuch"})
			return err
		}, errdefs.IsNotFound},
		{"kill of an unknown container", func() error {
			_, err := s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: "nosuch", Signal: 9})
			return err
		}, errdefs.IsNotFound},
		{"delete of an unknown container", func() error {
			_, err := s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "nosuch"})
			return err
		}, errdefs.IsNotFound},
	} {
		if err := errgrpc.ToNative(tc.call()); !tc.kind(err) {
			t.Errorf("%s: got %v", tc.name, err)
		}
	}

	// After all that, the shim still runs a container end to end.
	if err := s.create("good", good, s.runc); err != nil {
		t.Fatalf("create after bad input: %v", err)
	}
	if _, err := s.task.State(s.ctx, &taskAPI.StateRequest{ID: "good", ExecID: "nosuch"}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("state of an unknown exec id: got %v, want NotFound", err)
	}
	if _, err := s.task.Start(s.ctx, &taskAPI.StartRequest{ID: "good"}); err != nil {
		t.Fatalf("start: %v", err)
	}
	waited, err := s.task.Wait(s.ctx, &taskAPI.WaitRequest{ID: "good"})
	if err != nil || waited.ExitStatus != 3 {
		t.Fatalf("wait: %v, %v; want exit status 3", waited, err)
	}
	_, err = s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: "good", Signal: uint32(unix.SIGTERM)})
	if !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("kill of a stopped process: got %v, want NotFound", err)
	}
	deleted, err := s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "good"})
	if err != nil || deleted.ExitStatus != 3 {
		t.Fatalf("delete: %v, %v", deleted, err)
	}
	if _, err := os.Stat(harness.RuncStateDir(s.namespace, "good")); !os.IsNotExist(err) {
		t.Errorf("runc state left after delete: %v", err)
	}
}

func TestShimRefusesToDeleteARunningContainer(t *testing.T) {
	s := startShimDirectly(t)
	bundle := s.bundle(t, "sleeper", "sleep", "1000")
	if err := s.create("sleeper", bundle, s.runc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.task.Start(s.ctx, &taskAPI.StartRequest{ID: "sleeper"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "sleeper"})
	if err = errgrpc.ToNative(err); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "running") {
		t.Fatalf("delete of a running container: got %v, want FailedPrecondition", err)
	}
	if _, err := s.task.Start(s.ctx, &taskAPI.StartRequest{ID: "sleeper"}); !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Fatalf("second start: got %v, want FailedPrecondition", err)
	}
	if _, err := s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: "sleeper", Signal: uint32(unix.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	waited, err := s.task.Wait(s.ctx, &taskAPI.WaitRequest{ID: "sleeper"})
	if err != nil || waited.ExitStatus != 128+9 {
		t.Fatalf("wait after SIGKILL: %v, %v", waited, err)
	}
	if _, err := s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "sleeper"}); err != nil {
		t.Fatal(err)
	}
}

// containerd may delete one task twice at once (the CRI does, when a pod
// sandbox fails to start). One Delete deletes the container and answers
// with its exit status; the other waits for it and answers NotFound, as a
// Delete after it would (which answer reaches the client first is up to
// how the two goroutines are scheduled; the CRI case where containerd lost
// an answer is TestFailedPodSandboxIsCleanedUp). After that, every call
// about the container is NotFound, as with the stock shim, and Shutdown
// ends the shim.
func TestShimAnswersTwoDeletesAtOnce(t *testing.T) {
	s := startShimDirectly(t)
	bundle := s.bundle(t, "twice", "sh", "-c", "exit 3")
	if err := s.create("twice", bundle, s.runc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.task.Start(s.ctx, &taskAPI.StartRequest{ID: "twice"}); err != nil {
		t.Fatal(err)
	}
	if waited, err := s.task.Wait(s.ctx, &taskAPI.WaitRequest{ID: "twice"}); err != nil || waited.ExitStatus != 3 {
		t.Fatalf("wait: %v, %v; want exit status 3", waited, err)
	}

	type answer struct {
		resp *taskAPI.DeleteResponse
		err  error
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, err := s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "twice"})
			answers <- answer{resp, errgrpc.ToNative(err)}
		}()
	}
	deleted, notFound := <-answers, <-answers
	if deleted.err != nil {
		deleted, notFound = notFound, deleted
	}
	if deleted.err != nil || deleted.resp.ExitStatus != 3 {
		t.Errorf("no Delete answered with the exit status 3: %v, %v", deleted.resp, deleted.err)
	}
	if !errdefs.IsNotFound(notFound.err) {
		t.Errorf("the other Delete: %v, %v; want NotFound", notFound.resp, notFound.err)
	}

	for what, call := range map[string]func() error{
		"delete": func() error { _, err := s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "twice"}); return err },
		"kill":   func() error { _, err := s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: "twice", Signal: 9}); return err },
		"state":  func() error { _, err := s.task.State(s.ctx, &taskAPI.StateRequest{ID: "twice"}); return err },
	} {
		if err := errgrpc.ToNative(call()); !errdefs.IsNotFound(err) {
			t.Errorf("%s after the delete: %v; want NotFound", what, err)
		}
	}
	if _, err := s.task.Shutdown(s.ctx, &taskAPI.ShutdownRequest{ID: "twice"}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		t.Fatalf("shutdown: %v", err)
	}
	harness.AssertProcessGone(t, s.pid, "the shim after Shutdown")
}

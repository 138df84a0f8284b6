package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	task "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// TestLibrariesOnlyServesTheTaskAPI checks that the floor program does what
// the benchmark says it does before it idles: it serves the task API on its
// socket, holds a connection to containerd's socket, and ends on SIGTERM.
func TestLibrariesOnlyServesTheTaskAPI(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "librariesonly")
	build := exec.Command("go", "build", "-o", binary, "./librariesonly")
	build.Env = harness.ShimBuildEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	// A socket where containerd's would be: the program only connects.
	containerd, err := net.Listen("unix", filepath.Join(dir, "containerd.sock.ttrpc"))
	if err != nil {
		t.Fatal(err)
	}
	defer containerd.Close()
	connected := make(chan struct{})
	go func() {
		if conn, err := containerd.Accept(); err == nil {
			close(connected)
			defer conn.Close()
			conn.Read(make([]byte, 1)) // held until the program ends
		}
	}()

	socket := filepath.Join(dir, "task.sock")
	cmd := exec.Command(binary, socket, containerd.Addr().String(), filepath.Join(dir, "stdout"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	// No deadline: go test's own timeout ends a program that hangs.
	select {
	case <-connected:
	case err := <-exited:
		t.Fatalf("the program ended before it connected to containerd's socket: %v", err)
	}
	conn := dialWhenListening(t, socket, exited)
	client := task.NewTTRPCTaskClient(ttrpc.NewClient(conn))
	_, err = client.State(context.Background(), &task.StateRequest{ID: "c"})
	if !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Errorf("State: %v, want FailedPrecondition (no container)", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
}

// dialWhenListening connects to socket once the program has made it (it
// listens before it connects to containerd, so this is at once).
func dialWhenListening(t *testing.T, socket string, exited <-chan error) net.Conn {
	t.Helper()
	for {
		conn, err := net.Dial("unix", socket)
		if err == nil {
			return conn
		}
		select {
		case err := <-exited:
			t.Fatalf("the program ended before it listened on %s: %v", socket, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

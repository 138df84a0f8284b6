package harness

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ctrTimeout bounds one ctr command, so a hung shim fails the test instead
// of hanging the whole run until go test's -timeout.
const ctrTimeout = 60 * time.Second

// CtrResult is what a ctr command printed and how it exited. ctr run
// forwards the container's stdout and stderr to its own, and exits with the
// container's exit code.
type CtrResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// CtrCommand is this daemon's ctr, pointed at its socket and a namespace.
// The caller may set Stdin before running it.
func (d *Containerd) CtrCommand(ctx context.Context, namespace string, args ...string) *exec.Cmd {
	global := []string{"--address", d.Address, "--namespace", namespace}
	cmd := exec.CommandContext(ctx, filepath.Join(d.binDir, "ctr"), append(global, args...)...)
	// ctr 2.x prints containerd's deprecation warnings (cgroup v1 here) on
	// stderr, where they would mix with the container's own stderr.
	cmd.Env = append(d.env, "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	return cmd
}

// Ctr runs ctr with args and returns its output and exit code. Only a
// failure to run ctr at all fails the test; a non-zero exit is a result.
func (d *Containerd) Ctr(t testing.TB, namespace string, args ...string) CtrResult {
	t.Helper()
	return d.CtrWithStdin(t, namespace, nil, args...)
}

// CtrWithStdin is Ctr with stdin fed to ctr (nil: /dev/null).
func (d *Containerd) CtrWithStdin(t testing.TB, namespace string, stdin io.Reader, args ...string) CtrResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctrTimeout)
	defer cancel()
	cmd := d.CtrCommand(ctx, namespace, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	result := CtrResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		result.ExitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("ctr %q: %v\nstdout: %s\nstderr: %s", args, err, result.Stdout, result.Stderr)
	}
	return result
}

// CtrRun is `ctr run --rm --runtime <runtime> <busybox> <id> <command...>`:
// create, start, wait and delete in one command, as a user would type it.
// ctr copies its own stdin to the container's, -i or not (nil: /dev/null,
// so the container reads EOF at once). The FIFOs go to the daemon's folder
// instead of the shared /run/containerd/fifo.
func (d *Containerd) CtrRun(t testing.TB, namespace, runtime, id string, stdin io.Reader, command ...string) CtrResult {
	t.Helper()
	return d.CtrWithStdin(t, namespace, stdin, d.CtrRunArgs(runtime, id, command...)...)
}

// CtrRunArgs are CtrRun's arguments, for a test that runs ctr itself.
func (d *Containerd) CtrRunArgs(runtime, id string, command ...string) []string {
	args := []string{"run", "--rm", "--runtime", runtime, "--fifo-dir", d.FIFODir, BusyboxImage, id}
	return append(args, command...)
}

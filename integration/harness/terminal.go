package harness

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
)

// TerminalResult is what a command run at a terminal showed and how it
// exited. A terminal has one stream: stdout and stderr arrive mixed, with
// "\r\n" line ends.
type TerminalResult struct {
	Output   string
	ExitCode int
}

// RunInTerminal runs cmd with a new pseudo-terminal as its stdin, stdout,
// stderr and controlling terminal, the way `docker exec -it` or
// `crictl exec -it` is typed at a shell: the clients refuse -t, or behave
// differently, when their stdin is not a terminal.
func RunInTerminal(t testing.TB, ctx context.Context, cmd *exec.Cmd) TerminalResult {
	t.Helper()
	master, replicaPath, err := console.NewPty()
	if err != nil {
		t.Fatalf("new pty: %v", err)
	}
	defer master.Close()
	replica, err := os.OpenFile(replicaPath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", replicaPath, err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = replica, replica, replica
	// A session of its own, with the terminal (its fd 0) as controlling
	// terminal, as a login shell's child has.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		replica.Close()
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	// Only the child holds the replica now: when it exits, reading the
	// master ends (EIO).
	replica.Close()

	var output bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&output, master)
		close(copied)
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		// A process the command left behind still holds the terminal.
		t.Logf("terminal output still open 5s after %s exited", cmd.Args[0])
		master.Close()
		<-copied
	}

	result := TerminalResult{Output: output.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		result.ExitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v (%v)\nterminal: %q", strings.Join(cmd.Args, " "), err, ctx.Err(), result.Output)
	}
	return result
}

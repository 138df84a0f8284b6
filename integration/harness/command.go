package harness

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// CommandResult is what a command-line client (docker, crictl) printed and
// how it exited.
type CommandResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

func (r CommandResult) String() string {
	return "exit code " + strconv.Itoa(r.ExitCode) + "\nstdout: " + string(r.Stdout) + "\nstderr: " + string(r.Stderr)
}

// RunCommand runs cmd with stdin (nil: /dev/null) and returns its output and
// exit code. Only a failure to run it at all, or ctx's deadline, fails the
// test; a non-zero exit is a result.
func RunCommand(t testing.TB, ctx context.Context, cmd *exec.Cmd, stdin io.Reader) CommandResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	result := CommandResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		result.ExitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v (%v)\nstdout: %s\nstderr: %s", strings.Join(cmd.Args, " "), err, ctx.Err(), result.Stdout, result.Stderr)
	}
	return result
}

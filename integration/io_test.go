package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The shim relays a container's stdio between the FIFOs containerd's client
// made and the pipes runc hands the process. These tests check the bytes
// arrive exactly, on the right stream, and that stdin's end reaches the
// process.

func TestStdoutAndStderrStaySeparate(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		result := s.runToExit(t, "streams", nil, "sh", "-c", "echo out; echo err >&2")
		if result.stdout != "out\n" {
			s.shimFellShort(t, "stdout = %q, want %q", result.stdout, "out\n")
		}
		if result.stderr != "err\n" {
			s.shimFellShort(t, "stderr = %q, want %q", result.stderr, "err\n")
		}
		if result.exitCode != 0 {
			t.Errorf("exit code = %d, want 0", result.exitCode)
		}
	})
}

func TestStdinReachesCat(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		input := "line one\nline two, no newline at the end"
		result := s.runToExit(t, "cat", strings.NewReader(input), "cat")
		if result.stdout != input {
			s.shimFellShort(t, "cat echoed %q, want %q", result.stdout, input)
		}
		if result.stderr != "" || result.exitCode != 0 {
			t.Errorf("cat: exit code %d, stderr %q; want 0 and nothing", result.exitCode, result.stderr)
		}
	})
}

// allByteValues is 1 MiB holding every byte value, NUL and invalid UTF-8
// included: more than a pipe buffer (64 KiB), so the relay must keep
// copying while the container reads, and nothing may be treated as text.
func allByteValues() []byte {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*7 + i/256)
	}
	return data
}

func TestLargeBinaryStdinRoundTrip(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		input := allByteValues()
		result := s.runToExit(t, "cat-binary", bytes.NewReader(input), "cat")
		if got := []byte(result.stdout); !bytes.Equal(got, input) {
			s.shimFellShort(t, "cat returned %d bytes, want the %d sent, identical (first difference at %d)",
				len(got), len(input), firstDifference(got, input))
		}
	})
}

func firstDifference(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestOutputThroughCtr(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		result := s.daemon.CtrRun(t, s.ns, s.runtime, "ctr-streams", nil, "sh", "-c", "echo out; echo err >&2")
		if string(result.Stdout) != "out\n" {
			s.shimFellShort(t, "ctr stdout = %q, want %q", result.Stdout, "out\n")
		}
		if string(result.Stderr) != "err\n" {
			s.shimFellShort(t, "ctr stderr = %q, want %q", result.Stderr, "err\n")
		}
		if result.ExitCode != 0 {
			t.Errorf("ctr exit code = %d, want 0", result.ExitCode)
		}
	})
}

// ctr copies its stdin to the container and, at its end, sends CloseIO, but
// only once NewTask has returned: input that is used up before that (a short
// string on a pipe is) never gets its CloseIO, and with a shim that holds the
// stdin FIFO open, as the stock one does, `cat` then waits forever. A person
// typing is always later than that; the test is too, writing only once the
// task runs.
func TestStdinThroughCtr(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		const id, input = "ctr-cat", "typed into ctr\n"
		ctx, cancel := context.WithTimeout(s.ctx, exitTimeout)
		defer cancel()
		ctr := s.daemon.CtrCommand(ctx, s.ns, s.daemon.CtrRunArgs(s.runtime, id, "cat")...)
		var stdout, stderr bytes.Buffer
		ctr.Stdout, ctr.Stderr = &stdout, &stderr
		stdin, err := ctr.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := ctr.Start(); err != nil {
			t.Fatal(err)
		}
		waitForTaskStatus(t, s, id, client.Running)
		io.WriteString(stdin, input)
		stdin.Close()

		if err := ctr.Wait(); err != nil {
			t.Fatalf("ctr run cat: %v\nstderr: %s", err, stderr.Bytes())
		}
		if stdout.String() != input {
			s.shimFellShort(t, "ctr run cat: stdout %q, want %q", stdout.Bytes(), input)
		}
	})
}

// waitForTaskStatus polls until container id's task has the given status.
func waitForTaskStatus(t *testing.T, s *session, id string, want client.ProcessStatus) {
	t.Helper()
	harness.Eventually(t, readyTimeout, "task "+id+" "+string(want), func() error {
		container, err := s.client.LoadContainer(s.ctx, id)
		if err != nil {
			return err
		}
		task, err := container.Task(s.ctx, nil)
		if err != nil {
			return err
		}
		status, err := task.Status(s.ctx)
		if err != nil {
			return err
		}
		if status.Status != want {
			return fmt.Errorf("status %s", status.Status)
		}
		return nil
	})
}

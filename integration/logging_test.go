package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Output can go to a logging program or a file instead of FIFOs:
// `ctr run --log-uri binary:///path?args` or `--log-uri file:///path`.

// testLogger is integration/cmd/testlogger, built once per test binary.
func testLogger(t *testing.T) string { return harness.TestProgram(t, "testlogger") }

func TestOutputToALoggingProgram(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		logFile := filepath.Join(t.TempDir(), "container.log")
		uri := "binary://" + testLogger(t) + "?file=" + logFile
		result := s.daemon.Ctr(t, s.ns, "run", "--rm", "--runtime", s.runtime, "--log-uri", uri,
			harness.BusyboxImage, "logged", "sh", "-c", "echo to-out; echo to-err >&2; exit 6")
		if result.ExitCode != 6 {
			t.Fatalf("ctr run: exit %d, stderr %s", result.ExitCode, result.Stderr)
		}
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(data); !strings.Contains(got, "stdout: to-out\n") || !strings.Contains(got, "stderr: to-err\n") {
			t.Fatalf("the logging program received %q", got)
		}
	})
}

func TestOutputToAFile(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		logFile := filepath.Join(t.TempDir(), "container.log")
		result := s.daemon.Ctr(t, s.ns, "run", "--rm", "--runtime", s.runtime, "--log-uri", "file://"+logFile,
			harness.BusyboxImage, "filelogged", "sh", "-c", "echo to-out; echo to-err >&2")
		if result.ExitCode != 0 {
			t.Fatalf("ctr run: exit %d, stderr %s", result.ExitCode, result.Stderr)
		}
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(data); !strings.Contains(got, "to-out\n") || !strings.Contains(got, "to-err\n") {
			// The stock shim was seen, under containerd 2.4.2 and a
			// loaded machine, to end a file log before stderr reached it.
			s.shimFellShort(t, "log file holds %q, want to-out and to-err", got)
		}
	})
}

// shellLogger writes a logging program that copies the container's stdout
// (fd 3) and stderr (fd 4) into the file its "file" argument names, after
// sayReady, the shell that tells the shim on fd 5 that it is ready.
func shellLogger(t *testing.T, sayReady string) string {
	t.Helper()
	cat, err := exec.LookPath("cat") // a logger's environment has no PATH
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "logger")
	script := "#!/bin/sh\n" + sayReady + "\n" + cat + " <&3 >\"$2\"\n" + cat + " <&4 >>\"$2\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkLogged runs a container whose output goes to the logging program at
// uri (its file argument set to logFile) and checks that the program
// received both streams.
func checkLogged(t *testing.T, s *session, uri, logFile string) {
	t.Helper()
	result := s.daemon.Ctr(t, s.ns, "run", "--rm", "--runtime", s.runtime, "--log-uri", uri+"?file="+logFile,
		harness.BusyboxImage, "logged", "sh", "-c", "echo to-out; echo to-err >&2")
	if result.ExitCode != 0 {
		// containerd 1.7's stock shim knows no binary-v2://.
		s.shimFellShort(t, "ctr run: exit %d, stderr %s", result.ExitCode, result.Stderr)
		return
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); got != "to-out\nto-err\n" {
		// The stock shim stops its logging program (SIGTERM) once the
		// container exits, which can cut a slow one short.
		s.shimFellShort(t, "the logging program received %q, want to-out and to-err", got)
	}
}

// containerd's logging package up to 2.3 (logging.Run) says it is ready only
// by closing fd 5; binary:// takes that as ready.
func TestLoggingProgramThatOnlyClosesFd5(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		logFile := filepath.Join(t.TempDir(), "container.log")
		checkLogged(t, s, "binary://"+shellLogger(t, "exec 5>&-"), logFile)
	})
}

// binary-v2:// loggers write a byte to fd 5 once ready.
func TestBinaryV2LoggingProgramThatSaysReady(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		logFile := filepath.Join(t.TempDir(), "container.log")
		checkLogged(t, s, "binary-v2://"+shellLogger(t, "printf r >&5; exec 5>&-"), logFile)
	})
}

// A binary-v2:// logger that closes fd 5 without the ready byte failed
// before it was ready: the container is not created, and the error says why.
func TestBinaryV2LoggingProgramThatNeverSaysReady(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		uri := "binary-v2://" + shellLogger(t, "exec 5>&-") + "?file=" + filepath.Join(t.TempDir(), "container.log")
		result := s.daemon.Ctr(t, s.ns, "run", "--rm", "--runtime", s.runtime, "--log-uri", uri,
			harness.BusyboxImage, "unlogged", "echo", "never")
		if result.ExitCode == 0 {
			t.Fatal("ctr run succeeded with a binary-v2:// logger that never said it was ready")
		}
		if !strings.Contains(string(result.Stderr), "ready") {
			s.shimFellShort(t, "ctr run failed without saying the logger was not ready: %s", result.Stderr)
		}
	})
}

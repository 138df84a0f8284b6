package integration

import (
	"os"
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

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/teach/containerd-shim-teach-v2/inspect"
	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Terminal escape sequences a process in a container can put where inspect
// and trace show them: set the window title, clear the screen and turn the
// text red; move the cursor up and erase the line (to hide what was
// printed before).
const (
	titleAndClear = "\033]0;PWNED\007\033[2J\033[31m"
	eraseLineUp   = "\033[1A\033[2K"
)

// A container whose command line and root files carry escape sequences, and
// an exec whose FIFOs' path does: inspect's and trace's text must show them
// as escapes, never pass an ESC or any other control byte to the
// administrator's terminal; their --json must keep the exact strings.
func TestInspectAndTraceEscapeWhatTheContainerWrote(t *testing.T) {
	t.Parallel()
	daemon := harness.StartContainerd(t, "v2.4.2")
	s := newSession(t, daemon, runtimeRows[0])
	harness.ShimBinary(t)

	// The init's command line carries eraseLineUp; the file it makes at
	// the top of its root is named with titleAndClear.
	fileName := titleAndClear + "x"
	arg := eraseLineUp + "hidden"
	container := s.newContainer(t, "escapes", []string{"sh", "-c", `touch "/$1"; sleep 1000; :`, arg, fileName})
	task, _ := s.startTask(t, container, &stdio{})
	if err := harness.WaitFor(time.Minute, func() error {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/root/%s", task.Pid(), fileName))
		return err
	}); err != nil {
		t.Fatalf("the container did not make its file: %v", err)
	}

	text := s.daemon.Inspect(t, s.ns, "escapes")
	if text.ExitCode != 0 {
		t.Fatalf("inspect: %s", text)
	}
	assertNoControlBytes(t, "inspect", string(text.Stdout)+string(text.Stderr))
	for _, shown := range []string{`\x1b[1A\x1b[2Khidden`, `\x1b]0;PWNED\a\x1b[2J\x1b[31mx`} {
		if !strings.Contains(string(text.Stdout), shown) {
			t.Errorf("inspect's text does not show %s:\n%s", shown, text.Stdout)
		}
	}
	report := inspectReport(t, s, "escapes")
	if !slices.Contains(report.Root.Entries, fileName) {
		t.Errorf("inspect --json lists the root as %q, want the exact name %q among it", report.Root.Entries, fileName)
	}
	if !slices.ContainsFunc(report.Processes, func(p inspect.Process) bool { return slices.Contains(p.Args, arg) }) {
		t.Errorf("inspect --json has no process with the exact argument %q: %+v", arg, report.Processes)
	}

	// The journal holds what the client named: an exec whose FIFOs are in
	// a folder named with the sequences.
	fifoDir := filepath.Join(s.daemon.FIFODir, eraseLineUp+"fifos")
	if err := os.MkdirAll(fifoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := runExec(s, task, "named", execSpec(t, s, container, "true"), "", cio.WithFIFODir(fifoDir)); err != nil {
		t.Fatal(err)
	}

	traced := s.trace(t, "escapes")
	assertNoControlBytes(t, "trace", traced.stdout+traced.stderr)
	if !strings.Contains(traced.stdout, `\x1b[1A\x1b[2Kfifos/`) {
		t.Errorf("trace does not show the FIFOs' folder with its escapes:\n%s", traced.stdout)
	}
	exact := false
	for _, e := range s.journalEntries(t, "escapes") {
		exact = exact || strings.HasPrefix(e.Path, fifoDir+"/")
	}
	if !exact {
		t.Error("trace --json has no entry with the FIFOs' path as it is")
	}
}

// assertNoControlBytes fails when text, printed for a terminal, holds a
// control character other than the newlines that end its lines.
func assertNoControlBytes(t *testing.T, what, text string) {
	t.Helper()
	for i, r := range text {
		if r != '\n' && (unicode.IsControl(r) || r == unicode.ReplacementChar) {
			from := max(i-40, 0)
			t.Errorf("%s printed the control character %U, in %q", what, r, text[from:min(i+40, len(text))])
			return
		}
	}
}

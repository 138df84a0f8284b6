package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RuncWrapper is a runc that misbehaves on one subcommand and is the real
// runc for every other: a shell script a test names as BinaryName in the
// runtime options. It makes the failures a real runc produces only by bad
// luck (a failed start, a hung kill) happen on demand, to both shims alike.
type RuncWrapper struct {
	Path       string // the script, for BinaryName
	Subcommand string // create, start, kill, exec, delete...
	// Message is what a failing subcommand reports, the way runc does:
	// a JSON error line in the --log file, and a line on stderr.
	Message string

	dir string
}

// FailingRunc fails subcommand with message and exit status 1.
func FailingRunc(t testing.TB, subcommand, message string) *RuncWrapper {
	t.Helper()
	w := newRuncWrapper(t, subcommand)
	w.Message = message
	w.write(t, fmt.Sprintf(`log_error %s
exit 1`, shellQuote(message)))
	return w
}

// HangingRunc makes subcommand wait until Release, then run the real runc.
// The wrapper writes its pid to a file first, so the test can see the hang
// began, and the cleanup can end a hang nobody released.
func HangingRunc(t testing.TB, subcommand string) *RuncWrapper {
	t.Helper()
	w := newRuncWrapper(t, subcommand)
	if err := unix.Mkfifo(w.releasePath(), 0o600); err != nil {
		t.Fatal(err)
	}
	// Opening a FIFO for reading waits for a writer: that is the hang.
	w.write(t, fmt.Sprintf(`echo $$ > %s
read _ < %s
exec "$real" "$@"`, shellQuote(w.pidPath()), shellQuote(w.releasePath())))
	t.Cleanup(func() { w.Release() })
	return w
}

// RuncOfVersion answers `runc --version` as the given release would, and is
// the real runc for every command: a shim that decides what runc can do by
// its version takes it for that older runc.
func RuncOfVersion(t testing.TB, version string) *RuncWrapper {
	t.Helper()
	// `runc --version` has no subcommand: the script's sub stays empty.
	w := newRuncWrapper(t, "")
	w.write(t, fmt.Sprintf(`echo "runc version %s"
echo "spec: 1.0.2-dev"
exit 0`, version))
	return w
}

// EnvRecordingRunc is the real runc, except that before each create it
// appends the value runc gets for the environment variable name to a file
// (Recorded reads it): what a shim passes on to runc.
func EnvRecordingRunc(t testing.TB, name string) *RuncWrapper {
	t.Helper()
	w := newRuncWrapper(t, "create")
	w.write(t, fmt.Sprintf(`echo "${%s-unset}" >> %s`, name, shellQuote(w.recordPath())))
	return w
}

// Recorded is one line per create that EnvRecordingRunc saw.
func (w *RuncWrapper) Recorded() []string {
	data, _ := os.ReadFile(w.recordPath())
	return strings.Fields(string(data))
}

func newRuncWrapper(t testing.TB, subcommand string) *RuncWrapper {
	t.Helper()
	// Not t.TempDir: the shim runs the script long after the test made it,
	// by a path that must stay short and readable.
	dir, err := os.MkdirTemp("", "fake-runc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &RuncWrapper{Path: filepath.Join(dir, "runc"), Subcommand: subcommand, dir: dir}
}

// write installs the script: find the subcommand after runc's global flags,
// run the misbehaviour for the chosen one, else exec the real runc.
func (w *RuncWrapper) write(t testing.TB, misbehave string) {
	t.Helper()
	real := ToolBinary(t, "runc", "runc")
	script := fmt.Sprintf(`#!/bin/sh
real=%s
log=
sub=
prev=
for arg in "$@"; do
	case "$prev" in
	--log) log=$arg ;;
	esac
	case "$prev" in
	--root|--log|--log-format|--criu|--rootless) prev=; continue ;;
	esac
	case "$arg" in
	--root|--log|--log-format|--criu|--rootless) prev=$arg ;;
	-*) ;;
	*) sub=$arg; break ;;
	esac
done
log_error() {
	[ -n "$log" ] && printf '{"level":"error","msg":"%%s","time":"2000-01-01T00:00:00Z"}\n' "$1" >> "$log"
	echo "$1" >&2
}
if [ "$sub" = %s ]; then
%s
fi
exec "$real" "$@"
`, shellQuote(real), shellQuote(w.Subcommand), misbehave)
	if err := os.WriteFile(w.Path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (w *RuncWrapper) pidPath() string     { return filepath.Join(w.dir, "hung.pid") }
func (w *RuncWrapper) releasePath() string { return filepath.Join(w.dir, "release") }
func (w *RuncWrapper) recordPath() string  { return filepath.Join(w.dir, "recorded") }

// HungPID is the pid of the wrapper waiting in the hung subcommand, 0 when
// none has started yet.
func (w *RuncWrapper) HungPID() int {
	data, err := os.ReadFile(w.pidPath())
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// WaitHung waits until the subcommand is hanging.
func (w *RuncWrapper) WaitHung(t testing.TB, timeout time.Duration) int {
	t.Helper()
	var pid int
	Eventually(t, timeout, "runc "+w.Subcommand+" to hang", func() error {
		if pid = w.HungPID(); pid == 0 || !IsAlive(pid) {
			return fmt.Errorf("no hanging runc %s", w.Subcommand)
		}
		return nil
	})
	return pid
}

// Release lets every hanging subcommand go on to the real runc. Opening the
// FIFO for writing without blocking succeeds only while a reader waits;
// each open and close ends one read.
func (w *RuncWrapper) Release() {
	// Without the FIFO, later calls no longer wait: `read _ < missing`
	// fails and the script goes on to the real runc.
	defer os.Remove(w.releasePath())
	for range 100 {
		f, err := os.OpenFile(w.releasePath(), os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return // ENXIO: nobody is waiting
		}
		f.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// HangingExecRunc makes `runc exec` wait until Release, like HangingRunc,
// but only for an exec whose process (the JSON file runc exec reads with
// --process) contains marker: the container's other execs start at once.
// Each hanging exec writes its pid to the file HungPID reads, so a second
// one replaces the first there.
func HangingExecRunc(t testing.TB, marker string) *RuncWrapper {
	t.Helper()
	w := newRuncWrapper(t, "exec")
	if err := unix.Mkfifo(w.releasePath(), 0o600); err != nil {
		t.Fatal(err)
	}
	w.write(t, fmt.Sprintf(`process=
prev=
for arg in "$@"; do
	[ "$prev" = --process ] && process=$arg
	prev=$arg
done
if [ -n "$process" ] && grep -q %s "$process"; then
	echo $$ > %s
	read _ < %s
fi`, shellQuote(marker), shellQuote(w.pidPath()), shellQuote(w.releasePath())))
	t.Cleanup(func() { w.Release() })
	return w
}

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// LatePidfdRunc is a runc (integration/cmd/latepidfd, named as BinaryName)
// that connects to the shim's --pidfd-socket at once and sends the pidfd
// only later, or never: what a slow runc init looks like to the shim, and a
// broken one.
type LatePidfdRunc struct {
	Path string // the script, for BinaryName
	dir  string
}

// PidfdLateBy sends the pidfd delay after it connected. only, if not
// empty, is the one subcommand ("create" or "exec") it does so for; the
// others are the real runc's.
func PidfdLateBy(t testing.TB, delay time.Duration, only string) *LatePidfdRunc {
	return newLatePidfdRunc(t, delay.String(), only, false)
}

// PidfdNeverSent connects and sends nothing; only as for PidfdLateBy.
func PidfdNeverSent(t testing.TB, only string) *LatePidfdRunc {
	return newLatePidfdRunc(t, "never", only, false)
}

// PidfdHeld sends the pidfd once Release is called, for create only.
func PidfdHeld(t testing.TB) *LatePidfdRunc {
	return newLatePidfdRunc(t, "0s", "create", true)
}

func newLatePidfdRunc(t testing.TB, delay, only string, held bool) *LatePidfdRunc {
	t.Helper()
	binary := TestProgram(t, "latepidfd")
	// Not t.TempDir: the shim runs the script by a path that must stay
	// short and readable.
	dir, err := os.MkdirTemp("", "late-pidfd-")
	if err != nil {
		t.Fatal(err)
	}
	r := &LatePidfdRunc{Path: filepath.Join(dir, "runc"), dir: dir}
	t.Cleanup(func() {
		r.Release()
		os.RemoveAll(dir)
	})
	hold := ""
	if held {
		hold = r.holdPath()
	}
	var script strings.Builder
	script.WriteString("#!/bin/sh\n")
	for _, v := range [][2]string{
		{"LATE_PIDFD_RUNC", ToolBinary(t, "runc", "runc")},
		{"LATE_PIDFD_DELAY", delay},
		{"LATE_PIDFD_ONLY", only},
		{"LATE_PIDFD_RECORD", r.recordPath()},
		{"LATE_PIDFD_HOLD", hold},
	} {
		fmt.Fprintf(&script, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	fmt.Fprintf(&script, "exec %s \"$@\"\n", shellQuote(binary))
	if err := os.WriteFile(r.Path, []byte(script.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *LatePidfdRunc) recordPath() string { return filepath.Join(r.dir, "socket") }
func (r *LatePidfdRunc) holdPath() string   { return filepath.Join(r.dir, "release") }

// SocketPath is the shim's pidfd socket the last slowed command connected
// to, "" if none has yet. Its folder is the shim's: named by the shim's pid.
func (r *LatePidfdRunc) SocketPath() string {
	data, _ := os.ReadFile(r.recordPath())
	return string(data)
}

// Release lets a PidfdHeld runc send the pidfd.
func (r *LatePidfdRunc) Release() {
	os.WriteFile(r.holdPath(), nil, 0o600)
}

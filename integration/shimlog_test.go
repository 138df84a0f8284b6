package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// A shim has no terminal and no log file of its own: containerd makes a
// FIFO named "log" in the bundle, the shim's logger (set up by pkg/shim)
// writes to it, and containerd copies every line into its own log. The
// shim's level follows containerd's: containerd at debug starts the shim
// with -debug (1.7) or LOG_LEVEL_DEBUG in the bootstrap parameters (2.x).
// pkg/shim tags every line with the runtime's name.

// TestShimLogFollowsDaemonLevel runs a container on a daemon at debug and
// on one at info, and reads the daemon's log for the shim's lines, as
// TestShimLogFollowsDaemonLevel/containerd-<version>/<runtime>/<level>.
func TestShimLogFollowsDaemonLevel(t *testing.T) {
	levels := []string{"debug", "info"}
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			daemons := map[string]*harness.Containerd{}
			for _, level := range levels {
				daemons[level] = harness.StartContainerdWith(t, release.Version, harness.Options{LogLevel: level})
			}
			for _, row := range runtimeRows {
				t.Run(row.name, func(t *testing.T) {
					for _, level := range levels {
						t.Run(level, func(t *testing.T) {
							d := daemons[level]
							s := newSession(t, d, row)
							id := "log-" + level
							if r := d.CtrRun(t, s.ns, s.runtime, id, nil, "true"); r.ExitCode != 0 {
								t.Fatalf("ctr run: exit code %d: %s", r.ExitCode, r.Stderr)
							}
							debug, other := shimLogLines(t, d, s.runtime)
							switch {
							case level == "debug" && debug == 0:
								t.Errorf("containerd at debug: no debug line of the shim (runtime=%s) in %s", s.runtime, d.LogPath)
							case level != "debug" && debug > 0:
								t.Errorf("containerd at %s: %d debug lines of the shim (runtime=%s) in %s", level, debug, s.runtime, d.LogPath)
							}
							t.Logf("shim lines in containerd's log: %d at debug, %d at other levels", debug, other)
						})
					}
				})
			}
		})
	}
}

// shimLogLines counts the lines of containerd's log that the shim server
// of runtime wrote into its log FIFO: those at level debug, and the others.
// They are found by what each server logs at debug level as it starts,
// tagged runtime=<name>: the stock shim's pkg/shim "loading plugin", ours
// "shim server serving the task API". containerd tags some lines of its own
// with the runtime too ("creating task"), never those.
func shimLogLines(t *testing.T, d *harness.Containerd, runtime string) (debug, other int) {
	t.Helper()
	data, err := os.ReadFile(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		started := strings.Contains(line, `msg="loading plugin`) || strings.Contains(line, `msg="shim server serving the task API"`)
		if !strings.Contains(line, "runtime="+runtime) || !started {
			continue
		}
		if strings.Contains(line, "level=debug") {
			debug++
		} else {
			other++
		}
	}
	return debug, other
}

// TestCreateErrorReachesUser: when runc cannot start a container, `ctr run`
// prints runc's own reason, once, not "exit status 1". The reason travels
// from runc's log, through the shim's Create error, through containerd.
func TestCreateErrorReachesUser(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		r := s.daemon.CtrRun(t, s.ns, s.runtime, "no-command", nil, "no-such-command")
		const reason = `exec: "no-such-command": executable file not found in $PATH`
		output := string(r.Stdout) + string(r.Stderr)
		if r.ExitCode == 0 {
			t.Errorf("ctr run of a missing command: exit code 0")
		}
		if n := strings.Count(output, reason); n != 1 {
			t.Errorf("ctr run of a missing command: runc's reason %q appears %d times, want once:\nstdout: %s\nstderr: %s",
				reason, n, r.Stdout, r.Stderr)
		}
		s.daemon.AssertNoContainerTraces(t, s.ns, "no-command")
	})
}

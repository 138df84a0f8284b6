package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/cgroup"
	"github.com/teach/containerd-shim-teach-v2/integration/harness"
	"github.com/teach/containerd-shim-teach-v2/journal"
)

// What the journal keeps, and what it must not: a logging program's
// arguments, which may be secrets; how much of a flood; whose it is.

// A container's output goes to a logging program whose URI carries a
// token: the journal says which program and which arguments, not their
// values.
func TestTheJournalKeepsNoLogURIValues(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		logFile := filepath.Join(t.TempDir(), "container.log")
		uri := "binary://" + testLogger(t) + "?file=" + logFile + "&token=s3cret"
		result := s.daemon.Ctr(t, s.ns, "run", "--rm", "--runtime", s.runtime, "--log-uri", uri, harness.BusyboxImage, "logged", "echo", "hi")
		if result.ExitCode != 0 {
			t.Fatalf("ctr run: exit %d, stderr %s", result.ExitCode, result.Stderr)
		}
		raw := s.trace(t, "logged", "--json")
		if strings.Contains(raw.stdout, "s3cret") || strings.Contains(raw.stdout, logFile) {
			t.Errorf("the journal keeps the values of the log URI's query:\n%s", raw.stdout)
		}
		shown := false
		for _, e := range s.journalEntries(t, "logged") {
			shown = shown || e.Path == "binary://"+testLogger(t)+"?file&token"
		}
		if !shown {
			t.Errorf("the journal does not name the logging program with its query's keys:\n%s", raw.stdout)
		}
	})
}

// trace run by a user who may not read the journals (they are root's) says
// so, and not that the container has no journal.
func TestTraceSaysAUserMayNotReadTheJournal(t *testing.T) {
	forEachDaemonWithOurShim(t, func(t *testing.T, s *session) {
		s.runningTask(t, "private")
		binary := copyForEveryone(t, harness.ShimBinary(t))
		for _, args := range [][]string{
			{"trace", "-n", s.ns, "--state", s.daemon.StateDir, "private"},
			{"trace", "-n", s.ns, "private"},
		} {
			cmd := exec.Command(binary, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 1 ||
				!strings.Contains(stderr.String(), "permission denied") || strings.Contains(stderr.String(), "no journal") {
				t.Errorf("%q as nobody: %v, stderr %q; want exit status 1 and permission denied", args, err, stderr.String())
			}
		}
	})
}

// oomLoopKills is how many OOM kills the loop runs to: far more lines
// than a journal would keep were each written, and, at any speed, a loop.
const oomLoopKills = 1000

// oomLoopStall is how long the loop may go without a single new OOM kill
// before the test calls it stuck. It bounds a stall, not the loop: a slow
// machine kills slowly, never not at all.
const oomLoopStall = 5 * time.Minute

// A container in an OOM loop: its shell starts a dd that the OOM killer
// kills, again and again. Afterwards trace still tells the container's
// Create and Start and the number of OOM kills the kernel counted in its
// cgroup, and draws the kills in lines bounded by the loop's seconds, not
// by how many kills it held: a flood is counted, not written.
func TestTraceKeepsTheStartOfAnOOMLoop(t *testing.T) {
	t.Parallel()
	daemon := harness.StartContainerd(t, "v2.4.2")
	s := newSession(t, daemon, runtimeRows[0])
	// The loop takes minutes on a busy machine, longer than a session's
	// deadline; its own bound is the stall below.
	ctx, cancel := context.WithCancel(context.WithoutCancel(s.ctx))
	t.Cleanup(cancel)
	s.ctx = ctx
	// Each dd reads into a 16 MiB buffer, past the 8 MiB limit. Swap is
	// limited to the same 8 MiB, so that a machine with swap kills too.
	container := s.newContainer(t, "oom-loop", []string{"sh", "-c", "while :; do dd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null; done"},
		withSpecOpts(oci.WithMemoryLimit(8<<20), oci.WithMemorySwap(8<<20)))
	started := time.Now()
	task, exitCh := s.startTask(t, container, &stdio{})
	cg, err := cgroup.Of(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	waitForOOMKills(t, cg, oomLoopKills)
	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exitCodeOf(t, exitCh)
	loop := time.Since(started)
	t.Logf("%d OOM kills took %s", oomLoopKills, loop.Round(time.Second))
	kills, err := cg.OOMKills()
	if err != nil {
		t.Fatal(err)
	}
	deleteTask(t, s.ctx, task, 137)

	got := s.trace(t, "oom-loop")
	if got.code != 0 {
		t.Errorf("trace exit status %d, want 0: the whole story\n%s", got.code, got.stderr)
	}
	inOrder(t, got.stdout,
		`├─+▶│.*  Create$`,
		`runc create \(pid \d+\) → exit 0`,
		`runc start \(pid \d+\) → exit 0`,
		`OOM kill: `,
		`container deleted; journal closed`,
		fmt.Sprintf(`^OOM kills in the container's cgroup: %d$`, kills),
	)
	// A window of repeats lasts a second: each second of the loop opens at
	// most one, written as its first kill and one line of how many more.
	oomLines := strings.Count(got.stdout, "OOM kill: ")
	if most := 2 * (int(loop.Seconds()) + 2); oomLines > most {
		t.Errorf("%d OOM kills in %s drawn in %d lines, want at most %d: a flood must be counted, not written",
			kills, loop.Round(time.Second), oomLines, most)
	}
	t.Logf("%d OOM kills drawn in %d OOM lines, %d lines in all", kills, oomLines, strings.Count(got.stdout, "\n"))
}

// waitForOOMKills waits until the kernel has counted want OOM kills in cg,
// however long that takes, as long as the count keeps rising.
func waitForOOMKills(t *testing.T, cg cgroup.Cgroup, want uint64) {
	t.Helper()
	var last uint64
	lastRise := time.Now()
	for {
		kills, err := cg.OOMKills()
		if err != nil {
			t.Fatalf("read the OOM kills of the container's cgroup: %v", err)
		}
		if kills >= want {
			return
		}
		if kills > last {
			last, lastRise = kills, time.Now()
		}
		if time.Since(lastRise) > oomLoopStall {
			t.Fatalf("the OOM loop stalled: %d OOM kills, none new in %s", kills, oomLoopStall)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A containerd is stopped and its state folder removed, with it every
// container it knew. The journals of its containers can no longer be asked
// about through it: the next container deleted on the host prunes them.
func TestTheJournalsOfARemovedContainerdArePruned(t *testing.T) {
	t.Parallel()
	removed := newSession(t, harness.StartContainerd(t, "v2.4.2"), runtimeRows[0])
	removed.runToExit(t, "short", nil, "true")
	keyDir := journal.StateDir(journal.DefaultRoot, removed.daemon.StateDir)
	if _, err := os.Stat(keyDir); err != nil {
		t.Fatalf("no journals for the first containerd: %v", err)
	}
	removed.daemon.Stop(t)
	if err := os.RemoveAll(removed.daemon.StateDir); err != nil {
		t.Fatal(err)
	}

	other := newSession(t, harness.StartContainerd(t, "v2.4.2"), runtimeRows[0])
	other.runToExit(t, "short", nil, "true")
	if _, err := os.Stat(keyDir); !os.IsNotExist(err) {
		t.Errorf("the journals of a containerd whose state folder is gone are still there (%s): %v", keyDir, err)
	}
	if _, err := journal.Find(journal.DefaultRoot, other.daemon.StateDir, other.ns, "short"); err != nil {
		t.Errorf("the journal of the other containerd's container went too: %v", err)
	}
}

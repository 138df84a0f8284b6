package integration

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

var attributionScenario = scenarioSpec{
	name: "exit attribution by pidfd",
	test: "TestReliabilityExitAttribution",
	about: "With runc 1.5.3 the shim must hold a pidfd (sent by runc over --pidfd-socket) for the init and for each " +
		"exec while they run, as /proc/<shim>/fd and fdinfo show, log `exit attribution: pidfd` for each, and close " +
		"each pidfd once the exit is recorded; Kill goes through the pidfd. With a runc that answers `--version` as " +
		"1.1.15 (no --pidfd-socket) the shim must fall back to wait4 pid matching and log `exit attribution: wait4 " +
		"pid match`. Either way every exit must be reported with its own status: execs that exit by themselves, one " +
		"killed with SIGTERM, the init killed with SIGKILL.",
}

// The attribution lines the shim logs (process/pidfd.go), as they appear in
// containerd's log.
const (
	attributedByPidfd = "exit attribution: pidfd"
	attributedByPid   = "exit attribution: wait4 pid match"
)

func TestReliabilityExitAttribution(t *testing.T) {
	forEachDaemonWithTeach(t, func(t *testing.T, s *session) {
		sc := newScenario(t, attributionScenario, s)
		t.Run("runc 1.5.3", func(t *testing.T) { exitAttribution(t, s, sc, "pidfd", nil) })
		t.Run("runc reporting 1.1.15", func(t *testing.T) {
			old := harness.RuncOfVersion(t, "1.1.15")
			exitAttribution(t, s, sc, "wait4", client.WithRuntime(s.runtime, &options.Options{BinaryName: old.Path}))
		})
	})
}

// exitAttribution runs a container and its execs, and checks the shim's
// pidfds and log say the exits were attributed as expected ("pidfd" or
// "wait4"), and that every exit is right.
func exitAttribution(t *testing.T, s *session, sc *scenario, expected string, opt client.NewContainerOpts) {
	id := "attribution-" + expected
	var opts []client.NewContainerOpts
	if opt != nil {
		opts = append(opts, opt)
	}
	container := s.newContainer(t, id, []string{"sleep", "1000"}, opts...)
	task, initExit := s.startTask(t, container, &stdio{})
	initPid := int(task.Pid())
	shimPID, err := harness.ParentPID(initPid)
	if err != nil {
		t.Fatal(err)
	}

	lingering, err := task.Exec(s.ctx, "lingering", execSpec(t, s, container, "sleep", "1000"), cio.NewCreator())
	if err != nil {
		t.Fatal(err)
	}
	lingeringExit, err := lingering.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lingering.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	execPid := int(lingering.Pid())
	held, err := harness.PidfdTargets(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	named := slices.Contains(held, initPid) && slices.Contains(held, execPid)
	sc.figure(expected+": shim holds a pidfd of the init and the exec", named)
	if named != (expected == "pidfd") {
		t.Errorf("the shim's pidfds name pids %v; the init is %d, the exec %d (expected attribution: %s)", held, initPid, execPid, expected)
	}

	// Kill goes through the pidfd when the shim holds one; either way
	// the exit must be the signal's.
	if err := lingering.Kill(s.ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wrong := 0
	if code := exitCodeOf(t, lingeringExit); code != 128+15 {
		wrong++
		t.Errorf("exec killed with SIGTERM: exit %d, want 143", code)
	}
	lingering.Delete(s.ctx)

	quick := sized(10, 200)
	for i := range quick {
		result, err := runExec(s, task, fmt.Sprintf("quick-%d", i), execSpec(t, s, container, "sh", "-c", fmt.Sprintf("exit %d", i%50)), "")
		if err != nil || result.code != uint32(i%50) {
			wrong++
			t.Errorf("exec %d: %+v, %v; want exit %d", i, result, err, i%50)
		}
	}
	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code := exitCodeOf(t, initExit)
	if code != 137 {
		wrong++
		t.Errorf("init killed with SIGKILL: exit %d, want 137", code)
	}
	// The exit is recorded: the pidfds of the dead processes are closed,
	// before the task is even deleted.
	left, _ := harness.PidfdTargets(shimPID)
	stillHeld := 0
	for _, pid := range left {
		if pid == initPid || pid == execPid || pid == -1 {
			stillHeld++
		}
	}
	sc.figure(expected+": pidfds of exited processes still held", stillHeld)
	if stillHeld > 0 {
		t.Errorf("after the exits the shim still holds pidfds naming %v (init %d, exec %d; -1 is a reaped process)", left, initPid, execPid)
	}
	deleteTask(t, s.ctx, task, code)
	sc.figure(expected+": exits lost or wrong", fmt.Sprintf("%d of %d", wrong, quick+2))

	want, other := attributedByPidfd, attributedByPid
	if expected != "pidfd" {
		want, other = other, want
	}
	// containerd copies the shim's log into its own as it comes: wait
	// for the lines.
	for _, process := range []string{"", "lingering"} {
		var got []string
		harness.WaitFor(s.settleTimeout(), func() error {
			got = attributionLines(s, id, process)
			if len(got) == 0 {
				return fmt.Errorf("no attribution line yet")
			}
			return nil
		})
		name := "init"
		if process != "" {
			name = "exec " + process
		}
		sc.figure(fmt.Sprintf("%s: log for the %s", expected, name), firstOr(got, "none"))
		text := strings.Join(got, "\n")
		if !strings.Contains(text, want) || strings.Contains(text, other) {
			t.Errorf("the shim's log for the %s of %s says:\n%s\nwant %q", name, id, text, want)
		}
	}
}

// attributionLines returns the lines in which the shim told how it will
// attribute the exit of container id's init (exec "") or of one exec.
func attributionLines(s *session, id, exec string) []string {
	var found []string
	for _, line := range linesWith(s.daemon.LogLinesWith("exit attribution", 100000), "id="+id+" ") {
		execField := ""
		if _, rest, ok := strings.Cut(line, " exec="); ok {
			execField, _, _ = strings.Cut(rest, " ")
		}
		if execField == exec {
			found = append(found, line)
		}
	}
	return found
}

// linesWith returns the lines of text that contain substr.
func linesWith(text, substr string) []string {
	var found []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			found = append(found, line)
		}
	}
	return found
}

// firstOr shortens the first line to its message, for a report cell.
func firstOr(lines []string, none string) string {
	if len(lines) == 0 {
		return none
	}
	if _, msg, ok := strings.Cut(lines[0], `msg="`); ok {
		msg, _, _ = strings.Cut(msg, `"`)
		return msg
	}
	return lines[0]
}

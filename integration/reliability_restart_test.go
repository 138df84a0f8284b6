package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// A shim exists so that containers do not depend on containerd: containerd
// may be upgraded, restarted or crash, and the containers, their output and
// their exits must come through. And when the shim itself dies, containerd
// must be able to clean up after it with `containerd-shim-teach-v2 delete`.

var daemonOutageScenario = scenarioSpec{
	name: "containerd stopped or killed under running containers",
	test: "TestReliabilityDaemonOutage",
	about: "Two containers run; the test stops reading one's stdout (its client goes away), then stops containerd " +
		"with SIGTERM, or kills it with SIGKILL. While containerd is away the first container keeps writing " +
		"numbered 1 KiB lines, more than the FIFO and pipe can hold, and the second is made to exit with status 7. " +
		"containerd is started again: the test reads the same FIFO again and checks every line arrived once, " +
		"in order; `ctr task ls` shows one task RUNNING and one STOPPED; Exec, Wait, Kill and Delete work; " +
		"the exit that happened meanwhile is reported with status 7.",
}

// outage is how long containerd stays away: long enough for the writer's
// output (about 100 KiB/s) to fill the FIFO (64 KiB), the pipe (64 KiB) and
// the shim's copy buffer (64 KiB), so the container is held up, not only
// buffered.
const outage = 3 * time.Second

// chattyScript prints numbered lines of 1 KiB, 100 a second, forever.
const chattyScript = `pad=$(printf '%01000d' 0); i=0; while true; do i=$((i+1)); echo "$i $pad"; sleep 0.01; done`

func TestReliabilityDaemonOutage(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		for _, how := range []string{"SIGTERM", "SIGKILL"} {
			t.Run(how, func(t *testing.T) {
				sc := newScenario(t, daemonOutageScenario, s)
				stop := s.daemon.Stop
				if how == "SIGKILL" {
					stop = s.daemon.Kill
				}
				daemonOutage(t, s, sc, strings.ToLower(how), stop)
			})
		}
	})
}

func daemonOutage(t *testing.T, s *session, sc *scenario, label string, stopDaemon func(testing.TB)) {
	defer logForestOnFailure(t)
	chattyID, quitterID := "chatty-"+label, "quitter-"+label

	defer func() {
		if t.Failed() {
			t.Logf("containerd log about %s:\n%s", quitterID, s.daemon.LogLinesWith(quitterID, 40))
		}
	}()

	chatty := s.newContainer(t, chattyID, []string{"sh", "-c", chattyScript})
	fifos := newClientFIFOs(t, s, chattyID)
	before := readFIFO(t, fifos.stdout, true, 0)
	readFIFO(t, fifos.stderr, false, 0)
	chattyTask, err := chatty.NewTask(s.ctx, fifos.creator())
	if err != nil {
		t.Fatal(err)
	}
	if err := chattyTask.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	quitter := s.newContainer(t, quitterID, []string{"sh", "-c", `trap "exit 7" TERM; echo ready; while true; do sleep 0.1; done`})
	quitterStreams := &stdio{}
	quitterTask, _ := s.startTask(t, quitter, quitterStreams)
	waitForOutput(t, quitterStreams, "ready\n")
	harness.Eventually(t, readyTimeout, "chatty's first lines", func() error {
		if before.bytes() < 20<<10 {
			return fmt.Errorf("%d bytes so far", before.bytes())
		}
		return nil
	})

	chattyShim, err := harness.ParentPID(int(chattyTask.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	quitterShim, err := harness.ParentPID(int(quitterTask.Pid()))
	if err != nil {
		t.Fatal(err)
	}

	// The client goes away first, then containerd.
	firstPart := before.stop()
	stopDaemon(t)

	for what, pid := range map[string]int{
		"chatty's shim": chattyShim, "quitter's shim": quitterShim,
		"chatty": int(chattyTask.Pid()), "quitter": int(quitterTask.Pid()),
	} {
		if !harness.IsAlive(pid) {
			t.Fatalf("%s (pid %d) died with containerd", what, pid)
		}
	}
	// The exit containerd will have to learn about afterwards.
	if err := syscall.Kill(int(quitterTask.Pid()), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	harness.AssertProcessGone(t, int(quitterTask.Pid()), "quitter after SIGTERM")
	time.Sleep(outage)
	s.daemon.Start(t)
	exitEvents, exitErrs := s.client.Subscribe(s.ctx, fmt.Sprintf(`namespace==%q,topic~="^/tasks/(exit|delete)$"`, s.ns))

	// The client comes back to the same FIFO and reads on.
	after := readFIFO(t, fifos.stdout, true, 0)
	harness.Eventually(t, readyTimeout, "output written while containerd was away", func() error {
		if after.bytes() < 300<<10 {
			return fmt.Errorf("%d bytes since containerd came back", after.bytes())
		}
		return nil
	})

	statuses := ctrTaskStatuses(t, s)
	sc.figure("ctr task ls after restart", fmt.Sprintf("%s %s, %s %s", chattyID, statuses[chattyID], quitterID, orGone(statuses[quitterID])))
	if statuses[chattyID] != "RUNNING" {
		t.Errorf("ctr task ls after restart: %v; want %s RUNNING", statuses, chattyID)
	}
	// The running container still answers every call.
	chattyTask = reloadTask(t, s, chattyID)
	result, err := runExec(s, chattyTask, "after-restart", execSpec(t, s, chatty, "sh", "-c", "echo exec; exit 4"), "")
	switch {
	case err != nil || result.code != 4:
		t.Errorf("exec after restart: %+v, %v; want exit 4", result, err)
	case result.stdout != "exec\n":
		sc.shimFellShort("exec-output-lost-after-restart", fmt.Errorf("exec after restart printed %q, want %q", result.stdout, "exec\n"))
	}
	sc.figure("exec after restart", fmt.Sprintf("exit %d", result.code))
	chattyExit, err := chattyTask.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := chattyTask.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code := exitCodeOf(t, chattyExit)
	if code != 137 {
		t.Errorf("kill after restart: exit status %d, want 137", code)
	}
	if err := after.waitEOF(exitTimeout); err != nil {
		t.Errorf("chatty's stdout after its exit: %v", err)
	}
	deleteTask(t, s.ctx, chattyTask, code)
	s.daemon.AssertNoContainerTraces(t, s.ns, chattyID)

	lines, lost, err := checkNumberedLines(append(firstPart, after.stop()...))
	sc.figure("lines before containerd stopped", countLines(firstPart))
	sc.figure("lines delivered in all", lines)
	sc.figure("lines lost or repeated", lost)
	sc.shimFellShort("output-lost-across-outage", err)

	// Last, as its failure on our row is a known bug that ends the row.
	reportedExit(t, s, sc, quitterID, statuses[quitterID], quitterShim, exitEvents, exitErrs)
}

// reportedExit checks that the exit of container id, which happened while
// containerd was away, reaches a client afterwards with status 7.
//
// containerd 2.4 and 1.7 both, when they load a shim at start, ask it for the
// task's pids, and treat a shim whose task has none (both shims answer an
// empty list once the init has exited) as a leftover: they delete the task at
// once, and shut the shim down. The
// stopped task is then gone from `ctr task ls` and Wait, and the status is
// only reported by the events the shim sends (TaskExit, retried until
// containerd is back; TaskDelete, when containerd deletes the task). Either
// way of learning it counts; which one happened is recorded.
func reportedExit(t *testing.T, s *session, sc *scenario, id, listed string, shimPID int, envelopes <-chan *eventsEnvelope, errs <-chan error) {
	t.Helper()
	if listed != "" {
		if listed != "STOPPED" {
			t.Errorf("ctr task ls lists %s as %s after it exited, want STOPPED", id, listed)
		}
		task := reloadTask(t, s, id)
		exitCh, err := task.Wait(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		code := exitCodeOf(t, exitCh)
		sc.figure("exit status of the container that exited meanwhile", fmt.Sprintf("%d (from Wait)", code))
		if code != 7 {
			t.Errorf("exit while containerd was away: Wait reports %d, want 7", code)
		}
		deleteTask(t, s.ctx, task, code)
		return
	}
	sc.note("containerd no longer lists the task that exited while it was away (it deleted it when it loaded the shim); only an event can carry the status now")
	timeout := time.After(eventRetryWait)
	// Once the shim is gone, no event can come any more: only those
	// already on their way, which a short grace covers.
	shimGone := make(chan struct{})
	go func() {
		harness.WaitFor(eventRetryWait, func() error {
			if harness.IsAlive(shimPID) {
				return errors.New("shim alive")
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		close(shimGone)
	}()
	for {
		select {
		case envelope := <-envelopes:
			payload, err := typeurl.UnmarshalAny(envelope.Event)
			if err != nil {
				t.Fatal(err)
			}
			var status uint32
			switch e := payload.(type) {
			case *apievents.TaskExit:
				if e.ContainerID != id || e.ID != id {
					continue
				}
				status = e.ExitStatus
			case *apievents.TaskDelete:
				if e.ContainerID != id {
					continue
				}
				status = e.ExitStatus
			default:
				continue
			}
			sc.figure("exit status of the container that exited meanwhile", fmt.Sprintf("%d (from %s)", status, envelope.Topic))
			if status != 7 {
				t.Errorf("exit while containerd was away: %s reports %d, want 7", envelope.Topic, status)
			}
			return
		case err := <-errs:
			t.Fatalf("event subscription: %v", err)
		case <-shimGone:
			timeout = nil
			shimGone = nil
			sc.figure("exit status of the container that exited meanwhile", "never reported")
			err := fmt.Errorf("%s exited while containerd was away; after the restart containerd no longer lists it, "+
				"its shim (pid %d) is gone, and no /tasks/exit or /tasks/delete reached a subscriber", id, shimPID)
			sc.shimFellShort("exit-lost-across-restart", err)
			return
		case <-timeout:
			t.Fatalf("shim %d of %s still alive %v after the restart, and no event for it", shimPID, id, eventRetryWait)
		}
	}
}

// eventRetryWait outlasts a shim's retries of an event containerd did not
// take (pkg/shim retries after 1, 2, 3, 4, 5 and 6 s, 21 s in all) with room
// for a busy machine: the wait ends as soon as an event comes or the shim is
// gone, so only a shim that neither delivers nor exits waits it out.
const eventRetryWait = 2 * time.Minute

func orGone(status string) string {
	if status == "" {
		return "not listed"
	}
	return status
}

// checkNumberedLines checks output is "1 ...\n2 ...\n..." with no line
// missing, repeated or cut, and returns how many lines there are and how
// many numbers were skipped or repeated.
func checkNumberedLines(output []byte) (lines, lost int, err error) {
	var problems []string
	for i, line := range bytes.Split(bytes.TrimSuffix(output, []byte("\n")), []byte("\n")) {
		if len(output) == 0 {
			break
		}
		lines++
		number, rest, _ := bytes.Cut(line, []byte(" "))
		n, convErr := strconv.Atoi(string(number))
		switch {
		case convErr != nil || len(rest) != 1000:
			lost++
			problems = append(problems, fmt.Sprintf("line %d is cut or garbled (%d bytes)", i+1, len(line)))
		case n != i+1:
			lost++
			problems = append(problems, fmt.Sprintf("line %d carries number %d", i+1, n))
		}
		if len(problems) > 5 {
			break
		}
	}
	if len(output) > 0 && output[len(output)-1] != '\n' {
		problems = append(problems, "the output ends in the middle of a line")
	}
	if len(problems) > 0 {
		return lines, lost, errors.New(strings.Join(problems, "; "))
	}
	return lines, 0, nil
}

func countLines(b []byte) int { return bytes.Count(b, []byte("\n")) }

// ctrTaskStatuses is `ctr task ls`: task id → status.
func ctrTaskStatuses(t *testing.T, s *session) map[string]string {
	t.Helper()
	result := s.daemon.Ctr(t, s.ns, "task", "ls")
	if result.ExitCode != 0 {
		t.Fatalf("ctr task ls: exit %d: %s", result.ExitCode, result.Stderr)
	}
	statuses := map[string]string{}
	for _, line := range strings.Split(string(result.Stdout), "\n")[1:] {
		if fields := strings.Fields(line); len(fields) == 3 {
			statuses[fields[0]] = fields[2]
		}
	}
	return statuses
}

// reloadTask finds a task again through the daemon, as a client that
// started after the restart would.
func reloadTask(t *testing.T, s *session, id string) client.Task {
	t.Helper()
	container, err := s.client.LoadContainer(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := container.Task(s.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func logForestOnFailure(t *testing.T) {
	if t.Failed() {
		harness.LogProcessForest(t)
	}
}

var shimKilledScenario = scenarioSpec{
	name: "shim killed with SIGKILL",
	test: "TestReliabilityShimKilled",
	about: "A container runs; its shim is killed with SIGKILL. containerd notices the lost connection and runs " +
		"`<shim binary> delete`, which must kill the container and remove its runc state and rootfs mount; " +
		"the task must be reported stopped (TaskExit, status 137) and, once the client deletes it, no socket, " +
		"bundle file or process may be left.",
}

func TestReliabilityShimKilled(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		defer logForestOnFailure(t)
		sc := newScenario(t, shimKilledScenario, s)
		const id = "shim-killed"
		envelopes, errs := s.client.Subscribe(s.ctx, fmt.Sprintf(`namespace==%q,topic=="/tasks/exit"`, s.ns))
		container := s.newContainer(t, id, []string{"sleep", "1000"})
		task, _ := s.startTask(t, container, &stdio{})
		initPID := int(task.Pid())
		shimPID, err := harness.ParentPID(initPID)
		if err != nil {
			t.Fatal(err)
		}
		// The task socket, and the debug socket a shim started at debug
		// level may serve too.
		sockets, err := harness.ListeningSockets(shimPID)
		if err != nil || len(sockets) == 0 {
			t.Fatalf("shim %d listens on %v (%v), want its socket", shimPID, sockets, err)
		}
		if err := runningTaskTraces(s, id); err != nil {
			t.Fatalf("running task: %v", err)
		}

		if err := syscall.Kill(shimPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		harness.AssertProcessGone(t, shimPID, "killed shim")

		exit := awaitTaskExit(t, envelopes, errs, id)
		sc.figure("TaskExit after the shim died", fmt.Sprintf("pid=%d status=%d", exit.Pid, exit.ExitStatus))
		if exit.ExitStatus != 137 {
			t.Errorf("TaskExit status %d, want 137", exit.ExitStatus)
		}
		harness.AssertProcessGone(t, initPID, "container of the killed shim")

		// A socket left behind is removed once looked at, so that runs of
		// this test do not pile them up on the machine: its shim is dead.
		t.Cleanup(func() {
			for _, socket := range sockets {
				os.Remove(socket)
			}
		})
		checks := []struct{ what, path string }{{"runc state", harness.RuncStateDir(s.ns, id)}}
		for _, socket := range sockets {
			checks = append(checks, struct{ what, path string }{"shim socket", socket})
		}
		var left []string
		for _, c := range checks {
			if err := harness.WaitFor(s.settleTimeout(), func() error { return harness.PathGone(c.path) }); err != nil {
				left = append(left, c.what+": "+err.Error())
			}
		}
		if mounts, _ := harness.MountsUnder(s.daemon.BundleDir(s.ns, id)); len(mounts) > 0 {
			left = append(left, fmt.Sprintf("rootfs still mounted: %v", mounts))
		}

		status, err := task.Status(s.ctx)
		switch {
		case errdefs.IsNotFound(err):
			sc.figure("task after the shim died", "gone (containerd dropped it after the shim's delete)")
		default:
			sc.figure("task after the shim died", fmt.Sprintf("%s (%v)", status.Status, errOrOK(err)))
		}
		if err == nil && status.Status != client.Stopped {
			left = append(left, fmt.Sprintf("task status %s after its shim died, want stopped", status.Status))
		}
		if _, err := task.Delete(s.ctx); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("delete the task of a dead shim: %v", err)
		}
		if err := harness.WaitFor(s.settleTimeout(), func() error { return s.daemon.ContainerTraces(s.ns, id) }); err != nil {
			left = append(left, err.Error())
		}
		if shims, _ := harness.ShimsOf(s.daemon.Address); containsPID(shims, shimPID) {
			left = append(left, "the killed shim is still listed")
		}
		sc.figure("traces left", len(left))
		if len(left) > 0 {
			err := errors.New(strings.Join(left, "; "))
			sc.shimFellShort("shim-delete-leaves-socket", err)
		}
	})
}

type eventsEnvelope = events.Envelope

func containsPID(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// awaitTaskExit waits for the /tasks/exit event of container id's init.
func awaitTaskExit(t *testing.T, envelopes <-chan *eventsEnvelope, errs <-chan error, id string) *apievents.TaskExit {
	t.Helper()
	timeout := time.After(exitTimeout)
	for {
		select {
		case envelope := <-envelopes:
			payload, err := typeurl.UnmarshalAny(envelope.Event)
			if err != nil {
				t.Fatal(err)
			}
			if exit, ok := payload.(*apievents.TaskExit); ok && exit.ContainerID == id && exit.ID == id {
				return exit
			}
		case err := <-errs:
			t.Fatalf("event subscription: %v", err)
		case <-timeout:
			t.Fatalf("no /tasks/exit for %s within %v", id, exitTimeout)
		}
	}
}

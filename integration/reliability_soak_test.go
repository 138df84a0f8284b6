package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

var soakScenario = scenarioSpec{
	name: "create/start/exec/kill/delete soak",
	test: "TestReliabilitySoak",
	about: "Cycles of a whole task life: create (a new shim), start `sleep 1000`, exec `sh -c 'exit 3'`, kill with " +
		"SIGKILL, delete; then cycles of exec start/kill/delete in one long-lived container. Afterwards nothing may be " +
		"left: no process, zombie, mount, FIFO, socket, runc state or bundle of the cycles; and the long-lived shim's " +
		"descriptors, pidfds and goroutines must be back at their baseline (memory within 8 MiB). A cycle's shim must hold no " +
		"more descriptors (pidfds included) than the first cycle's did; the shim must log no event out of order.",
}

func TestReliabilitySoak(t *testing.T) {
	forEachDaemonWithTeach(t, func(t *testing.T, s *session) {
		s.withTimeout(t, 2*time.Hour)
		sc := newScenario(t, soakScenario, s)
		t.Run("task cycles", func(t *testing.T) { taskCycles(t, s, sc, sized(40, 2000)) })
		t.Run("exec cycles", func(t *testing.T) { execCycles(t, s, sc, sized(100, 2000)) })
		sc.checkShimEventOrder(s)
	})
}

// taskCycles runs whole task lives in one container, then looks for what
// they left.
func taskCycles(t *testing.T, s *session, sc *scenario, cycles int) {
	const id = "soak"
	container := s.newContainer(t, id, []string{"sleep", "1000"})
	var (
		processes    []harness.ProcessInfo // every init, exec and shim the cycles had
		sockets      []string              // every shim socket
		firstFDs     int
		firstFDList  []harness.OpenFD
		extraFDs     int
		transientFDs int // cycles where a descriptor more went away again
		exitsLost    int
		zombies      int
	)
	started := time.Now()
	for cycle := range cycles {
		task, initExit, err := s.startTaskE(container, &stdio{})
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		shimPID, err := harness.ParentPID(int(task.Pid()))
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		socketPaths, _ := harness.ListeningSockets(shimPID)
		sockets = append(sockets, socketPaths...)
		processes = seen(processes, int(task.Pid()), shimPID)

		process, err := task.Exec(s.ctx, "probe", execSpec(t, s, container, "sh", "-c", "exit 3"), cio.NewCreator())
		if err != nil {
			t.Fatalf("cycle %d: exec: %v", cycle, err)
		}
		execExit, err := process.Wait(s.ctx)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if err := process.Start(s.ctx); err != nil {
			t.Fatalf("cycle %d: start exec: %v", cycle, err)
		}
		processes = seen(processes, int(process.Pid()))
		if code, err := awaitExit(execExit, exitTimeout); err != nil || code != 3 {
			exitsLost++
			t.Errorf("cycle %d: exec exit %d, %v; want 3", cycle, code, err)
		}
		if _, err := process.Delete(s.ctx); err != nil {
			t.Fatalf("cycle %d: delete exec: %v", cycle, err)
		}
		// The shim reaps its children itself: none may stay a zombie.
		if err := harness.WaitFor(s.settleTimeout(), func() error {
			if z, _ := harness.ZombieChildren(shimPID); len(z) > 0 {
				return fmt.Errorf("zombie children %v", z)
			}
			return nil
		}); err != nil {
			zombies++
			t.Errorf("cycle %d: shim %d: %v", cycle, shimPID, err)
		}
		// A cycle's shim holds what the first cycle's did, pidfds
		// included: the init's while it runs, none of runc's. A
		// connection being opened or closed (containerd's, the event
		// publisher's) can add one for a moment; a leak stays.
		var fds []harness.OpenFD
		var wentUp bool
		err = harness.WaitFor(s.settleTimeout(), func() error {
			var err error
			fds, err = harness.OpenFDs(shimPID)
			if err != nil {
				return err
			}
			if cycle > 0 && len(fds) > firstFDs {
				wentUp = true
				return fmt.Errorf("%d descriptors, the first cycle's shim %d", len(fds), firstFDs)
			}
			return nil
		})
		switch {
		case cycle == 0:
			firstFDs = len(fds)
			firstFDList = fds
		case err != nil:
			extraFDs = max(extraFDs, len(fds)-firstFDs)
			t.Errorf("cycle %d: shim %d: %v; new: %v", cycle, shimPID, err, newFDs(firstFDList, fds))
		case wentUp:
			transientFDs++
		}

		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatalf("cycle %d: kill: %v", cycle, err)
		}
		code, err := awaitExit(initExit, exitTimeout)
		if err != nil || code != 137 {
			exitsLost++
			t.Errorf("cycle %d: init exit %d, %v; want 137", cycle, code, err)
		}
		if err := deleteTaskE(s.ctx, task, code); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if t.Failed() && cycle > 10 {
			t.Fatalf("stopping after %d cycles with failures", cycle+1)
		}
	}
	elapsed := time.Since(started)

	leaks := soakLeaks(t, s, id, processes, sockets)
	sc.figure("task cycles", cycles)
	sc.figure("task cycles per second", fmt.Sprintf("%.1f", float64(cycles)/elapsed.Seconds()))
	sc.figure("exits lost or wrong", exitsLost)
	sc.figure("zombies left by a shim", zombies)
	sc.figure("extra descriptors in a cycle's shim", extraFDs)
	sc.figure("cycles with a descriptor that came and went", transientFDs)
	for _, leak := range leaks {
		sc.figure("leaked "+leak.what, len(leak.found))
		if len(leak.found) > 0 {
			t.Errorf("leaked %s after %d cycles:\n%s", leak.what, cycles, joinLines(leak.found))
		}
	}
}

type leak struct {
	what  string
	found []string
}

// seen adds the processes behind pids, as they are now, to those the cycles
// had. A process already gone cannot be left over, and is not added.
func seen(processes []harness.ProcessInfo, pids ...int) []harness.ProcessInfo {
	for _, pid := range pids {
		if info, err := harness.ReadProcess(pid); err == nil {
			processes = append(processes, info)
		}
	}
	return processes
}

// soakLeaks looks, after the cycles, for everything they could have left.
// Processes are polled for: PID 1 here reaps orphans seconds late, and a
// zombie waiting for it is not a leak. A process is one of the cycles' only
// if it started when the cycle saw it: thousands of cycles on a shared
// machine hand their pids out again, to other people's processes.
func soakLeaks(t *testing.T, s *session, id string, seenProcesses []harness.ProcessInfo, sockets []string) []leak {
	t.Helper()
	var processes, zombies []string
	for _, then := range seenProcesses {
		if err := harness.WaitFor(s.settleTimeout(), func() error {
			if harness.StillRunning(then) {
				return errors.New(harness.DescribeProcess(then.PID))
			}
			return nil
		}); err != nil {
			processes = append(processes, err.Error())
		}
	}
	// A zombie whose parent is still one of ours (not PID 1) is one that
	// nobody will ever reap.
	ours := map[int]harness.ProcessInfo{}
	for _, p := range seenProcesses {
		ours[p.PID] = p
	}
	if procs, err := harness.AllProcesses(); err == nil {
		for _, p := range procs {
			if parent, ok := ours[p.PPID]; ok && p.IsZombie() && harness.StillRunning(parent) {
				zombies = append(zombies, harness.DescribeProcess(p.PID))
			}
		}
	}
	var mounts []string
	if found, err := harness.MountsUnder(filepath.Join(s.daemon.StateDir, "io.containerd.runtime.v2.task", s.ns)); err == nil {
		for _, m := range found {
			mounts = append(mounts, m.MountPoint)
		}
	}
	fifos, _ := harness.FilesUnder(s.daemon.FIFODir)
	var leftSockets []string
	for _, socket := range sockets {
		if harness.PathGone(socket) != nil {
			leftSockets = append(leftSockets, socket)
		}
	}
	var state []string
	for _, dir := range []string{harness.RuncStateDir(s.ns, id), s.daemon.BundleDir(s.ns, id)} {
		if _, err := os.Lstat(dir); err == nil {
			state = append(state, dir)
		}
	}
	return []leak{
		{"processes", processes},
		{"zombies", zombies},
		{"mounts", mounts},
		{"FIFOs", fifos},
		{"sockets", leftSockets},
		{"runc state or bundles", state},
	}
}

// execCycles starts, kills and deletes exec processes in one container,
// and compares its shim before and after.
func execCycles(t *testing.T, s *session, sc *scenario, cycles int) {
	container, task, _ := s.runningTask(t, "soak-execs")
	shimPID, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runExec(s, task, "warm-up", execSpec(t, s, container, "true"), ""); err != nil {
		t.Fatal(err)
	}
	baseline := measureShim(t, s, shimPID)
	var lost int
	spec := execSpec(t, s, container, "sleep", "1000")
	for cycle := range cycles {
		streams := &stdio{}
		process, err := task.Exec(s.ctx, fmt.Sprintf("c%d", cycle), spec, cio.NewCreator(cio.WithStreams(nil, &streams.stdout, &streams.stderr)))
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		exitCh, err := process.Wait(s.ctx)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if err := process.Start(s.ctx); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if err := process.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatalf("cycle %d: kill: %v", cycle, err)
		}
		if code, err := awaitExit(exitCh, exitTimeout); err != nil || code != 137 {
			lost++
			t.Errorf("cycle %d: exit %d, %v; want 137", cycle, code, err)
		}
		if _, err := process.Delete(s.ctx); err != nil {
			t.Fatalf("cycle %d: delete: %v", cycle, err)
		}
		if t.Failed() && cycle > 10 {
			t.Fatalf("stopping after %d cycles with failures", cycle+1)
		}
	}
	after, settleErr := backToBaseline(t, s, shimPID, baseline)
	zombies, _ := harness.ZombieChildren(shimPID)
	sc.figure("exec cycles in one shim", cycles)
	sc.figure("exec exits lost or wrong", lost)
	sc.figure("long-lived shim before", baseline.String())
	sc.figure("long-lived shim after", after.String())
	sc.figure("zombie children of the long-lived shim", len(zombies))
	if settleErr != nil {
		t.Errorf("the shim did not come back to its baseline after %d exec cycles: %v", cycles, settleErr)
	}
	if len(zombies) > 0 {
		t.Errorf("zombie children of the shim: %v", zombies)
	}
}

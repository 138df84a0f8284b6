package integration

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Load: many exits at once, exits that race with Start, output nobody
// reads. These rows measure our shim; the stock shim has nothing to prove
// here, and its rows would only double the time.

var earlyExitScenario = scenarioSpec{
	name: "early exits",
	test: "TestReliabilityEarlyExits",
	about: "A container whose process exits before Start has returned (`sh -c 'exit N'`, N cycling through 0, 1, 3 and 42), " +
		"run again and again as a new task; then execs that exit at once (`sh -c 'exit N'`, N = i mod 50), one after another " +
		"in one container. Every exit must be reported (no Wait left hanging) with its own status.",
}

func TestReliabilityEarlyExits(t *testing.T) {
	forEachDaemonWithTeach(t, func(t *testing.T, s *session) {
		s.withTimeout(t, time.Hour)
		sc := newScenario(t, earlyExitScenario, s)
		t.Run("init", func(t *testing.T) { earlyInitExits(t, s, sc, sized(40, 1000)) })
		t.Run("exec", func(t *testing.T) { earlyExecExits(t, s, sc, sized(100, 1000)) })
		sc.checkShimEventOrder(s)
	})
}

func earlyInitExits(t *testing.T, s *session, sc *scenario, runs int) {
	codes := []uint32{0, 1, 3, 42}
	containers := make([]client.Container, len(codes))
	for i, code := range codes {
		containers[i] = s.newContainer(t, fmt.Sprintf("early-exit-%d", code), []string{"sh", "-c", fmt.Sprintf("exit %d", code)})
	}
	var lost, wrong int
	started := time.Now()
	for run := range runs {
		want := codes[run%len(codes)]
		task, exitCh, err := s.startTaskE(containers[run%len(codes)], &stdio{})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		code, err := awaitExit(exitCh, exitTimeout)
		switch {
		case err != nil:
			lost++
			t.Errorf("run %d: %v", run, err)
			task.Delete(s.ctx, client.WithProcessKill)
			continue
		case code != want:
			wrong++
			t.Errorf("run %d: exit status %d, want %d", run, code, want)
		}
		if err := deleteTaskE(s.ctx, task, code); err != nil {
			t.Errorf("run %d: %v", run, err)
		}
	}
	sc.figure("tasks that exited at once", runs)
	sc.figure("task exits lost", lost)
	sc.figure("task exits with a wrong status", wrong)
	sc.figure("task runs per second", fmt.Sprintf("%.1f", float64(runs)/time.Since(started).Seconds()))
}

func earlyExecExits(t *testing.T, s *session, sc *scenario, execs int) {
	container, task, _ := s.runningTask(t, "early-exec")
	var lost, wrong int
	started := time.Now()
	for i := range execs {
		want := uint32(i % 50)
		result, err := runExec(s, task, fmt.Sprintf("x%d", i), execSpec(t, s, container, "sh", "-c", fmt.Sprintf("exit %d", want)), "")
		switch {
		case err != nil:
			lost++
			t.Errorf("exec %d: %v", i, err)
		case result.code != want:
			wrong++
			t.Errorf("exec %d: exit status %d, want %d", i, result.code, want)
		}
	}
	sc.figure("execs that exited at once", execs)
	sc.figure("exec exits lost", lost)
	sc.figure("exec exits with a wrong status", wrong)
	sc.figure("execs per second", fmt.Sprintf("%.1f", float64(execs)/time.Since(started).Seconds()))
}

var concurrencyScenario = scenarioSpec{
	name: "concurrent execs and containers",
	test: "TestReliabilityConcurrency",
	about: "100 execs started at once in one container, each printing its number and exiting with its own status; " +
		"then 50 containers started at once, each with a shim of its own; then 50 started at once in one group (the " +
		"io.containerd.teach.v2.group annotation), sharing the shim of a member that outlives them. Every exit code and " +
		"output must be right; the exec shim's and the group shim's descriptors, pidfds, goroutines and memory must come " +
		"back to their baseline (descriptors and pidfds exactly, goroutines within " + fmt.Sprint(goroutineSlack) +
		", RSS within 8 MiB), and every ungrouped container's shim must exit once its task is deleted.",
}

func TestReliabilityConcurrency(t *testing.T) {
	forEachDaemonWithTeach(t, func(t *testing.T, s *session) {
		s.withTimeout(t, time.Hour)
		sc := newScenario(t, concurrencyScenario, s)
		t.Run("100 execs", func(t *testing.T) { concurrentExecs(t, s, sc, 100, sized(1, 5)) })
		t.Run("50 containers", func(t *testing.T) { concurrentContainers(t, s, sc, 50, "") })
		t.Run("50 containers in one group", func(t *testing.T) { concurrentContainers(t, s, sc, 50, "crowd") })
		sc.checkShimEventOrder(s)
	})
}

func concurrentExecs(t *testing.T, s *session, sc *scenario, execs, rounds int) {
	container, task, _ := s.runningTask(t, "exec-load")
	shimPID, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	// A first exec sets up what is set up once (connections, pools).
	if _, err := runExec(s, task, "warm-up", execSpec(t, s, container, "true"), ""); err != nil {
		t.Fatal(err)
	}
	baseline := measureShim(t, s, shimPID)
	sampler := sampleRSS(shimPID)
	var failures int
	for round := range rounds {
		errs := make(chan error, execs)
		var wg sync.WaitGroup
		for i := range execs {
			wg.Go(func() {
				want := uint32(i % 50)
				spec := execSpec(t, s, container, "sh", "-c", fmt.Sprintf("echo %d; exit %d", i, want))
				result, err := runExec(s, task, fmt.Sprintf("r%d-e%d", round, i), spec, "")
				switch {
				case err != nil:
					errs <- err
				case result.code != want || result.stdout != fmt.Sprintf("%d\n", i):
					errs <- fmt.Errorf("exec %d: code %d, stdout %q; want %d", i, result.code, result.stdout, want)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			failures++
			t.Error(err)
		}
	}
	peak := sampler.Stop()
	after, settleErr := backToBaseline(t, s, shimPID, baseline)
	sc.figure("concurrent execs", fmt.Sprintf("%d × %d", rounds, execs))
	sc.figure("execs with a wrong status or output", failures)
	sc.figure("exec shim at baseline", baseline.String())
	sc.figure("exec shim peak RSS", harness.MiB(peak))
	sc.figure("exec shim after", after.String())
	if settleErr != nil {
		t.Errorf("the shim did not come back to its baseline after %d execs: %v", rounds*execs, settleErr)
	}
}

// groupAnnotation puts containers in one shim (shim/group.go).
const groupAnnotation = "io.containerd.teach.v2.group"

// concurrentContainers starts n containers at once, each with its own shim,
// or, with a group, all in the shim of a group member that outlives them.
func concurrentContainers(t *testing.T, s *session, sc *scenario, n int, group string) {
	prefix := "crowd"
	var opts []client.NewContainerOpts
	var groupShim int
	var baseline shimFigures
	if group != "" {
		prefix = group + "-member"
		opts = append(opts, withSpecOpts(oci.WithAnnotations(map[string]string{groupAnnotation: group})))
		groupShim, baseline = startGroup(t, s, group, opts)
	}
	type row struct {
		task    client.Task
		exitCh  <-chan client.ExitStatus
		streams *stdio
		shim    int
	}
	rows := make([]row, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("%s-%02d", prefix, i)
			script := fmt.Sprintf(`trap "exit %d" TERM; echo %s; while true; do sleep 0.1; done`, i, id)
			container, err := s.createContainer(id, []string{"sh", "-c", script}, opts...)
			if err != nil {
				errs[i] = err
				return
			}
			t.Cleanup(func() { removeContainer(s.ctx, container) })
			rows[i].streams = &stdio{}
			rows[i].task, rows[i].exitCh, errs[i] = s.startTaskE(container, rows[i].streams)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// All of them run at once now, until SIGTERM: look at their shims.
	var peak int64
	for i := range rows {
		shim, err := harness.ParentPID(int(rows[i].task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		rows[i].shim = shim
		if group != "" && shim != groupShim {
			t.Errorf("%s-%02d: shim %d, the group's is %d", prefix, i, shim, groupShim)
		}
		if status, err := harness.ReadProcessStatus(shim); err == nil {
			peak = max(peak, status.RSS)
		}
	}
	for i := range rows {
		waitForOutput(t, rows[i].streams, fmt.Sprintf("%s-%02d\n", prefix, i))
	}
	for i := range rows {
		wg.Go(func() { errs[i] = rows[i].task.Kill(s.ctx, syscall.SIGTERM) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var wrong int
	for i := range rows {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		code, err := awaitExit(rows[i].exitCh, exitTimeout)
		if err == nil {
			err = deleteTaskE(s.ctx, rows[i].task, code)
		}
		switch {
		case err != nil:
			wrong++
			t.Errorf("%s: %v", id, err)
		case code != uint32(i) || rows[i].streams.stdout.String() != id+"\n":
			wrong++
			t.Errorf("%s: exit %d, stdout %q; want %d and %q", id, code, rows[i].streams.stdout.String(), i, id+"\n")
		}
	}
	if group == "" {
		for i := range rows {
			harness.AssertProcessGone(t, rows[i].shim, "shim of a deleted task")
		}
		sc.figure("containers at once", n)
		sc.figure("containers with a wrong status or output", wrong)
		sc.figure("largest shim RSS among them", harness.MiB(peak))
		return
	}
	after, settleErr := backToBaseline(t, s, groupShim, baseline)
	sc.figure("containers at once in one group", n)
	sc.figure("grouped containers with a wrong status or output", wrong)
	sc.figure("group shim at baseline", baseline.String())
	sc.figure("group shim peak RSS", harness.MiB(peak))
	sc.figure("group shim after", after.String())
	if settleErr != nil {
		t.Errorf("the group's shim did not come back to its baseline after %d containers: %v", n, settleErr)
	}
}

// startGroup starts the group's long-lived member, and a member that lives
// and dies at once so that what the shim sets up once is in the baseline;
// it returns the group's shim and its figures then.
func startGroup(t *testing.T, s *session, group string, opts []client.NewContainerOpts) (int, shimFigures) {
	t.Helper()
	anchor := s.newContainer(t, group+"-anchor", []string{"sleep", "1000"}, opts...)
	task, _ := s.startTask(t, anchor, &stdio{})
	shim, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	warmUp := s.newContainer(t, group+"-warm-up", []string{"true"}, opts...)
	warmTask, warmExit := s.startTask(t, warmUp, &stdio{})
	deleteTask(t, s.ctx, warmTask, exitCodeOf(t, warmExit))
	return shim, measureShim(t, s, shim)
}

var backPressureScenario = scenarioSpec{
	name: "stdout back-pressure",
	test: "TestReliabilityBackPressure",
	about: "A container writes a large amount to stdout while the test reads it slowly; another writes forever and its " +
		"reader goes away after 1 MiB. The shim must buffer a bounded amount (RSS at most 32 MiB above its baseline), " +
		"deliver every byte to the slow reader, and still kill the abandoned writer promptly.",
}

// backPressureBound is how much more memory the shim may hold while the
// container writes faster than anyone reads.
const backPressureBound = 32 << 20

func TestReliabilityBackPressure(t *testing.T) {
	forEachDaemonWithTeach(t, func(t *testing.T, s *session) {
		s.withTimeout(t, time.Hour)
		sc := newScenario(t, backPressureScenario, s)
		t.Run("slow reader", func(t *testing.T) {
			mib := sized(32, 1024)
			slowReader(t, s, sc, int64(mib)<<20, int64(sized(16, 64))<<20)
		})
		t.Run("reader goes away", func(t *testing.T) { readerGoesAway(t, s, sc) })
	})
}

func slowReader(t *testing.T, s *session, sc *scenario, total, rate int64) {
	const id = "firehose"
	blocks := total / (64 << 10)
	container := s.newContainer(t, id, []string{"sh", "-c", fmt.Sprintf("dd if=/dev/zero bs=65536 count=%d 2>/dev/null", blocks)})
	fifos := newClientFIFOs(t, s, id)
	reader := readFIFO(t, fifos.stdout, false, rate)
	readFIFO(t, fifos.stderr, false, 0)
	task, err := container.NewTask(s.ctx, fifos.creator())
	if err != nil {
		t.Fatal(err)
	}
	shimPID, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	baseline, err := harness.ReadProcessStatus(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	sampler := sampleRSS(shimPID)
	exitCh, err := task.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := task.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	timeout := time.Duration(total/rate)*time.Second*3 + exitTimeout
	if err := reader.waitEOF(timeout); err != nil {
		t.Fatal(err)
	}
	code, err := awaitExit(exitCh, exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	peak := sampler.Stop()
	deleteTask(t, s.ctx, task, code)
	sc.figure("bytes written", harness.MiB(total))
	sc.figure("bytes read by the slow reader", harness.MiB(reader.bytes()))
	sc.figure("reader rate", harness.MiB(rate)+"/s")
	sc.figure("took", time.Since(started).Round(100*time.Millisecond))
	sc.figure("shim RSS at start / peak", harness.MiB(baseline.RSS)+" / "+harness.MiB(peak))
	if reader.bytes() != total || code != 0 {
		t.Errorf("read %d bytes of %d, exit status %d", reader.bytes(), total, code)
	}
	if peak-baseline.RSS > backPressureBound {
		t.Errorf("the shim's RSS grew from %s to %s while a slow reader read", harness.MiB(baseline.RSS), harness.MiB(peak))
	}
}

func readerGoesAway(t *testing.T, s *session, sc *scenario) {
	const id = "abandoned-writer"
	container := s.newContainer(t, id, []string{"sh", "-c", "cat /dev/zero"})
	fifos := newClientFIFOs(t, s, id)
	reader := readFIFO(t, fifos.stdout, false, 0)
	readFIFO(t, fifos.stderr, false, 0)
	task, err := container.NewTask(s.ctx, fifos.creator())
	if err != nil {
		t.Fatal(err)
	}
	shimPID, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	baseline, err := harness.ReadProcessStatus(shimPID)
	if err != nil {
		t.Fatal(err)
	}
	sampler := sampleRSS(shimPID)
	exitCh, err := task.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, readyTimeout, "the first MiB", func() error {
		if reader.bytes() < 1<<20 {
			return fmt.Errorf("%d bytes", reader.bytes())
		}
		return nil
	})
	reader.stop()
	time.Sleep(3 * time.Second) // the writer blocks; nothing may pile up

	killed := time.Now()
	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code, err := awaitExit(exitCh, exitTimeout)
	if err != nil {
		t.Fatalf("kill of a writer nobody reads: %v", err)
	}
	tookToExit := time.Since(killed)
	peak := sampler.Stop()
	deleteTask(t, s.ctx, task, code)
	s.daemon.AssertNoContainerTraces(t, s.ns, id)
	sc.figure("kill of the abandoned writer", fmt.Sprintf("exit %d after %v", code, tookToExit.Round(100*time.Millisecond)))
	if tookToExit > 4*time.Second {
		sc.note("the exit of a writer nobody reads is reported only after the shim's output drain limit (5 s): its relay is blocked writing into the full FIFO")
	}
	sc.figure("shim RSS at start / peak (abandoned)", harness.MiB(baseline.RSS)+" / "+harness.MiB(peak))
	if code != 137 {
		t.Errorf("exit status %d, want 137", code)
	}
	if peak-baseline.RSS > backPressureBound {
		t.Errorf("the shim's RSS grew from %s to %s with nobody reading", harness.MiB(baseline.RSS), harness.MiB(peak))
	}
}

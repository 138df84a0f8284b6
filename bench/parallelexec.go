package main

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
	"github.com/teach/containerd-shim-teach-v2/process"
)

// Parallel exec: N clients exec into one container at the same moment, as a
// health check fired at every container of a pod, or a `kubectl exec` fan-out,
// does. Each exec is the exec phase's round (Exec, Wait, Start, the exit of
// /bin/true with status 0, Delete); the measure is the wall time from the
// moment all N are let go until the last one is deleted. One shim serves all
// N, so what it does while holding a lock, or one runc call at a time, shows
// here and not in the exec phase, where execs come one after another.

// parallelExecTarget is the issue's: our shim in at most 0.8 of the stock
// shim's wall time.
const parallelExecTarget = 0.8

// measureParallelExec runs, for each n in counts, rounds of n concurrent
// execs into one running container per shim, the shims alternating round by
// round. It returns the rounds' wall times by n, then by shim.
func (s *session) measureParallelExec(counts []int, warmup, rounds int) map[int]map[string]durations {
	tasks, process, stop := s.execTargets("parallel-exec")
	defer stop()
	results := make(map[int]map[string]durations)
	for _, n := range counts {
		what := fmt.Sprintf("parallel exec ×%d", n)
		var alone durations
		results[n] = s.interleave(what, warmup, rounds, func(shim shimUnderTest, round int) (time.Duration, error) {
			took, err := s.parallelExecRound(tasks[shim.label], n, fmt.Sprintf("par%d-%d", n, round), process)
			if err != nil || shim.label != ours {
				return took, err
			}
			// runc alone, right after our shim's round, on the same
			// container and in the same conditions.
			floor, err := s.runcAloneRound(tasks[ours].ID(), n)
			if round >= warmup {
				alone = append(alone, floor)
			}
			return took, err
		})
		results[n][runcAlone] = alone
	}
	return results
}

// runcAlone is the key of the floor's samples: n `runc exec` at once,
// straight into the container, with neither containerd nor a shim. Every
// exec through a shim runs one such command, so no shim's wall time for n
// parallel execs can be below it, and runc alone ÷ the stock shim is the
// best ratio any shim could reach.
const runcAlone = "runc alone"

// runcAloneRound runs n `runc exec <id> /bin/true` at once, each waiting for
// /bin/true's exit as runc does when not detached, and returns the time
// until the last has ended.
func (s *session) runcAloneRound(id string, n int) (time.Duration, error) {
	runc := harness.ToolBinary(s.tb, "runc", "runc")
	root := filepath.Join(process.DefaultRuncRoot, s.ns)
	return allAtOnce(n, func(int) error {
		if out, err := exec.Command(runc, "--root", root, "exec", id, "/bin/true").CombinedOutput(); err != nil {
			return fmt.Errorf("runc exec: %w: %s", err, out)
		}
		return nil
	})
}

// parallelExecRound runs n execs into task at once (allAtOnce).
func (s *session) parallelExecRound(task client.Task, n int, prefix string, process *specs.Process) (time.Duration, error) {
	return allAtOnce(n, func(i int) error {
		_, err := s.execRound(task, fmt.Sprintf("%s-%d", prefix, i), process)
		return err
	})
}

// allAtOnce starts n goroutines, each ready to run job, lets them go at
// once and returns the time until the last has finished. The clock starts
// when they are let go, not while they are being made.
func allAtOnce(n int, job func(i int) error) (time.Duration, error) {
	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		errs        = make([]error, n)
	)
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = job(i)
		}()
	}
	ready.Wait()
	began := time.Now()
	close(start)
	done.Wait()
	return time.Since(began), errors.Join(errs...)
}

// parallelExecRows are the table's rows: one per n, the medians of the
// rounds' wall times.
func (r *results) parallelExecRows() []row {
	counts := make([]int, 0, len(r.parallelExec))
	for n := range r.parallelExec {
		counts = append(counts, n)
	}
	slices.Sort(counts)
	var rows []row
	for _, n := range counts {
		o, t := r.parallelExec[n][ours], r.parallelExec[n][theirs]
		rows = append(rows, atMost(fmt.Sprintf("%d parallel execs of /bin/true into one container: wall time, median of %d", n, len(o)),
			"ms", ms(o.median()), ms(t.median()), parallelExecTarget))
		if alone := r.parallelExec[n][runcAlone]; len(alone) > 0 {
			floor := ms(alone.median())
			rows = append(rows, info(fmt.Sprintf("%d parallel execs: wall time ÷ %d `runc exec` at once with no containerd and no shim (%s, the floor)", n, n, format(floor, "ms")),
				"×", ms(o.median())/floor, ms(t.median())/floor))
		}
	}
	return rows
}

package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// interleave runs one step per shim, shim after shim, iterations times after
// warmup unmeasured rounds. Alternating round by round spreads whatever else
// the machine does (a GC in containerd, a kernel flush) evenly over both
// shims, where measuring one shim and then the other would charge it to one.
// Which shim goes first alternates too: a step can be much faster for
// following another closely. On this project's test machine `runc exec`
// took 14.5 ms (median) back to back and 35 ms when 100 ms apart, idle or
// busy in between; most likely the cgroup v1 migration every runc create and
// exec does, which need not wait for an RCU grace period when another
// migration has just waited for one. Whoever goes second in a round must not
// always be the same shim.
func (s *session) interleave(what string, warmup, iterations int, step func(shim shimUnderTest, round int) (time.Duration, error)) map[string]durations {
	samples := make(map[string]durations)
	for round := -warmup; round < iterations; round++ {
		for _, shim := range roundOrder(s.shims, round) {
			if err := s.ctx.Err(); err != nil {
				s.tb.Fatalf("%s: %v", what, err)
			}
			took, err := step(shim, round+warmup)
			if err != nil {
				s.tb.Fatalf("%s, %s, round %d: %v", what, shim.label, round+warmup, err)
			}
			if round >= 0 {
				samples[shim.label] = append(samples[shim.label], took)
			}
		}
		progress(what, round+warmup+1, warmup+iterations)
	}
	return samples
}

// roundOrder is the shims in the order they take their turn in round:
// reversed every other round.
func roundOrder(shims []shimUnderTest, round int) []shimUnderTest {
	if round%2 == 0 {
		return shims
	}
	reversed := slices.Clone(shims)
	slices.Reverse(reversed)
	return reversed
}

// step is one part of a measured round, timed on its own as well: a
// difference between the shims in a round's total is then found in one step.
type step struct {
	name string // the key in the samples
	what string // the step table's first column
}

var lifecycleSteps = []step{
	{"create", "create: NewTask and Wait (shim start, runc create)"},
	{"start", "start: Start (runc start)"},
	{"exit", "exit: until the exit status arrives"},
	{"delete", "delete: Delete (runc delete, shim shutdown)"},
}

var execSteps = []step{
	{"exec", "exec: Exec and Wait (the shim records the process)"},
	{"start", "start: Start (runc exec)"},
	{"exit", "exit: until the exit status arrives"},
	{"delete", "delete: Delete (the shim forgets the process)"},
}

// stepSamples are the durations of each step, per shim and step name.
type stepSamples map[string]map[string]durations

// interleaveSteps is interleave for a round made of steps: round returns the
// time before each step and after the last. It returns the rounds' totals
// and each step's durations.
func (s *session) interleaveSteps(what string, steps []step, warmup, iterations int, round func(shim shimUnderTest, n int) ([]time.Time, error)) (map[string]durations, stepSamples) {
	samples := make(stepSamples)
	for _, shim := range s.shims {
		samples[shim.label] = make(map[string]durations)
	}
	totals := s.interleave(what, warmup, iterations, func(shim shimUnderTest, n int) (time.Duration, error) {
		marks, err := round(shim, n)
		if err != nil {
			return 0, err
		}
		if len(marks) != len(steps)+1 {
			return 0, fmt.Errorf("%s: %d marks for %d steps", what, len(marks), len(steps))
		}
		if n >= warmup {
			for i, st := range steps {
				samples[shim.label][st.name] = append(samples[shim.label][st.name], marks[i+1].Sub(marks[i]))
			}
		}
		return marks[len(marks)-1].Sub(marks[0]), nil
	})
	return totals, samples
}

// measureLifecycle times the whole life of a short task as a client lives
// it: create the task (containerd starts a shim, the shim runs runc create),
// start it, wait for /bin/true's exit, delete the task (the shim exits).
// Each shim gets one container, reused for every task, so the snapshot work
// containerd does for a new container is not in the figure.
func (s *session) measureLifecycle(warmup, iterations int) (map[string]durations, stepSamples) {
	containers := make(map[string]client.Container)
	for _, shim := range s.shims {
		containers[shim.label] = s.newContainer(shim, "lifecycle-"+shim.label, []string{"/bin/true"})
	}
	return s.interleaveSteps("lifecycle", lifecycleSteps, warmup, iterations, func(shim shimUnderTest, _ int) ([]time.Time, error) {
		return s.lifecycleRound(containers[shim.label])
	})
}

// lifecycleRound runs one task of container through its life: create,
// start, the exit of /bin/true, delete. It returns the time before each step
// and after the last.
func (s *session) lifecycleRound(container client.Container) ([]time.Time, error) {
	return s.processRound("task", func(ctx context.Context) (client.Process, error) {
		return container.NewTask(ctx, s.discardIO(nil))
	})
}

// measureExec times `exec /bin/true` in a running container: register the
// exec process, start it, wait for its exit, delete it.
func (s *session) measureExec(warmup, iterations int) (map[string]durations, stepSamples) {
	tasks, process, stop := s.execTargets("exec")
	defer stop()
	return s.interleaveSteps("exec", execSteps, warmup, iterations, func(shim shimUnderTest, round int) ([]time.Time, error) {
		return s.execRound(tasks[shim.label], fmt.Sprintf("true-%d", round), process)
	})
}

// execTargets starts one sleeping container per shim, <name>-<shim>, for a
// phase to exec into, and returns their tasks by shim, the process that
// runs /bin/true in them, and stop, which kills and deletes the tasks (the
// run's cleanup removes what a failed phase left).
func (s *session) execTargets(name string) (map[string]client.Task, *specs.Process, func()) {
	tasks := make(map[string]client.Task)
	for _, shim := range s.shims {
		container := s.newContainer(shim, name+"-"+shim.label, []string{"sleep", "1000000"})
		task, _, err := s.startTask(s.ctx, container, s.discardIO(nil))
		if err != nil {
			s.tb.Fatal(err)
		}
		tasks[shim.label] = task
	}
	spec, err := tasks[s.shims[0].label].Spec(s.ctx)
	if err != nil {
		s.tb.Fatal(err)
	}
	process := *spec.Process
	process.Args = []string{"/bin/true"}
	stop := func() {
		for _, task := range tasks {
			task.Delete(s.ctx, client.WithProcessKill)
		}
	}
	return tasks, &process, stop
}

// execRound runs one exec process in task through its life: exec, start,
// the exit of /bin/true, delete. It returns the time before each step and
// after the last.
func (s *session) execRound(task client.Task, id string, process *specs.Process) ([]time.Time, error) {
	return s.processRound("exec", func(ctx context.Context) (client.Process, error) {
		return task.Exec(ctx, id, process, s.discardIO(nil))
	})
}

// processRound is the life both rounds time, for a task or an exec process
// alike: create it (and ask for its exit), start it, wait for the exit of
// /bin/true, delete it.
func (s *session) processRound(kind string, create func(ctx context.Context) (client.Process, error)) ([]time.Time, error) {
	ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
	defer cancel()
	var marks []time.Time
	mark := func() { marks = append(marks, time.Now()) }
	mark()
	p, err := create(ctx)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", kind, err)
	}
	exitCh, err := p.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait %s: %w", kind, err)
	}
	mark()
	if err := p.Start(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	mark()
	if err := exitedWith(ctx, exitCh, 0); err != nil {
		return nil, err
	}
	mark()
	if _, err := p.Delete(ctx); err != nil {
		return nil, fmt.Errorf("delete %s: %w", kind, err)
	}
	mark()
	return marks, nil
}

// exitedWith waits for an exit status and checks it: a run that measured
// failing processes would measure the wrong thing.
func exitedWith(ctx context.Context, exitCh <-chan client.ExitStatus, want uint32) error {
	select {
	case status := <-exitCh:
		code, _, err := status.Result()
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("exit status %d, want %d", code, want)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no exit: %w", ctx.Err())
	}
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// interleave runs one step per shim, shim after shim, iterations times after
// warmup unmeasured rounds. Alternating round by round spreads whatever else
// the machine does (a GC in containerd, a kernel flush) evenly over both
// shims, where measuring one shim and then the other would charge it to one.
func (s *session) interleave(what string, warmup, iterations int, step func(shim shimUnderTest, round int) (time.Duration, error)) map[string]durations {
	samples := make(map[string]durations)
	for round := -warmup; round < iterations; round++ {
		for _, shim := range s.shims {
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

// lifecycleSteps are the parts of a lifecycle, in order, each timed on its
// own as well: a difference in the total is then found in one step.
var lifecycleSteps = []string{"create", "start", "exit", "delete"}

// measureLifecycle times the whole life of a short task as a client lives
// it: create the task (containerd starts a shim, the shim runs runc create),
// start it, wait for /bin/true's exit, delete the task (the shim exits).
// Each shim gets one container, reused for every task, so the snapshot work
// containerd does for a new container is not in the figure. It returns the
// totals, and each step's samples by shim and step.
func (s *session) measureLifecycle(warmup, iterations int) (map[string]durations, map[string]map[string]durations) {
	containers := make(map[string]client.Container)
	steps := make(map[string]map[string]durations)
	for _, shim := range s.shims {
		containers[shim.label] = s.newContainer(shim, "lifecycle-"+shim.label, []string{"/bin/true"})
		steps[shim.label] = make(map[string]durations)
	}
	totals := s.interleave("lifecycle", warmup, iterations, func(shim shimUnderTest, round int) (time.Duration, error) {
		marks, err := s.lifecycleRound(containers[shim.label])
		if err != nil {
			return 0, err
		}
		if round >= warmup {
			for i, step := range lifecycleSteps {
				steps[shim.label][step] = append(steps[shim.label][step], marks[i+1].Sub(marks[i]))
			}
		}
		return marks[len(marks)-1].Sub(marks[0]), nil
	})
	return totals, steps
}

// lifecycleRound runs one task of container through its life: create,
// start, the exit of /bin/true, delete. It returns the time before each step
// and after the last.
func (s *session) lifecycleRound(container client.Container) ([]time.Time, error) {
	ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
	defer cancel()
	var marks []time.Time
	mark := func() { marks = append(marks, time.Now()) }
	mark()
	task, err := container.NewTask(ctx, s.discardIO(nil))
	if err != nil {
		return nil, fmt.Errorf("create task: %w", err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait task: %w", err)
	}
	mark()
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start task: %w", err)
	}
	mark()
	if err := exitedWith(ctx, exitCh, 0); err != nil {
		return nil, err
	}
	mark()
	if _, err := task.Delete(ctx); err != nil {
		return nil, fmt.Errorf("delete task: %w", err)
	}
	mark()
	return marks, nil
}

// measureExec times `exec /bin/true` in a running container: register the
// exec process, start it, wait for its exit, delete it.
func (s *session) measureExec(warmup, iterations int) map[string]durations {
	tasks := make(map[string]client.Task)
	for _, shim := range s.shims {
		container := s.newContainer(shim, "exec-"+shim.label, []string{"sleep", "1000000"})
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
	defer func() {
		for _, task := range tasks {
			task.Delete(s.ctx, client.WithProcessKill)
		}
	}()
	return s.interleave("exec", warmup, iterations, func(shim shimUnderTest, round int) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
		defer cancel()
		begin := time.Now()
		p, err := tasks[shim.label].Exec(ctx, fmt.Sprintf("true-%d", round), &process, s.discardIO(nil))
		if err != nil {
			return 0, fmt.Errorf("exec: %w", err)
		}
		exitCh, err := p.Wait(ctx)
		if err != nil {
			return 0, fmt.Errorf("wait exec: %w", err)
		}
		if err := p.Start(ctx); err != nil {
			return 0, fmt.Errorf("start exec: %w", err)
		}
		if err := exitedWith(ctx, exitCh, 0); err != nil {
			return 0, err
		}
		if _, err := p.Delete(ctx); err != nil {
			return 0, fmt.Errorf("delete exec: %w", err)
		}
		return time.Since(begin), nil
	})
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

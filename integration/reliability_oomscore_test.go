package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

var oomScoreScenario = scenarioSpec{
	name: "no elevated oom_score_adj kept",
	test: "TestReliabilityOOMScore",
	about: "When memory runs out the kernel must kill containers before their shim and the shim before containerd: " +
		"the shim's oom_score_adj must be containerd's plus one (the shim never keeps containerd's score, nor a lower " +
		"one); a container whose spec sets oomScoreAdj must run with that score, its exec processes too; and a " +
		"container whose spec sets none must not run with a score lower than its shim's.",
}

func TestReliabilityOOMScore(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		sc := newScenario(t, oomScoreScenario, s)
		daemonScore := oomScoreOf(t, s.daemon.PID())
		sc.figure("containerd", daemonScore)

		_, plain, _ := s.runningTask(t, "oom-score-plain")
		shim, err := harness.ParentPID(int(plain.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		shimScore := oomScoreOf(t, shim)
		sc.figure("shim", shimScore)
		if want := min(daemonScore+1, 1000); shimScore != want {
			t.Errorf("the shim's oom_score_adj is %d; containerd's is %d, want %d", shimScore, daemonScore, want)
		}
		plainScore := oomScoreOf(t, int(plain.Pid()))
		sc.figure("container without oomScoreAdj", plainScore)
		if plainScore < shimScore {
			t.Errorf("a container without oomScoreAdj runs at %d, below its shim's %d", plainScore, shimScore)
		}

		const asked = 789
		container := s.newContainer(t, "oom-score-set", []string{"sleep", "1000"}, withSpecOpts(withOOMScoreAdj(asked)))
		task, _ := s.startTask(t, container, &stdio{})
		initScore := oomScoreOf(t, int(task.Pid()))
		process := sleepingExec(t, s, container, task, "scored")
		execScore := oomScoreOf(t, int(process.Pid()))
		sc.figure(fmt.Sprintf("container with oomScoreAdj %d: init / exec", asked), fmt.Sprintf("%d / %d", initScore, execScore))
		if initScore != asked || execScore != asked {
			t.Errorf("spec oomScoreAdj %d: the init runs at %d, an exec at %d", asked, initScore, execScore)
		}
	})
}

// withOOMScoreAdj sets the process's oomScoreAdj in the spec.
func withOOMScoreAdj(score int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, spec *oci.Spec) error {
		spec.Process.OOMScoreAdj = &score
		return nil
	}
}

func oomScoreOf(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatal(err)
	}
	score, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return score
}

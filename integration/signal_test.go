package integration

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// readyTimeout bounds the wait for a container to print that it is ready.
const readyTimeout = 30 * time.Second

// A signalled process has no exit code of its own; containerd reports
// 128 + the signal number, as a shell would. The container's init is PID 1
// of its PID namespace, and the kernel drops signals to such a process
// unless it has a handler (SIGKILL excepted). So SIGTERM is tried on a shell
// that traps it, and the expected status is the one the trap chooses.
func TestKillSignals(t *testing.T) {
	cases := []struct {
		name     string
		command  []string
		signal   syscall.Signal
		wantCode uint32
	}{
		{
			name:     "SIGKILL",
			command:  []string{"sh", "-c", "echo ready; exec sleep 1000"},
			signal:   syscall.SIGKILL,
			wantCode: 128 + uint32(syscall.SIGKILL), // 137
		},
		{
			name: "SIGTERM",
			// busybox sh runs a trap between commands, so the loop of short
			// sleeps answers within 0.1 s; `ready` is printed once the trap is set.
			command:  []string{"sh", "-c", `trap "exit 143" TERM; echo ready; while true; do sleep 0.1; done`},
			signal:   syscall.SIGTERM,
			wantCode: 143,
		},
	}
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := "kill-" + strings.ToLower(tc.name)
				container := s.newContainer(t, id, tc.command)
				streams := &stdio{}
				task, exitCh := s.startTask(t, container, streams)
				waitForOutput(t, streams, "ready\n")

				if err := task.Kill(s.ctx, tc.signal); err != nil {
					t.Fatalf("kill %v: %v", tc.signal, err)
				}
				if code := exitCodeOf(t, exitCh); code != tc.wantCode {
					t.Errorf("after %v: exit status %d, want %d", tc.signal, code, tc.wantCode)
				}
				deleteTask(t, s.ctx, task, tc.wantCode)
			})
		}
	})
}

// waitForOutput waits until the container has printed want on stdout.
func waitForOutput(t *testing.T, streams *stdio, want string) {
	t.Helper()
	harness.Eventually(t, readyTimeout, "container output "+want, func() error {
		if got := streams.stdout.String(); got != want {
			return errors.New("stdout so far: " + got)
		}
		return nil
	})
}

package harness

import (
	"fmt"
	"testing"
	"time"
)

// pollInterval is short because what the tests wait for (a mount going away,
// a process exiting) usually happens within milliseconds.
const pollInterval = 20 * time.Millisecond

// SettleTimeout is how long a test waits for what the system does on its own
// after a step (a log line copied, a trace removed, a process gone). The
// wait ends the moment the check passes, so it costs nothing when things
// are quick; it is long because a busy machine can take seconds for them.
const SettleTimeout = time.Minute

// WaitFor calls check until it returns nil or timeout passes, and returns
// check's last error. Tests poll instead of sleeping: a fixed sleep is either
// too short on a loaded CI machine or wasted time everywhere else.
func WaitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// Eventually fails the test when check does not succeed within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	if err := WaitFor(timeout, check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

package shim

import (
	"testing"
	"time"
)

func TestInflightWaitReturnsAtOnceWhenIdle(t *testing.T) {
	var f inflight
	f.wait()
	f.begin()
	f.end()
	f.wait()
}

// A waiter is let go only when every operation has ended, including one
// that began while it waited.
func TestInflightWaitsForEveryOperation(t *testing.T) {
	var f inflight
	f.begin()
	done := make(chan struct{})
	go func() {
		f.wait()
		close(done)
	}()
	f.begin() // a second operation, begun while the waiter waits
	f.end()
	select {
	case <-done:
		t.Fatal("wait returned while an operation was still under way")
	case <-time.After(20 * time.Millisecond):
	}
	f.end()
	<-done
}

package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// shimFigures is what one shim holds at one moment: the figures a leak
// shows up in.
type shimFigures struct {
	rss    int64
	fds    int // pidfds aside (see harness.WithoutPidfds)
	pidfds int // the shim's own, one per tracked process, and os/exec's

	goroutines int
	threads    int
	fdList     []harness.OpenFD
}

func (f shimFigures) String() string {
	return fmt.Sprintf("RSS %s, %d descriptors (+%d pidfds), %d goroutines, %d threads",
		harness.MiB(f.rss), f.fds, f.pidfds, f.goroutines, f.threads)
}

// measureShim reads a shim's figures; the goroutines come from a stack dump
// (harness.ShimGoroutines), so it is not for a tight loop.
func measureShim(t *testing.T, s *session, pid int) shimFigures {
	t.Helper()
	status, err := harness.ReadProcessStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := harness.OpenFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	others, pidfds := harness.WithoutPidfds(fds)
	goroutines, _, err := s.daemon.ShimGoroutines(pid)
	if err != nil {
		t.Fatal(err)
	}
	return shimFigures{rss: status.RSS, fds: len(others), pidfds: pidfds, goroutines: goroutines, threads: status.Threads, fdList: others}
}

// Slack for "back to its baseline". Descriptors must come back exactly. A
// goroutine or two may be in flight (a ttrpc connection's reader, an event
// being sent). Go returns freed memory to the kernel lazily (its scavenger
// releases a few MiB a second), so RSS is allowed a margin well below what
// a leak of the buffers involved (64 KiB per stream per process) would add
// in these scenarios.
const (
	goroutineSlack = 3
	rssSlack       = 8 << 20
	settleTimeout  = 30 * time.Second
)

// backToBaseline waits until the shim's figures are back near baseline and
// returns the last ones read, with an error naming what stayed up.
func backToBaseline(t *testing.T, s *session, pid int, baseline shimFigures) (shimFigures, error) {
	t.Helper()
	var now shimFigures
	err := harness.WaitFor(settleTimeout, func() error {
		now = measureShim(t, s, pid)
		switch {
		case now.fds > baseline.fds:
			return fmt.Errorf("%d descriptors, %d at the baseline; new: %v", now.fds, baseline.fds, newFDs(baseline.fdList, now.fdList))
		case now.pidfds > baseline.pidfds:
			// The shim closes a process's pidfd once its exit is
			// recorded, and releases os/exec's for runc once runc is
			// reaped (process/reaper.go): none may stay.
			return fmt.Errorf("%d pidfds, %d at the baseline", now.pidfds, baseline.pidfds)
		case now.goroutines > baseline.goroutines+goroutineSlack:
			return fmt.Errorf("%d goroutines, %d at the baseline", now.goroutines, baseline.goroutines)
		case now.rss > baseline.rss+rssSlack:
			return fmt.Errorf("RSS %s, %s at the baseline", harness.MiB(now.rss), harness.MiB(baseline.rss))
		}
		return nil
	})
	return now, err
}

// rssSampler records the highest RSS of a process, sampled every 20 ms,
// while something runs.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak int64
}

func sampleRSS(pid int) *rssSampler {
	r := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		ticker := time.NewTicker(20 * time.Millisecond)
		defer ticker.Stop()
		for {
			if status, err := harness.ReadProcessStatus(pid); err == nil {
				r.mu.Lock()
				r.peak = max(r.peak, status.RSS)
				r.mu.Unlock()
			}
			select {
			case <-r.stop:
				return
			case <-ticker.C:
			}
		}
	}()
	return r
}

// Stop ends the sampling and returns the peak.
func (r *rssSampler) Stop() int64 {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak
}

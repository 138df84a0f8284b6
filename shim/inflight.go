package shim

import "sync"

// inflight counts operations under way (runc commands whose event has not
// been published yet) and lets another goroutine wait until none is.
//
// It is how the shim keeps containerd's event order without holding a lock
// across a runc command: instead of making an exit wait for a lock that a
// `runc exec` holds, the exit waits for the exec's start to be over. A
// waiter blocks nobody but itself.
type inflight struct {
	mu   sync.Mutex
	n    int           // guarded by mu
	idle chan struct{} // guarded by mu: closed when n falls to 0; nil while n is 0
}

// begin counts one more operation. Every begin has one end.
func (f *inflight) begin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
}

// end counts an operation done.
func (f *inflight) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		close(f.idle)
		f.idle = nil
	}
}

// wait returns once no operation is under way. Operations that begin while
// it waits are waited for too: it returns at a moment when the count is 0.
func (f *inflight) wait() {
	for {
		f.mu.Lock()
		idle := f.idle
		f.mu.Unlock()
		if idle == nil {
			return
		}
		<-idle
	}
}

// idleNow tells whether no operation is under way at this moment.
func (f *inflight) idleNow() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n == 0
}

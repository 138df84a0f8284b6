package stdio

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// pump is one copy loop of a relay: container output from a pipe (or a
// terminal's master) to a FIFO or file, or a client's input from the stdin
// FIFO to the container's stdin pipe (or its terminal). It copies until its
// input ends, and it can be frozen between two steps, for an in-place
// upgrade of the shim (docs/upgrade.md):
//
//   - a read that returned bytes has them written before anything else; a
//     write that a freeze interrupts keeps what it has not written, and the
//     rest is handed over (pending), so no byte is lost or repeated;
//   - a splice moves bytes from pipe to pipe inside the kernel, all of a
//     chunk or none of it, so a frozen splice holds nothing;
//   - a read or a wait blocked in the kernel is woken by a deadline in the
//     past on the pollable descriptor, which consumes nothing.
//
// Nothing is closed by a freeze: the descriptors stay open for the shim that
// takes over, or for this one if the upgrade is called off (thaw).
type pump struct {
	name string
	from source
	to   sink
	// spliceFrom and spliceTo are from and to when both are pipes: the
	// kernel moves the bytes (splice.go). nil otherwise, or once the kernel
	// refused.
	spliceFrom, spliceTo *os.File
	pending              []byte  // read from `from`, not yet written to `to`
	buffer               *[]byte // from copyBuffers while pending is in it (holdBuffer)
	moved                int64
	afterInput           func(moved int64) // runs in the pump's goroutine once the input ended

	mu       sync.Mutex
	frozen   bool          // guarded by mu
	parked   chan struct{} // guarded by mu: closed once the loop stopped for a freeze
	thawed   chan struct{} // guarded by mu: closed by thaw
	finished chan struct{} // closed once the input ended and afterInput ran
}

// source is what a pump reads: a pipe or FIFO, or a pty master
// (terminal.go). A deadline wakes a read blocked on it.
type source interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

// sink is what a pump writes to: a pipe or FIFO, a file, or a pty master.
type sink interface {
	io.Writer
	SetWriteDeadline(time.Time) error
}

// progress is where a copy stands: the bytes it read and has not written
// yet, and how many it moved. A copy taken over after an upgrade starts
// from the progress the frozen one handed over.
type progress struct {
	pending []byte
	moved   int64
}

func newPump(name string, from source, to sink, at progress, afterInput func(int64)) *pump {
	p := &pump{name: name, from: from, to: to, pending: at.pending, moved: at.moved, afterInput: afterInput, finished: make(chan struct{})}
	fromFile, fromIsFile := from.(*os.File)
	toFile, toIsFile := to.(*os.File)
	if fromIsFile && toIsFile && isPipe(fromFile) && isPipe(toFile) {
		p.spliceFrom, p.spliceTo = fromFile, toFile
	}
	return p
}

func (p *pump) start() { go p.run() }

func (p *pump) run() {
	defer close(p.finished)
	defer p.releaseBuffer()
	for {
		if p.park() {
			continue
		}
		ended, err := p.step()
		if errors.Is(err, os.ErrDeadlineExceeded) && p.isFrozen() {
			continue // woken by the freeze: park at the top of the loop
		}
		if ended || err != nil {
			break
		}
	}
	if p.afterInput != nil {
		p.afterInput(p.moved)
	}
}

// step moves one piece: what is pending first, then one splice or one read.
func (p *pump) step() (ended bool, err error) {
	if len(p.pending) > 0 {
		n, err := p.to.Write(p.pending)
		p.moved += int64(n)
		p.pending = p.pending[n:]
		if len(p.pending) == 0 {
			p.releaseBuffer()
		}
		return false, err
	}
	if p.spliceFrom != nil {
		n, err := splicePipes(p.spliceTo, p.spliceFrom)
		p.moved += n
		if err == nil {
			return true, nil // splicePipes returns nil only at the input's end
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, err
		}
		p.spliceFrom, p.spliceTo = nil, nil // the kernel refused to splice these two: copy instead
		return false, nil
	}
	if err := waitReadable(p.from); err != nil {
		return false, err
	}
	buf := p.holdBuffer()
	n, err := p.from.Read(buf)
	// The bytes are the pump's now; they are written before anything
	// else, by this step's caller or by the next shim.
	p.pending = buf[:n]
	if n == 0 {
		p.releaseBuffer()
	}
	if errors.Is(err, io.EOF) {
		err := p.flushAtEnd()
		return len(p.pending) == 0, err
	}
	return false, err
}

// A pump that copies through the shim's memory holds a buffer only while
// bytes are in it: a stream waits for its input without one. Held for the
// pump's life, as it was, a buffer of 64 KiB per stream stayed in every
// idle container's shim, resident once the heap had reused the memory, and
// the buffer of a stream that splices was never used at all
// (docs/benchmarks.md, History).
func (p *pump) holdBuffer() []byte {
	if p.buffer == nil {
		p.buffer = copyBuffers.Get().(*[]byte)
	}
	return *p.buffer
}

// releaseBuffer gives the buffer back once nothing is pending in it.
func (p *pump) releaseBuffer() {
	if p.buffer != nil && len(p.pending) == 0 {
		p.pending = nil
		copyBuffers.Put(p.buffer)
		p.buffer = nil
	}
}

// waitReadable waits until the input has bytes to read, its end, or an
// error, so that the read that follows does not wait while holding a
// buffer. An input that Go's poller does not manage is read at once.
func waitReadable(from source) error {
	switch from := from.(type) {
	case *ptyMaster:
		return from.waitReadable()
	case *os.File:
		conn, err := from.SyscallConn()
		if err != nil {
			return nil
		}
		if err := conn.Read(hasBytes); errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
	return nil
}

// hasBytes is a poller callback: it tells whether fd has something to read
// now. The poller is asked to wait only after poll(2) found nothing: it
// wakes on a change of state, and bytes that were already there when the
// pump looked make none.
func hasBytes(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n > 0
}

// flushAtEnd writes what the last read returned, once the input ended.
func (p *pump) flushAtEnd() error {
	for len(p.pending) > 0 {
		n, err := p.to.Write(p.pending)
		p.moved += int64(n)
		p.pending = p.pending[n:]
		if err != nil && !(errors.Is(err, os.ErrDeadlineExceeded) && p.isFrozen()) {
			return err
		}
		if err != nil {
			return nil // frozen: the pending rest is handed over; the next shim reads EOF again
		}
	}
	return io.EOF
}

func (p *pump) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

// park waits while the pump is frozen; it tells whether it waited.
func (p *pump) park() bool {
	p.mu.Lock()
	if !p.frozen {
		p.mu.Unlock()
		return false
	}
	close(p.parked)
	thawed := p.thawed
	p.mu.Unlock()
	<-thawed
	return true
}

// freeze stops the pump at its next step and waits until it has stopped, or
// has finished: an input that ended is copied to its end (an output FIFO's
// close waits at most unreadOutputLimit for its reader).
func (p *pump) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.parked = make(chan struct{})
	p.thawed = make(chan struct{})
	parked := p.parked
	p.mu.Unlock()
	// A deadline in the past wakes a read, a write or a splice's wait for
	// the poller without taking or giving a byte. Regular files have no
	// deadlines, and need none: a write to a file does not wait for a
	// reader.
	past := time.Unix(1, 0)
	_ = p.from.SetReadDeadline(past)
	_ = p.to.SetWriteDeadline(past)
	select {
	case <-parked:
	case <-p.finished:
	}
}

// thaw lets a frozen pump go on: the upgrade was called off.
func (p *pump) thaw() {
	_ = p.from.SetReadDeadline(time.Time{})
	_ = p.to.SetWriteDeadline(time.Time{})
	p.mu.Lock()
	p.frozen = false
	close(p.thawed)
	p.mu.Unlock()
}

// done: the pump's input ended and everything was written.
func (p *pump) done() bool {
	select {
	case <-p.finished:
		return true
	default:
		return false
	}
}

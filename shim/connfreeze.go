package shim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protowire"
)

// How the shim's ttrpc connections cross an in-place upgrade (upgrade.go),
// with containerd never seeing a disconnect: containerd 2.x takes a
// connection that ends for a dead shim, and cleans its task up.
//
// The connection's descriptor survives execve; what must not be lost is a
// frame the old server read and did not answer, or half a frame. So each
// connection is read frame by frame (connlimit.go), never past the end of
// the current frame, and a freeze:
//
//  1. stops accepting, and stops reading every connection between two
//     frames: the kernel keeps whatever containerd sends meanwhile in the
//     socket's buffer, for the next shim to read;
//  2. waits until every request read has been answered, except Wait, which
//     may wait for as long as the container runs;
//  3. seals the connections: the server writes no frame more;
//  4. hands over each connection's descriptor, with the Wait requests still
//     unanswered: the next shim reads them first, as if they had just come,
//     and answers them. containerd receives exactly one answer to each.
//
// A thaw (the upgrade was called off) lets everything go on where it stopped;
// a Wait answered in the meantime was held by the seal, and is written now.

// replayable is a request the next shim may serve in place of this one: it
// changes nothing, and its answer is what the next shim would give too.
func replayable(service, method string) bool {
	switch service {
	case "containerd.task.v2.Task", "containerd.task.v3.Task":
		return method == "Wait"
	case shimServiceName:
		return method == statusMethod
	}
	return false
}

// connFreezer is a listener's freeze: the connections it accepted, what each
// owes, and whether they may go on.
type connFreezer struct {
	listener net.Listener

	mu        sync.Mutex
	changed   *sync.Cond // a connection parked, answered, or went away
	frozen    bool
	sealed    bool
	thawed    chan struct{} // closed by thaw
	accepting bool          // an Accept is in the kernel
	conns     map[*frameReader]struct{}
	inherited []*frameReader // handed over by an earlier shim, not yet served
}

func newConnFreezer(l net.Listener) *connFreezer {
	f := &connFreezer{listener: l, conns: make(map[*frameReader]struct{})}
	f.changed = sync.NewCond(&f.mu)
	return f
}

func (f *connFreezer) isFrozen() bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen
}

// beginAccept waits while frozen, then marks an Accept as under way.
func (f *connFreezer) beginAccept(closed <-chan struct{}) error {
	f.mu.Lock()
	for f.frozen {
		thawed := f.thawed
		f.mu.Unlock()
		select {
		case <-thawed:
		case <-closed:
			return net.ErrClosed
		}
		f.mu.Lock()
	}
	f.accepting = true
	f.mu.Unlock()
	return nil
}

// endAccept marks the Accept done, registers the connection it returned,
// and tells whether a freeze is on.
func (f *connFreezer) endAccept(c *frameReader) (frozen bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepting = false
	if c != nil {
		f.conns[c] = struct{}{}
	}
	f.changed.Broadcast()
	return f.frozen
}

// nextInherited is the next connection an earlier shim handed over.
func (f *connFreezer) nextInherited() net.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.inherited) == 0 {
		return nil
	}
	c := f.inherited[0]
	f.inherited = f.inherited[1:]
	f.conns[c] = struct{}{}
	return c
}

// waitThawed is where a connection's reading stops, between two frames,
// while a freeze is on.
func (f *connFreezer) waitThawed(c *frameReader) {
	if f == nil {
		return
	}
	f.mu.Lock()
	for f.frozen {
		c.parked = true
		f.changed.Broadcast()
		f.awaitThawLocked()
	}
	c.parked = false
	f.mu.Unlock()
}

// awaitThawLocked lets go of mu until the freeze on now is thawed. Held: mu.
func (f *connFreezer) awaitThawLocked() {
	thawed := f.thawed
	f.mu.Unlock()
	<-thawed
	f.mu.Lock()
}

// requestRead keeps a whole request frame until its answer is written.
func (f *connFreezer) requestRead(c *frameReader, frame []byte) {
	if f == nil || len(frame) < ttrpcHeaderSize || frame[8] != ttrpcRequest {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.inflight == nil {
		c.inflight = make(map[uint32][]byte)
	}
	c.inflight[binary.BigEndian.Uint32(frame[4:8])] = frame
}

// forget drops a connection that closed.
func (f *connFreezer) forget(c *frameReader) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	f.changed.Broadcast()
}

// ttrpc frame types (the header's ninth byte).
const (
	ttrpcRequest  = 1
	ttrpcResponse = 2
)

// Write writes what the server sends, and follows its frames: an answer
// written whole settles its request. Once sealed, no new frame begins.
func (c *frameReader) Write(p []byte) (int, error) {
	f := c.freezer
	if f == nil {
		return c.Conn.Write(p)
	}
	f.mu.Lock()
	for f.sealed && !c.written.midFrame() {
		f.awaitThawLocked()
	}
	c.writing = true
	f.mu.Unlock()

	n, err := c.Conn.Write(p)

	f.mu.Lock()
	c.writing = false
	c.written.followFrames(p[:n], func(stream uint32, typ byte) {
		if typ == ttrpcResponse {
			delete(c.inflight, stream)
		}
	})
	f.changed.Broadcast()
	f.mu.Unlock()
	return n, err
}

// frameFollower follows the frames in a stream of bytes, read or written.
type frameFollower struct {
	headerRead int                   // bytes of the current header so far
	header     [ttrpcHeaderSize]byte //
	bodyLeft   uint32                // bytes of the current frame's body still to come
}

// midFrame: the last byte was not a frame's last.
func (w *frameFollower) midFrame() bool { return w.headerRead > 0 || w.bodyLeft > 0 }

// followFrames moves through b, calling ended for each frame that ends in it.
func (w *frameFollower) followFrames(b []byte, ended func(stream uint32, typ byte)) {
	for len(b) > 0 {
		if w.bodyLeft > 0 {
			step := min(uint32(len(b)), w.bodyLeft)
			w.bodyLeft -= step
			b = b[step:]
			if w.bodyLeft == 0 {
				ended(binary.BigEndian.Uint32(w.header[4:8]), w.header[8])
			}
			continue
		}
		step := copy(w.header[w.headerRead:], b)
		w.headerRead += step
		b = b[step:]
		if w.headerRead == ttrpcHeaderSize {
			w.headerRead = 0
			w.bodyLeft = binary.BigEndian.Uint32(w.header[:4])
			if w.bodyLeft == 0 {
				ended(binary.BigEndian.Uint32(w.header[4:8]), w.header[8])
			}
		}
	}
}

// requestMethod is the service and method a ttrpc request frame calls:
// fields 1 and 2 of the ttrpc Request message that is the frame's body.
func requestMethod(frame []byte) (service, method string) {
	body := frame[ttrpcHeaderSize:]
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return service, method
		}
		body = body[n:]
		n = protowire.ConsumeFieldValue(num, typ, body)
		if n < 0 {
			return service, method
		}
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, _ := protowire.ConsumeBytes(body)
			if num == 1 {
				service = string(v)
			} else {
				method = string(v)
			}
		}
		body = body[n:]
	}
	return service, method
}

// deadliner is a listener or a connection whose blocking call a deadline
// wakes.
type deadliner interface{ SetDeadline(time.Time) error }

var pastDeadline = time.Unix(1, 0)

// drainLimit bounds how long a freeze waits for the requests under way to be
// answered. A request stuck behind a runc that does not return would hold
// every connection of the shim frozen; past the limit, the upgrade is called
// off and the shim goes on serving, rather than wait with it.
const drainLimit = 10 * time.Second

// freeze stops accepting and reading, waits until every request but the
// replayable ones is answered, and seals the connections. It fails, still
// frozen, with the requests it waited for, if they took longer than
// drainLimit; the caller thaws.
func (f *connFreezer) freeze() error {
	f.mu.Lock()
	f.frozen = true
	f.thawed = make(chan struct{})
	conns := f.connList()
	f.mu.Unlock()
	if l, ok := f.listener.(deadliner); ok {
		_ = l.SetDeadline(pastDeadline)
	}
	for _, c := range conns {
		_ = c.Conn.SetReadDeadline(pastDeadline)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.waitLocked(drainLimit, f.drainedLocked) {
		return fmt.Errorf("requests still under way after %s (%s); try again once they are answered: %w",
			drainLimit, strings.Join(f.pendingLocked(), ", "), errdefs.ErrUnavailable)
	}
	f.sealed = true
	for f.writingLocked() {
		f.changed.Wait()
	}
	return nil
}

// awaitAnswered waits until every request read has its answer written, or
// limit passes (it starts now, with the wait it bounds). The shim calls it
// as it exits, before the server shuts down: ttrpc's Shutdown closes a
// connection that looked idle when its loop last looked, and a request that
// came since would lose its answer; containerd then sees "ttrpc: closed" on,
// say, the Delete of another container of the group.
func (f *connFreezer) awaitAnswered(limit time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waitLocked(limit, func() bool { return !f.unansweredLocked() })
}

// waitLocked waits until done, or until limit has passed: the limit starts
// now, with the wait it bounds. It tells whether done came. Held: mu.
func (f *connFreezer) waitLocked(limit time.Duration, done func() bool) bool {
	expired := false
	timer := time.AfterFunc(limit, func() {
		f.mu.Lock()
		expired = true
		f.changed.Broadcast()
		f.mu.Unlock()
	})
	defer timer.Stop()
	for !done() {
		if expired {
			return false
		}
		f.changed.Wait()
	}
	return true
}

// unansweredLocked: some request read has no answer written yet.
func (f *connFreezer) unansweredLocked() bool {
	for c := range f.conns {
		if len(c.inflight) > 0 || c.written.midFrame() || c.writing {
			return true
		}
	}
	return false
}

// pendingLocked names the requests a freeze waits for.
func (f *connFreezer) pendingLocked() []string {
	var names []string
	for c := range f.conns {
		for _, frame := range c.inflight {
			if service, method := requestMethod(frame); !replayable(service, method) {
				names = append(names, method)
			}
		}
	}
	sort.Strings(names)
	return names
}

func (f *connFreezer) connList() []*frameReader {
	conns := make([]*frameReader, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	return conns
}

// drainedLocked: no Accept under way, every connection stopped between
// frames, and nothing but replayable requests unanswered.
func (f *connFreezer) drainedLocked() bool {
	if f.accepting {
		return false
	}
	for c := range f.conns {
		if !c.parked {
			return false
		}
		for _, frame := range c.inflight {
			if !replayable(requestMethod(frame)) {
				return false
			}
		}
	}
	return true
}

func (f *connFreezer) writingLocked() bool {
	for c := range f.conns {
		if c.written.midFrame() || c.writing {
			return true
		}
	}
	return false
}

// thaw lets everything go on: the upgrade was called off.
func (f *connFreezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.listener.(deadliner); ok {
		_ = l.SetDeadline(time.Time{})
	}
	for c := range f.conns {
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
	f.frozen, f.sealed = false, false
	close(f.thawed)
}

// ConnHandover is one connection, as the next shim needs it: its descriptor
// and the requests to read again before the socket's bytes.
type ConnHandover struct {
	Fd     int
	Replay []byte
}

// handover describes the frozen connections. Held: a freeze.
func (f *connFreezer) handover() []ConnHandover {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ConnHandover
	for c := range f.conns {
		h := ConnHandover{Fd: connFd(c.Conn)}
		streams := make([]uint32, 0, len(c.inflight))
		for id := range c.inflight {
			streams = append(streams, id)
		}
		// ttrpc wants a connection's stream ids increasing.
		sort.Slice(streams, func(i, j int) bool { return streams[i] < streams[j] })
		for _, id := range streams {
			h.Replay = append(h.Replay, c.inflight[id]...)
		}
		if h.Fd >= 0 {
			out = append(out, h)
		}
	}
	return out
}

// inherit makes connections of those an earlier shim handed over; Accept
// returns them first.
func (f *connFreezer) inherit(conns []ConnHandover) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range conns {
		conn, err := netCopy(h.Fd, "ttrpc connection", net.FileConn)
		if err != nil {
			return errors.Join(errors.New("an inherited ttrpc connection"), err)
		}
		f.inherited = append(f.inherited, &frameReader{Conn: conn, release: func() {}, freezer: f, replay: h.Replay})
	}
	return nil
}

// connFd is the descriptor number of a connection or listener, or -1.
// (Its File method would give a copy, in blocking mode.)
func connFd(conn any) int {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = raw.Control(func(n uintptr) { fd = int(n) })
	return fd
}

package shim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containerd/log"
)

// What a client of the shim's socket can make it hold. A ttrpc frame starts
// with a 10-byte header whose first four bytes announce the length of what
// follows, up to 4 MiB; the ttrpc server allocates that much as soon as it
// has read the header, and then waits for the rest. 2000 connections that
// each announced 4 MiB and stalled grew a shim to 3 GiB. Only root can
// connect, but a misbehaving agent runs as root too. So the server:
//
//   - serves at most maxUnproven connections that have not yet sent one
//     whole frame; one more waits in the socket's backlog until one of them
//     has, or has closed. A connection that has sent a whole frame, as each
//     of containerd's does with its first request, is no longer counted:
//     containerd keeps one open for each container of a grouped shim, for
//     as long as it likes;
//   - hangs up on a peer that stops sending in the middle of a frame for
//     frameSilenceLimit.
//
// Nothing times an idle connection, a request's work, or the shim's own
// reading: the only timer is the peer's silence while it owes the rest of a
// frame, and it starts again with every byte that arrives.
const (
	maxUnproven       = 16
	frameSilenceLimit = 10 * time.Second
)

// ttrpcHeaderSize is the size of a ttrpc frame's header: the length of the
// frame's body (4 bytes, big-endian), its stream id (4), type (1), flags (1).
const ttrpcHeaderSize = 10

// connectionLimiter is a listener that serves at most maxUnproven
// connections that have not yet sent a whole frame.
type connectionLimiter struct {
	net.Listener
	slots   chan struct{} // one token per unproven connection
	closed  chan struct{}
	once    sync.Once
	freezer *connFreezer // connfreeze.go
}

func limitConnections(l net.Listener) *connectionLimiter {
	return &connectionLimiter{Listener: l, slots: make(chan struct{}, maxUnproven), closed: make(chan struct{}),
		freezer: newConnFreezer(l)}
}

// Accept waits for a free slot, then for a connection. Connections an
// earlier shim handed over (an upgrade, handover.go) come first: they have
// proven themselves, and take no slot.
func (l *connectionLimiter) Accept() (net.Conn, error) {
	if conn := l.freezer.nextInherited(); conn != nil {
		return conn, nil
	}
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	for {
		if err := l.freezer.beginAccept(l.closed); err != nil {
			<-l.slots
			return nil, err
		}
		conn, err := l.Listener.Accept()
		if errors.Is(err, os.ErrDeadlineExceeded) && l.freezer.endAccept(nil) {
			continue // woken by a freeze; wait for the thaw, or the execve
		}
		if err != nil {
			l.freezer.endAccept(nil)
			<-l.slots
			return nil, err
		}
		c := &frameReader{Conn: conn, release: sync.OnceFunc(func() { <-l.slots }), freezer: l.freezer}
		l.freezer.endAccept(c)
		return c, nil
	}
}

// Close stops accepting; an Accept waiting for a slot returns too.
func (l *connectionLimiter) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// frameReader is one connection, read frame by frame: it follows the
// frames' boundaries in the bytes the server reads, gives its slot back
// once a first frame has arrived whole, and while a frame is partly read,
// hangs up on a peer silent for frameSilenceLimit.
type frameReader struct {
	net.Conn
	release func() // gives the connection's slot back; once

	// Guarded by the server's reading: one goroutine reads a connection.
	read        frameFollower // the frames read
	deadlineSet bool
	frame       []byte // the bytes of the current frame so far
	replay      []byte // frames to read before the socket's (connfreeze.go)

	freezer *connFreezer
	// Guarded by freezer.mu.
	parked   bool              // waiting between frames for a thaw
	inflight map[uint32][]byte // requests read, by stream id, not yet answered
	written  frameFollower     // the frames the server writes
	writing  bool              // a write is in the kernel
}

func (c *frameReader) Read(p []byte) (int, error) {
	for {
		if len(c.replay) > 0 {
			// Requests an earlier shim read and did not answer
			// (connfreeze.go), handed to the server again first.
			n := copy(p[:c.wanted(len(p))], c.replay)
			c.replay = c.replay[n:]
			c.track(p[:n])
			return n, nil
		}
		if !c.midFrame() {
			c.freezer.waitThawed(c) // an upgrade stops reading between frames
		}
		// Never past the current frame: the server's buffered reader
		// must not hold bytes of a frame a freeze leaves in the socket.
		silenceTimed := c.deadlineSet
		n, err := c.Conn.Read(p[:c.wanted(len(p))])
		c.track(p[:n])
		if c.midFrame() {
			// The peer owes the rest of a frame: time its silence from now,
			// the moment it last sent something.
			c.Conn.SetReadDeadline(time.Now().Add(frameSilenceLimit))
			c.deadlineSet = true
		} else if c.deadlineSet {
			c.Conn.SetReadDeadline(time.Time{})
			c.deadlineSet = false
		}
		// A deadline this reader did not set is a freeze's
		// (connfreeze.go), even if it has been thawed since.
		if errors.Is(err, os.ErrDeadlineExceeded) && (!silenceTimed || c.freezer.isFrozen()) {
			if n > 0 {
				return n, nil
			}
			continue // woken by a freeze
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			log.L.WithField("limit", frameSilenceLimit).Warn("a client sent part of a ttrpc frame and then nothing more; disconnecting it")
			// The server ends a connection whose peer went away
			// (io.ErrUnexpectedEOF); any other read error would leave
			// it open, with its slot taken.
			return n, fmt.Errorf("no byte of a begun frame for %s: %w", frameSilenceLimit, io.ErrUnexpectedEOF)
		}
		return n, err
	}
}

// wanted is how much of n bytes a read may take: no more than the rest of
// the current header, or of the current body.
func (c *frameReader) wanted(n int) int {
	if c.read.bodyLeft > 0 {
		return int(min(uint32(n), c.read.bodyLeft))
	}
	return min(n, ttrpcHeaderSize-c.read.headerRead)
}

// track follows b, the bytes of one read, through the frames, and keeps
// the request frames until they are answered (connfreeze.go).
func (c *frameReader) track(b []byte) {
	if len(b) == 0 {
		return
	}
	c.keep(b)
	if c.follow(b) {
		c.release() // a whole frame: the connection has proven itself
		c.freezer.requestRead(c, c.frame)
		c.frame = nil
	}
}

// maxReplayableFrame is the largest request frame kept whole until it is
// answered. The requests an upgrade hands over unanswered (Wait, Status)
// are a few hundred bytes; a larger one is always answered before the
// switch, so its header, which names its stream, is enough.
const maxReplayableFrame = 64 << 10

// keep adds b, bytes of the current frame (a read never crosses a frame's
// end), to the copy of it kept until it is answered: its header, and its
// body if the frame is small enough to be replayed. A client that begins a
// 4 MiB frame and stalls costs the ttrpc server's buffer, not a second copy.
func (c *frameReader) keep(b []byte) {
	if need := ttrpcHeaderSize - len(c.frame); need > 0 {
		n := min(need, len(b))
		c.frame = append(c.frame, b[:n]...)
		b = b[n:]
	}
	if len(b) > 0 && len(c.frame) >= ttrpcHeaderSize && binary.BigEndian.Uint32(c.frame[:4]) <= maxReplayableFrame {
		c.frame = append(c.frame, b...)
	}
}

// follow moves through the frames in b, and tells whether a frame ended
// in it.
func (c *frameReader) follow(b []byte) (ended bool) {
	c.read.followFrames(b, func(uint32, byte) { ended = true })
	return ended
}

// midFrame: the last byte read was not a frame's last.
func (c *frameReader) midFrame() bool { return c.read.midFrame() }

// Close closes the connection and gives back the slot of one that never
// sent a whole frame.
func (c *frameReader) Close() error {
	c.release()
	c.freezer.forget(c)
	return c.Conn.Close()
}

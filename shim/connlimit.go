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
	slots  chan struct{} // one token per unproven connection
	closed chan struct{}
	once   sync.Once
}

func limitConnections(l net.Listener) *connectionLimiter {
	return &connectionLimiter{Listener: l, slots: make(chan struct{}, maxUnproven), closed: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *connectionLimiter) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &frameReader{Conn: conn, release: sync.OnceFunc(func() { <-l.slots })}, nil
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
	headerRead  int                   // bytes of the current header read so far
	header      [ttrpcHeaderSize]byte //
	bodyLeft    uint32                // bytes of the current frame's body still to come
	deadlineSet bool
}

func (c *frameReader) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.follow(p[:n]) {
		c.release() // a whole frame: the connection has proven itself
	}
	if c.midFrame() {
		// The peer owes the rest of a frame: time its silence from now,
		// the moment it last sent something.
		c.Conn.SetReadDeadline(time.Now().Add(frameSilenceLimit))
		c.deadlineSet = true
	} else if c.deadlineSet {
		c.Conn.SetReadDeadline(time.Time{})
		c.deadlineSet = false
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

// follow moves through the frames in b, and tells whether a frame ended
// in it.
func (c *frameReader) follow(b []byte) (ended bool) {
	for len(b) > 0 {
		if c.bodyLeft > 0 {
			step := min(uint32(len(b)), c.bodyLeft)
			c.bodyLeft -= step
			b = b[step:]
			ended = ended || c.bodyLeft == 0
			continue
		}
		step := copy(c.header[c.headerRead:], b)
		c.headerRead += step
		b = b[step:]
		if c.headerRead == ttrpcHeaderSize {
			c.headerRead = 0
			c.bodyLeft = binary.BigEndian.Uint32(c.header[:4])
			ended = ended || c.bodyLeft == 0
		}
	}
	return ended
}

// midFrame: the last byte read was not a frame's last.
func (c *frameReader) midFrame() bool { return c.headerRead > 0 || c.bodyLeft > 0 }

// Close closes the connection and gives back the slot of one that never
// sent a whole frame.
func (c *frameReader) Close() error {
	c.release()
	return c.Conn.Close()
}

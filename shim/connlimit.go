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
//   - serves at most maxConnections connections at once; one more waits in
//     the socket's backlog until one of them closes;
//   - gives a frame that has begun frameReadLimit to arrive whole: a peer
//     that stops sending in the middle of a frame is disconnected.
//
// Neither ever touches an idle connection (containerd's waits between
// requests for as long as it likes), nor bounds how long a request takes to
// answer: the limit runs only while a frame is half read, and only on the
// peer's sending.
const (
	maxConnections = 16
	frameReadLimit = 10 * time.Second
)

// ttrpcHeaderSize is the size of a ttrpc frame's header: the length of the
// frame's body (4 bytes, big-endian), its stream id (4), type (1), flags (1).
const ttrpcHeaderSize = 10

// connectionLimiter is a listener that hands out at most maxConnections
// connections at a time, each one a frameReader.
type connectionLimiter struct {
	net.Listener
	slots     chan struct{} // one token per connection being served
	closed    chan struct{}
	closeOnce sync.Once
}

func limitConnections(l net.Listener) *connectionLimiter {
	return &connectionLimiter{Listener: l, slots: make(chan struct{}, maxConnections), closed: make(chan struct{})}
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
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// frameReader is one connection, read frame by frame: it follows the
// frames' boundaries in the bytes the server reads, and while a frame is
// only partly read, the connection has a read deadline frameReadLimit after
// the read that began it.
type frameReader struct {
	net.Conn
	release func() // frees the connection's slot; once

	// Guarded by the server's reading: one goroutine reads a connection.
	headerRead  int                   // bytes of the current header read so far
	header      [ttrpcHeaderSize]byte //
	bodyLeft    uint32                // bytes of the current frame's body still to come
	deadlineSet bool                  // a deadline runs for the frame being read
}

func (c *frameReader) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	began := c.follow(p[:n])
	if c.midFrame() {
		if began || !c.deadlineSet {
			c.Conn.SetReadDeadline(time.Now().Add(frameReadLimit))
			c.deadlineSet = true
		}
	} else if c.deadlineSet {
		c.Conn.SetReadDeadline(time.Time{})
		c.deadlineSet = false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		log.L.WithField("limit", frameReadLimit).Warn("a client sent part of a ttrpc frame and then nothing more; disconnecting it")
		// The server ends a connection whose peer went away
		// (io.ErrUnexpectedEOF); any other read error would leave
		// it open, and its slot taken.
		return n, fmt.Errorf("frame not whole after %s: %w", frameReadLimit, io.ErrUnexpectedEOF)
	}
	return n, err
}

// follow moves through the frames in b, and tells whether the last frame
// in it began in it (its deadline starts now).
func (c *frameReader) follow(b []byte) (began bool) {
	for len(b) > 0 {
		if c.bodyLeft > 0 {
			step := min(uint32(len(b)), c.bodyLeft)
			c.bodyLeft -= step
			b = b[step:]
			continue
		}
		if c.headerRead == 0 {
			began = true
		}
		step := copy(c.header[c.headerRead:], b)
		c.headerRead += step
		b = b[step:]
		if c.headerRead == ttrpcHeaderSize {
			c.headerRead = 0
			c.bodyLeft = binary.BigEndian.Uint32(c.header[:4])
		}
	}
	return began
}

// midFrame: the last byte read was not a frame's last.
func (c *frameReader) midFrame() bool { return c.headerRead > 0 || c.bodyLeft > 0 }

// Close closes the connection and frees its slot.
func (c *frameReader) Close() error {
	c.release()
	return c.Conn.Close()
}

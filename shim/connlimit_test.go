package shim

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
)

// frame is a ttrpc frame with a body of n bytes.
func frame(n int) []byte {
	f := make([]byte, ttrpcHeaderSize+n)
	binary.BigEndian.PutUint32(f, uint32(n))
	return f
}

// However the bytes of a run of frames are cut into reads, the reader is
// between frames exactly where a frame ended.
func TestFrameReaderFollowsFrameBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var stream []byte
		ends := map[int]bool{0: true}
		for range 1 + rng.IntN(5) {
			stream = append(stream, frame(rng.IntN(3000))...)
			ends[len(stream)] = true
		}
		var c frameReader
		for at := 0; at < len(stream); {
			next := min(len(stream), at+1+rng.IntN(700))
			c.follow(stream[at:next])
			at = next
			if c.midFrame() == ends[at] {
				t.Fatalf("after byte %d of %d: mid-frame %v; frames end at %v", at, len(stream), c.midFrame(), ends)
			}
		}
	}
}

// The limiter hands out maxUnproven connections; the next waits for one
// to close, and an Accept waiting when the listener closes returns.
func TestConnectionLimiterWaitsForAFreeSlot(t *testing.T) {
	socket, l := listenLimited(t)
	var served []net.Conn
	for range maxUnproven + 1 {
		client, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
	}
	for range maxUnproven {
		conn, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		served = append(served, conn)
	}
	if len(l.slots) != maxUnproven {
		t.Fatalf("%d slots taken by %d connections", len(l.slots), maxUnproven)
	}
	accepted := make(chan error)
	go func() {
		conn, err := l.Accept()
		if err == nil {
			conn.Close()
		}
		accepted <- err
	}()
	served[0].Close()
	served[0].Close() // a second Close frees nothing more
	if err := <-accepted; err != nil {
		t.Fatalf("the connection waiting for a slot: %v", err)
	}
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	l.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed limiter: %v, want net.ErrClosed", err)
	}
}

// A connection that has sent one whole frame gives its slot back: more
// such connections than slots are all served, as containerd's are, one per
// container of a grouped shim.
func TestConnectionLimiterFreesTheSlotOfAProvenConnection(t *testing.T) {
	socket, l := listenLimited(t)
	for i := range 3 * maxUnproven {
		client, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		served, err := l.Accept()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer served.Close()
		client.Write(frame(20))
		if _, err := io.ReadFull(served, make([]byte, ttrpcHeaderSize+20)); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.slots) != 0 {
		t.Fatalf("%d slots still taken by connections that each sent a whole frame", len(l.slots))
	}
}

// listenLimited listens on a socket in a test folder through a
// connectionLimiter, closed when the test ends.
func listenLimited(t *testing.T) (string, *connectionLimiter) {
	socket := filepath.Join(t.TempDir(), "s")
	inner, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	l := limitConnections(inner)
	t.Cleanup(func() { l.Close() })
	return socket, l
}

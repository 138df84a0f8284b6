package stdio

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A pump frozen in the middle of a stream, and a second pump that takes
// over its descriptors and what it had read but not written, as the next
// shim does after an upgrade, deliver every byte exactly once, in order:
// through the kernel (pipe to pipe, splice) and through the shim's memory
// (pipe to socket, read and write).
func TestFrozenPumpHandsOverEveryByte(t *testing.T) {
	for name, socketOut := range map[string]bool{"splice": false, "copy": true} {
		t.Run(name, func(t *testing.T) {
			want := make([]byte, 4<<20)
			for i := range want {
				want[i] = byte(i * 7 / 3)
			}
			from, input := osPipe(t)
			output, to := osPipe(t)
			if socketOut {
				output, to = socketPair(t)
			}
			go func() {
				input.Write(want)
				input.Close()
			}()
			got := make(chan []byte)
			go func() {
				data, _ := io.ReadAll(output)
				got <- data
			}()

			first := newPump("stdout", from, to, progress{}, nil)
			first.start()
			// Freeze and take over a few times while the stream flows.
			for range 5 {
				first.freeze()
				if first.done() {
					break
				}
				next := newPump("stdout", from, to, progress{pending: first.pending}, func(int64) { to.Close() })
				// The next shim's files have no deadline.
				from.SetReadDeadline(time.Time{})
				to.SetWriteDeadline(time.Time{})
				first = next
				first.start()
			}
			<-first.finished
			if first.afterInput == nil {
				to.Close()
			}
			if data := <-got; !bytes.Equal(data, want) {
				t.Fatalf("received %d bytes, want %d; first difference at %d", len(data), len(want), firstDifference(data, want))
			}
		})
	}
}

// A frozen pump that is thawed goes on where it stopped.
func TestThawedPumpGoesOn(t *testing.T) {
	from, input := osPipe(t)
	output, to := socketPair(t)
	p := newPump("stdin", from, to, progress{}, func(int64) { to.Close() })
	p.start()
	input.Write([]byte("before "))
	p.freeze()
	input.Write([]byte("during "))
	p.thaw()
	input.Write([]byte("after"))
	input.Close()
	data, _ := io.ReadAll(output)
	if string(data) != "before during after" {
		t.Fatalf("got %q", data)
	}
}

func socketPair(t *testing.T) (r, w *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "socket-r"), os.NewFile(uintptr(fds[1]), "socket-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A pump that copies through the shim's memory holds a buffer only while
// bytes are in it: once it has written what it read and waits for more, the
// buffer is back in the pool.
func TestWaitingPumpHoldsNoBuffer(t *testing.T) {
	from, input := osPipe(t)
	output, to := socketPair(t)
	p := newPump("stdout", from, to, progress{}, nil)
	if p.spliceFrom != nil {
		t.Fatal("a pipe to a socket is copied, not spliced")
	}
	p.start()
	input.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(output, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	p.freeze() // parks the pump: what it holds can be looked at
	if p.buffer != nil || len(p.pending) != 0 {
		t.Fatalf("a waiting pump holds a buffer (%v) or pending bytes (%d)", p.buffer != nil, len(p.pending))
	}
	p.thaw()
	input.Write([]byte(" again"))
	input.Close()
	rest, _ := io.ReadAll(io.LimitReader(output, 6))
	if string(rest) != " again" {
		t.Fatalf("after the wait: %q", rest)
	}
	<-p.finished
}

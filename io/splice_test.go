package stdio

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"testing"
	"time"
)

// TestSpliceMovesEveryByteInOrder: more than the pipes hold, written in
// pieces, read slowly at the other end so the output is full at times: every
// byte arrives, in order, and the count says how many moved.
func TestSpliceMovesEveryByteInOrder(t *testing.T) {
	inR, inW := osPipe(t)
	outR, outW := osPipe(t)
	want := make([]byte, 3<<20+17)
	rand.Read(want)

	moved := make(chan int64, 1)
	go func() {
		n, err := splicePipes(outW, inR)
		if err != nil {
			t.Errorf("splice: %v", err)
		}
		outW.Close()
		moved <- n
	}()
	go func() {
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 100_003)
			inW.Write(rest[:n])
			rest = rest[n:]
		}
		inW.Close()
	}()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := outR.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.Len() < 256<<10 {
			time.Sleep(time.Millisecond) // a slow reader: the output fills
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("received %d bytes, not the %d written, in order", got.Len(), len(want))
	}
	if n := <-moved; n != int64(len(want)) {
		t.Fatalf("splice says it moved %d bytes, want %d", n, len(want))
	}
}

// TestSpliceLetsGoOfTheOutputOnClose: the relay closes the FIFOs before the
// container's pipes. A copy must let go of its FIFO when it is closed, and
// end: whether the FIFO is full (nobody reads) or the copy is waiting for
// the container to write, which it does only after the close.
func TestSpliceLetsGoOfTheOutputOnClose(t *testing.T) {
	for _, c := range []struct {
		name                    string
		beforeClose, afterClose func(container *os.File)
	}{
		{
			name: "output full",
			// More than both pipes hold, grown or not.
			beforeClose: func(container *os.File) { go container.Write(make([]byte, 4*largePipe)) },
			afterClose:  func(*os.File) {},
		},
		{
			name:        "waiting for input",
			beforeClose: func(*os.File) {},
			afterClose:  func(container *os.File) { container.Write([]byte("late")) },
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			inR, inW := osPipe(t)
			_, outW := osPipe(t)
			done := make(chan error, 1)
			go func() {
				_, err := splicePipes(outW, inR)
				done <- err
			}()
			c.beforeClose(inW)
			time.Sleep(100 * time.Millisecond)
			closed := make(chan struct{})
			go func() {
				outW.Close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("closing the output waits for the copy")
			}
			c.afterClose(inW)
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("the copy ended without an error, though its output was closed under it")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the copy did not end when its output was closed")
			}
		})
	}
}

func osPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

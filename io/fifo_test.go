package stdio

import (
	"io"
	"os"
	"testing"
	"time"
)

// containerd's client opens its read end of an output FIFO from a goroutine,
// with a blocking open that waits for a writer. A process whose output was
// written and ended before that open ran must still reach the client: the
// shim keeps its writer until the FIFO has been read.
func TestOutputReachesAReaderThatOpensLate(t *testing.T) {
	path := fifos(t).Stdout
	fifo, err := openOutputFifo(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	if _, err := fifo.File().Write([]byte("late reader\n")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		fifo.CloseWriter() // the process's output has ended
		close(closed)
	}()
	// The client's open comes after the output ended: without a writer
	// left, a blocking open for reading would never return.
	time.Sleep(50 * time.Millisecond)
	got := make(chan string, 1)
	go func() {
		reader, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			got <- err.Error()
			return
		}
		defer reader.Close()
		data, _ := io.ReadAll(reader) // until the shim's writer closes
		got <- string(data)
	}()
	select {
	case output := <-got:
		if output != "late reader\n" {
			t.Fatalf("the late reader got %q", output)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late reader's open never returned: the writer was closed with the output unread")
	}
	<-closed
}

// With nobody reading (containerd away), CloseWriter still returns, and the
// output stays in the FIFO for the held reader.
func TestCloseWriterGivesUpOnAnAbsentReader(t *testing.T) {
	fifo, err := openOutputFifo(fifos(t).Stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	fifo.File().Write([]byte("nobody reads this\n"))
	if err := fifo.CloseWriter(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := fifo.heldReader.Read(buf)
	if string(buf[:n]) != "nobody reads this\n" {
		t.Fatalf("the FIFO holds %q", buf[:n])
	}
}

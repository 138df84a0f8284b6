package stdio

import (
	"io"
	"os"
	"syscall"
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
	output, err := readAsALateClient(t, path, "the writer was closed with the output unread")
	if err != nil || output != "late reader\n" {
		t.Fatalf("the late reader got %q (%v)", output, err)
	}
	<-closed
}

// An exec that prints nothing ends at once, and its FIFO holds no byte to
// wait for. If the client's open comes after that, it must still find a
// writer, and then read end-of-file; a blocking open for reading with no
// writer left would never return.
func TestAnEmptyOutputReachesAReaderThatOpensLate(t *testing.T) {
	path := fifos(t).Stdout
	fifo, err := openOutputFifo(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	if !fifo.readerLate {
		t.Fatal("no reader had the FIFO open, yet the shim saw one")
	}
	closed := make(chan struct{})
	go func() {
		fifo.CloseWriter() // the process ended without a byte of output
		close(closed)
	}()
	time.Sleep(50 * time.Millisecond) // let the output's end come first
	output, err := readAsALateClient(t, path, "the writer was closed before any reader came")
	if err != nil || output != "" {
		t.Fatalf("the late reader: read %q (%v), want nothing", output, err)
	}
	<-closed
}

// readAsALateClient opens path for reading, as containerd's client does
// (a blocking open that waits for a writer), and reads it to its end. An
// open that has not returned after a minute (it returns at once when the
// shim works, however busy the machine) fails the test with why: it would
// otherwise hang the test until go test's own timeout.
func readAsALateClient(t *testing.T, path, why string) (string, error) {
	t.Helper()
	type result struct {
		output string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		reader, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer reader.Close()
		data, err := io.ReadAll(reader) // until the shim's writer closes
		got <- result{string(data), err}
	}()
	select {
	case r := <-got:
		return r.output, r.err
	case <-time.After(time.Minute):
		t.Fatal("the late reader's open never returned: " + why)
		return "", nil
	}
}

// A reader that has the FIFO open before the shim opens it (the usual
// order: containerd opens its ends before it asks for the process) is seen,
// and the writer is closed as soon as the output is read. (The test's reader
// opens without waiting, where containerd's waits in its open: the kernel
// counts either as a reader.)
func TestAReaderThereFirstIsSeen(t *testing.T) {
	path := fifos(t).Stdout
	reader := openReaderFirst(t, path)
	defer reader.Close()
	fifo, err := openOutputFifo(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	if fifo.readerLate {
		t.Fatal("a reader had the FIFO open, and the shim did not see it")
	}
	fifo.File().Write([]byte("hello\n"))
	if err := fifo.CloseWriter(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(reader); err != nil || string(got) != "hello\n" {
		t.Fatalf("the reader got %q (%v)", got, err)
	}
}

// openReaderFirst opens a FIFO's read end the way a client that came first
// has it open.
func openReaderFirst(t *testing.T, path string) *os.File {
	t.Helper()
	reader, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	return reader
}

// With containerd gone after the FIFO was opened, CloseWriter still
// returns, and the output stays in the FIFO for the held reader.
func TestCloseWriterGivesUpOnAnAbsentReader(t *testing.T) {
	path := fifos(t).Stdout
	reader := openReaderFirst(t, path)
	fifo, err := openOutputFifo(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	reader.Close() // containerd goes away
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

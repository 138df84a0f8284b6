package stdio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// outputFifo is a stdout or stderr FIFO opened for writing, together with a
// read end that the shim holds and never reads.
//
// The held reader is there for a kernel rule: writing to a FIFO that has no
// reader fails with EPIPE. containerd is the FIFO's real reader, and it may
// stop or restart while the container runs. Because the shim is always a
// reader too, the FIFO never loses its last reader: while containerd is away
// the output waits in the FIFO (and then in the pipe, and then the container
// blocks on write) until containerd opens the FIFO again and reads it all.
type outputFifo struct {
	path string

	// readerLate: containerd's reader had not opened the FIFO when the
	// shim did (see CloseWriter).
	readerLate bool

	mu         sync.Mutex // guards write and heldReader against Close
	write      *os.File
	heldReader *os.File
	closed     chan struct{} // closed by Close
}

// openOutputFifo opens a stdout or stderr FIFO: the shim writes, and holds
// the read end.
func openOutputFifo(path string) (*outputFifo, error) {
	writer, err := openWriterIfRead(path)
	if err != nil {
		return nil, err
	}
	if writer == nil {
		reader, writer, err := openBothEnds(path)
		if err != nil {
			return nil, err
		}
		return &outputFifo{path: path, readerLate: true, write: writer, heldReader: reader, closed: make(chan struct{})}, nil
	}
	reader, err := os.OpenFile(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open stdio fifo %s: %w", path, kindOf(err))
	}
	return &outputFifo{path: path, write: writer, heldReader: reader, closed: make(chan struct{})}, nil
}

// openWriterIfRead opens the FIFO for writing if a reader has it open
// already, and returns nil if none has: a non-blocking open for writing
// fails with ENXIO then (fifo(7)). The usual case is containerd's reader
// waiting in its own open for a writer, which this open wakes.
func openWriterIfRead(path string) (*os.File, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open stdio fifo %s: %w", path, kindOf(err))
	}
	if info.Mode()&os.ModeNamedPipe == 0 {
		return nil, fmt.Errorf("stdio path %s is not a fifo: %w", path, errdefs.ErrInvalidArgument)
	}
	writer, err := os.OpenFile(path, unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENXIO) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open stdio fifo %s for writing: %w", path, kindOf(err))
	}
	return writer, nil
}

// hasReader tells whether a FIFO has a reader. The probe's write end is
// closed at once, so it must be asked only while the shim's own writer
// is open: a reader woken by the probe then still has a writer, and does
// not read end-of-file.
func hasReader(path string) (bool, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		unix.Close(fd)
		return true, nil
	case errors.Is(err, unix.ENXIO):
		return false, nil
	default:
		return false, err
	}
}

// openBothEnds opens both ends of a FIFO without waiting for containerd: the
// read end is opened first with O_NONBLOCK, which never waits, and the write
// end then finds a reader already there, so it does not wait either. (A
// plain open of either end alone waits until the other end is open.)
func openBothEnds(path string) (reader, writer *os.File, err error) {
	reader, err = os.OpenFile(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open stdio fifo %s: %w", path, kindOf(err))
	}
	if err := requireFifo(reader); err != nil {
		reader.Close()
		return nil, nil, err
	}
	writer, err = os.OpenFile(path, unix.O_WRONLY, 0)
	if err != nil {
		reader.Close()
		return nil, nil, fmt.Errorf("open stdio fifo %s for writing: %w", path, kindOf(err))
	}
	return reader, writer, nil
}

// File is the FIFO's write end.
func (f *outputFifo) File() *os.File { return f.write }

// CloseWriter closes the write end once the output has ended. The held
// reader stays open: if containerd is away, what is still in the FIFO's
// buffer must wait for it, and the kernel discards a FIFO's contents when the
// last of its ends closes.
//
// It first lets containerd's reader take what the FIFO still holds. The
// client opens its end of the FIFO from a goroutine of its own (containerd's
// fifo package), and a blocking open for reading waits for a writer: if the
// shim's writer had come and gone before that open ran, the open would wait
// for a writer that never comes, and the client, told of the exit, would
// give up on the output. Under a load of many short execs that was seen to
// lose an exec's whole output.
//
// A reader that opens after the writer is gone is the same loss, without a
// byte in the FIFO to wait for: an exec that prints nothing ends within a
// millisecond, and on a busy machine containerd's goroutine may not have
// opened its end yet. Its open would then wait forever, and the client with
// it (`crictl exec --sync` was seen to hang so). So when containerd's
// reader was not there at the start, the writer stays open until it is, or
// until the shim closes the FIFO for good.
func (f *outputFifo) CloseWriter() error {
	if f.readerLate {
		f.waitForReader()
	}
	waitUntilRead(f.write, unreadOutputLimit)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.write.Close()
}

// waitForReader waits until a reader other than the shim's held one has
// the FIFO open, or the FIFO is closed.
func (f *outputFifo) waitForReader() {
	pause := time.Millisecond
	for !f.otherReaderThere() {
		select {
		case <-f.closed:
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
	f.readerLate = false
}

// otherReaderThere asks the kernel whether a reader besides the shim's has
// the FIFO open. The held reader would answer for itself, so it is closed
// for the question and opened again after it. The FIFO keeps its contents
// meanwhile: the shim's write end keeps the pipe alive. A failure to open
// the held reader again only loses the guard against containerd being away.
func (f *outputFifo) otherReaderThere() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.closed:
		return true
	default:
	}
	f.heldReader.Close()
	there, err := hasReader(f.path)
	if reader, openErr := os.OpenFile(f.path, unix.O_RDONLY|unix.O_NONBLOCK, 0); openErr == nil {
		f.heldReader = reader
	}
	return there || err != nil
}

// unreadOutputLimit bounds how long CloseWriter waits for a reader: with
// containerd away, the output stays in the FIFO for the held reader, and the
// exit must still be reported (the shim's exit path waits 5s at most).
const unreadOutputLimit = 3 * time.Second

// waitUntilRead polls until the FIFO holds no unread bytes (FIONREAD works on
// either end of a pipe), or limit passes, or the file is closed.
func waitUntilRead(f *os.File, limit time.Duration) {
	conn, err := f.SyscallConn()
	if err != nil {
		return
	}
	deadline := time.Now().Add(limit)
	for {
		unread := 0
		// Control holds the descriptor, so a Close meanwhile cannot
		// hand its number to another file under the ioctl.
		ctlErr := conn.Control(func(fd uintptr) {
			unread, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
		})
		if ctlErr != nil || err != nil || unread == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (f *outputFifo) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed != nil {
		select {
		case <-f.closed:
		default:
			close(f.closed)
		}
	}
	f.write.Close()
	return f.heldReader.Close()
}

// requireFifo refuses a path that is not a FIFO: a regular file there would be
// appended to forever, and a device could be anything.
func requireFifo(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Mode()&os.ModeNamedPipe == 0 {
		return fmt.Errorf("stdio path %s is not a fifo: %w", f.Name(), errdefs.ErrInvalidArgument)
	}
	return nil
}

// inputFifo is the stdin FIFO opened for reading, together with a write end
// that the shim holds.
//
// The held writer is there for the mirror of the output rule: a FIFO read
// returns end-of-file as soon as no writer is left. containerd's writer may go
// away without the user's stdin having ended: containerd restarts, a client
// detaches and attaches again. The container must not see end-of-file then,
// only when containerd says stdin is over (CloseIO), which closes the held
// writer.
type inputFifo struct {
	read       *os.File
	heldWriter *os.File
}

// openInputFifo opens the stdin FIFO: the shim reads, and holds the write
// end.
func openInputFifo(path string) (*inputFifo, error) {
	reader, writer, err := openBothEnds(path)
	if err != nil {
		return nil, err
	}
	return &inputFifo{read: reader, heldWriter: writer}, nil
}

func (f *inputFifo) Read(p []byte) (int, error) { return f.read.Read(p) }

// CloseWriter gives up the held writer: once containerd's writers are gone
// too, and the FIFO is drained, the reader sees end-of-file.
func (f *inputFifo) CloseWriter() error { return f.heldWriter.Close() }

func (f *inputFifo) Close() error {
	f.heldWriter.Close()
	return f.read.Close()
}

func kindOf(err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
}

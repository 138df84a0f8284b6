package stdio

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
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
	write      *os.File
	heldReader *os.File
}

// openOutputFifo opens path without waiting for containerd: the read end is
// opened first with O_NONBLOCK, which never waits, and the write end then
// finds a reader already there, so it does not wait either.
func openOutputFifo(path string) (*outputFifo, error) {
	reader, err := os.OpenFile(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open stdio fifo %s: %w", path, kindOf(err))
	}
	if err := requireFifo(reader); err != nil {
		reader.Close()
		return nil, err
	}
	writer, err := os.OpenFile(path, unix.O_WRONLY, 0)
	if err != nil {
		reader.Close()
		return nil, fmt.Errorf("open stdio fifo %s for writing: %w", path, kindOf(err))
	}
	return &outputFifo{write: writer, heldReader: reader}, nil
}

// CloseWriter closes the write end once the output has ended. The held
// reader stays open: if containerd is away, what is still in the FIFO's
// buffer must wait for it, and the kernel discards a FIFO's contents when the
// last of its ends closes.
func (f *outputFifo) CloseWriter() error {
	return f.write.Close()
}

func (f *outputFifo) Close() error {
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

// openInputFifo opens the stdin FIFO for reading. It returns at once; reads
// wait until containerd (or a later client) opens the write end, and end with
// io.EOF when the last writer closes it.
func openInputFifo(ctx context.Context, path string) (io.ReadCloser, error) {
	f, err := fifo.OpenFifo(ctx, path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open stdin fifo %s: %w", path, kindOf(err))
	}
	return f, nil
}

func kindOf(err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
}

package integration

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"golang.org/x/sys/unix"
)

// clientFIFOs are the stdout and stderr FIFOs of one process, made and read
// by the test itself, as a client such as ctr makes and reads them, but in
// the open: the test can stop reading, close its end as a client that went
// away does, and open the FIFO again later, as a client that came back.
// It implements cio.IO, so the task is created with its paths.
type clientFIFOs struct {
	stdout, stderr string
}

func newClientFIFOs(t *testing.T, s *session, id string) *clientFIFOs {
	t.Helper()
	dir, err := os.MkdirTemp(s.daemon.FIFODir, id+"-")
	if errors.Is(err, os.ErrNotExist) {
		os.MkdirAll(s.daemon.FIFODir, 0o700)
		dir, err = os.MkdirTemp(s.daemon.FIFODir, id+"-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &clientFIFOs{stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr")}
	for _, path := range []string{f.stdout, f.stderr} {
		if err := unix.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// creator hands the FIFOs to NewTask or Exec.
func (f *clientFIFOs) creator() cio.Creator {
	return func(string) (cio.IO, error) { return f, nil }
}

func (f *clientFIFOs) Config() cio.Config { return cio.Config{Stdout: f.stdout, Stderr: f.stderr} }
func (f *clientFIFOs) Cancel()            {}
func (f *clientFIFOs) Wait()              {}
func (f *clientFIFOs) Close() error       { return nil }

// fifoReader reads one FIFO in a goroutine of its own, keeping what it read
// (or only counting it), optionally no faster than a given rate.
type fifoReader struct {
	file *os.File
	keep bool
	rate int64 // bytes per second; 0: as fast as the shim writes
	done chan struct{}

	closed atomic.Bool // stop was called

	mu    sync.Mutex // guards data, total, err
	data  []byte
	total int64
	err   error // why reading ended: io.EOF once every writer closed
}

// readFIFO opens path for reading and starts reading it. It is opened
// non-blocking, so the open does not wait for a writer (the stock shim opens
// its end only during NewTask, and waits for a reader); Go's poller then
// waits for data.
func readFIFO(t *testing.T, path string, keep bool, rate int64) *fifoReader {
	t.Helper()
	file, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &fifoReader{file: file, keep: keep, rate: rate, done: make(chan struct{})}
	go r.run()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *fifoReader) run() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	started := time.Now()
	for {
		n, err := r.file.Read(buf)
		if errors.Is(err, io.EOF) && r.bytes() == 0 && !r.closed.Load() {
			// No writer yet: the stock shim opens its end only once
			// NewTask runs. The end of the output comes after some.
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		r.total += int64(n)
		if r.keep {
			r.data = append(r.data, buf[:n]...)
		}
		total := r.total
		if err != nil {
			r.err = err
		}
		r.mu.Unlock()
		if err != nil {
			return
		}
		if r.rate > 0 {
			// Sleep until the bytes read so far are due at this rate.
			due := started.Add(time.Duration(float64(total) / float64(r.rate) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
}

// stop closes the reader's end, as a client that goes away does, and returns
// what it read. Bytes still in the FIFO stay there for the next reader.
func (r *fifoReader) stop() []byte {
	r.closed.Store(true)
	r.file.Close()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data
}

// waitEOF waits until every writer closed the FIFO and it is drained.
func (r *fifoReader) waitEOF(timeout time.Duration) error {
	select {
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err != nil && !errors.Is(r.err, os.ErrClosed) && !errors.Is(r.err, io.EOF) {
			return r.err
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("no end of output within %v (%d bytes read)", timeout, r.bytes())
	}
}

func (r *fifoReader) bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func (r *fifoReader) snapshot() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.data...)
}

package stdio

import (
	"os"
	"sync/atomic"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// Streams is a process's stdio as the shim relays it once the process
// exists: through pipes (Relay) or through a pseudo-terminal (Terminal).
type Streams interface {
	// OutputDone is closed once all of the process's output is in the
	// FIFOs.
	OutputDone() <-chan struct{}
	// CloseStdin ends the process's stdin (containerd's CloseIO).
	CloseStdin()
	// Resize sets the terminal's window size; without a terminal it does
	// nothing.
	Resize(width, height uint32) error
	// ProcessExited tells the streams their process has exited.
	ProcessExited()
	// Close releases everything.
	Close() error
	// Bytes counts what each stream carried so far; a stream's count is
	// complete once its copy has ended (for the output, at OutputDone).
	Bytes() Bytes
}

// Bytes counts what each of a process's streams carried: the exit
// forensics in the journal show it.
type Bytes struct{ Stdin, Stdout, Stderr int64 }

// byteCounts are the counters the copies add to when they end.
type byteCounts struct{ stdin, stdout, stderr atomic.Int64 }

func (c *byteCounts) snapshot() Bytes {
	return Bytes{Stdin: c.stdin.Load(), Stdout: c.stdout.Load(), Stderr: c.stderr.Load()}
}

// streamEnded records that a stream's copy ended, and at debug level how
// much it carried.
func streamEnded(rec journal.Recorder, stream, path string, n int64) {
	e := journal.Entry{Kind: journal.KindClose, Name: stream, Path: path}
	if rec.Debug() {
		e.Bytes = n
	}
	rec.Record(e)
}

// streamOpened records a FIFO, file or pipe opened for a stream; at debug
// level with the shim's file descriptor for it.
func streamOpened(rec journal.Recorder, stream, what, path string, f *os.File) {
	e := journal.Entry{Kind: journal.KindOpen, Name: stream, Msg: what, Path: path}
	if rec.Debug() && f != nil {
		e.FD = fdOf(f)
	}
	rec.Record(e)
}

// fdOf reads a file's descriptor without os.File.Fd, which would switch the
// file to blocking mode and take it off Go's poller.
func fdOf(f *os.File) int {
	fd := -1
	if conn, err := f.SyscallConn(); err == nil {
		conn.Control(func(raw uintptr) { fd = int(raw) })
	}
	return fd
}

// Resize does nothing: pipes have no window size.
func (r *Relay) Resize(width, height uint32) error { return nil }

// ProcessExited does nothing: the pipes end by themselves when the last
// process holding them exits.
func (r *Relay) ProcessExited() {}

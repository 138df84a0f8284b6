package stdio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
	"sync/atomic"

	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// Relay copies between a process's pipes and containerd's FIFOs:
// stdin FIFO → stdin pipe, stdout pipe → stdout FIFO, stderr pipe → stderr
// FIFO; or, for a process on a terminal, stdin FIFO → pty master → stdout
// FIFO (terminal.go).
//
// Each copy runs in a goroutine owned by the Relay; Close stops them all.
type Relay struct {
	pipes     *Pipes
	master    *ptyMaster // the process's terminal; nil for pipes
	paths     Paths
	stdinFifo *inputFifo // nil without stdin
	outputs   []copyJob  // FIFOs and files to copy to, from Start on
	loggerURI *url.URL   // a binary:// or binary-v2:// output, started by Start
	logger    *binaryLogger
	closers   []io.Closer
	// outputDone is closed when both output copies have reached end-of-file:
	// every process holding the container's stdout/stderr has closed it, and
	// every byte written is in the FIFOs.
	outputDone chan struct{}
	closeOnce  sync.Once
	observer   observe.Observer
	// pumps are the copy loops Start started (pump.go).
	pumps []*pump
}

// copyBufferSize is the size of each copy's buffer: the same as a pipe's
// default capacity on Linux (64 KiB), so one read can empty a full pipe.
const copyBufferSize = 64 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// OpenRelay opens the FIFOs (or files) named in paths, before runc runs, so
// a bad path fails the request early. Nothing is copied until Start: the
// shim starts the relay only once runc has created the process, so what runc
// itself writes to the process's stderr when it fails (its error message,
// which the caller gets anyway) is not also passed on as the container's
// output. An error means nothing is left open (pipes excepted: the caller
// owns them until OpenRelay succeeds).
func OpenRelay(paths Paths, pipes *Pipes) (_ *Relay, err error) {
	r := &Relay{pipes: pipes, paths: paths, outputDone: make(chan struct{}), observer: paths.Observer}
	defer func() {
		if err != nil {
			r.closeFifos()
		}
	}()
	if paths.Stdin != "" {
		if r.stdinFifo, err = openInputFifo(paths.Stdin); err != nil {
			return nil, err
		}
		r.closers = append(r.closers, r.stdinFifo)
		r.observer.StreamOpened(observe.Stream{Name: "stdin", What: "fifo", Path: paths.Stdin, File: r.stdinFifo.read})
	}
	uri, isURI, err := outputURI(paths.Stdout)
	if err != nil {
		return nil, err
	}
	if isURI && isLoggerScheme(uri.Scheme) {
		r.loggerURI = uri // the logging program reads the pipes itself
		r.observer.StreamOpened(observe.Stream{Name: "stdout+stderr", What: "logging program", Path: paths.Stdout})
		return r, nil
	}
	for _, stream := range []copyJob{
		{name: "stdout", path: paths.Stdout, from: pipes.stdout.read},
		{name: "stderr", path: paths.Stderr, from: pipes.stderr.read},
	} {
		if stream.path == "" {
			continue
		}
		if stream.to, err = openOutput(stream.path); err != nil {
			return nil, err
		}
		r.closers = append(r.closers, stream.to)
		r.outputs = append(r.outputs, stream)
		r.observer.StreamOpened(observe.Stream{Name: stream.name, What: outputKind(stream.path), Path: stream.path, File: stream.to.File()})
	}
	return r, nil
}

// Start starts copying, or the logging program of a binary:// or
// binary-v2:// output; waiting for that program to be ready ends with ctx,
// the request's.
func (r *Relay) Start(ctx context.Context) error {
	if r.loggerURI != nil {
		logger, err := startBinaryLogger(ctx, r.loggerURI, r.paths.Owner, r.pipes)
		if err != nil {
			return err
		}
		r.followLogger(logger)
	} else {
		r.copyOutputs(r.outputs, nil)
	}
	if r.stdinFifo != nil {
		r.copyStdin(progress{})
	}
	return nil
}

// followLogger makes the logging program's exit the end of the output.
func (r *Relay) followLogger(logger *binaryLogger) {
	r.logger = logger
	if logger.pidfd != nil {
		r.closers = append(r.closers, logger.pidfd)
	}
	go func() {
		<-logger.exited
		close(r.outputDone)
	}()
}

// output is where a stream's bytes go: a FIFO or a file.
type output interface {
	// File is what the copy writes to. It is an *os.File so that the
	// kernel can move the bytes from the pipe to a FIFO (splice.go).
	File() *os.File
	// CloseWriter is called when the process's output has ended.
	CloseWriter() error
	Close() error
}

// openOutput opens a stdout or stderr destination: a FIFO path, or a
// file:// URI.
func openOutput(path string) (output, error) {
	uri, isURI, err := outputURI(path)
	switch {
	case err != nil:
		return nil, err
	case !isURI:
		return openOutputFifo(path)
	case uri.Scheme == "file":
		return openOutputFile(uri.Path)
	}
	return nil, fmt.Errorf("%s cannot be combined with another output: %w", path, errdefs.ErrInvalidArgument)
}

// copyJob is one output stream's copy: from the pipe (or the pty master) to
// the FIFO or file.
type copyJob struct {
	name, path string
	to         output
	from       source // the shim's end of the process's stdout or stderr pipe, or the master
}

// outputKind says what an output path names, for the observer.
func outputKind(path string) string {
	if uri, isURI, _ := outputURI(path); isURI {
		return uri.Scheme
	}
	return "fifo"
}

// copyStdin copies the stdin FIFO into the process. Into its stdin pipe,
// which is closed when containerd's side reaches end-of-file (CloseIO, or
// the client went away), so that the process reads end-of-file; or into its
// terminal, which stays open: a terminal's input has no end, and its output
// goes on.
func (r *Relay) copyStdin(at progress) {
	var to sink = r.master
	if r.master == nil {
		to = r.pipes.stdin.write
	}
	p := newPump("stdin", r.stdinFifo.read, to, at, func(n int64) {
		if r.master == nil {
			r.pipes.stdin.write.Close()
		}
		r.observer.StreamClosed(observe.Stream{Name: "stdin", Path: r.paths.Stdin, Bytes: n})
	})
	r.pumps = append(r.pumps, p)
	p.start()
}

// copyOutputs starts one copy per output stream; outputDone is closed when
// every stream has ended. at holds, by stream name, where an earlier shim's
// copy stood (handover.go).
//
// To a FIFO (the usual destination, containerd's) the kernel moves the bytes
// from pipe to pipe (splice.go); to a file:// destination, or whatever
// splice could not move, they are copied.
func (r *Relay) copyOutputs(jobs []copyJob, at map[string]progress) {
	if len(jobs) == 0 {
		close(r.outputDone)
		return
	}
	// The copy that ends last says the output is done; no goroutine waits
	// for the others (an idle container's goroutines are its memory).
	var running atomic.Int32
	running.Store(int32(len(jobs)))
	for _, job := range jobs {
		p := newPump(job.name, job.from, job.to.File(), at[job.name], func(n int64) {
			// End of the process's output: containerd's reader sees
			// end-of-file once it has read everything.
			job.to.CloseWriter()
			r.observer.StreamClosed(observe.Stream{Name: job.name, Path: job.path, Bytes: n})
			if running.Add(-1) == 0 {
				close(r.outputDone)
			}
		})
		r.pumps = append(r.pumps, p)
		p.start()
	}
}

// copyStream copies through the shim's memory, one buffer at a time.
func copyStream(to io.Writer, from io.Reader) int64 {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	// Given two *os.File, io.CopyBuffer would hand them to os.File's
	// WriteTo and ReadFrom, which find no zero-copy path between a pipe
	// and a file and copy with a buffer they allocate on every call.
	n, _ := io.CopyBuffer(struct{ io.Writer }{to}, struct{ io.Reader }{from}, *buf)
	return n
}

// CloseStdin is containerd's CloseIO: stdin is over. The shim gives up its
// held writer; what containerd wrote is still delivered, and then the process
// reads end-of-file.
func (r *Relay) CloseStdin() {
	if r.stdinFifo != nil {
		r.stdinFifo.CloseWriter()
	}
}

// OutputDone is closed once all of the process's output has been written to
// the FIFOs.
func (r *Relay) OutputDone() <-chan struct{} { return r.outputDone }

// Close stops every copy: it closes the FIFOs and the shim's pipe ends, or
// its terminal's master. Output that nobody read stays in the FIFO buffer for
// a reader to collect.
func (r *Relay) Close() error {
	var err error
	r.closeOnce.Do(func() {
		err = errors.Join(r.closeFifos(), r.pipes.Close())
		if r.master != nil {
			err = errors.Join(err, r.master.Close())
			r.observer.StreamClosed(observe.Stream{Name: "pty", What: "master and FIFOs closed"})
			return
		}
		r.observer.StreamClosed(observe.Stream{Name: "stdio", What: "FIFOs and pipes closed"})
	})
	return err
}

func (r *Relay) closeFifos() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

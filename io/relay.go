package stdio

import (
	"errors"
	"io"
	"sync"
)

// Relay copies between a process's pipes and containerd's FIFOs:
// stdin FIFO → stdin pipe, stdout pipe → stdout FIFO, stderr pipe → stderr FIFO.
//
// Each copy runs in a goroutine owned by the Relay; Close stops them all.
type Relay struct {
	pipes     *Pipes
	stdinFifo *inputFifo // nil without stdin
	closers   []io.Closer
	// outputDone is closed when both output copies have reached end-of-file:
	// every process holding the container's stdout/stderr has closed it, and
	// every byte written is in the FIFOs.
	outputDone chan struct{}
	closeOnce  sync.Once
}

// copyBufferSize is the size of each copy's buffer: the same as a pipe's
// default capacity on Linux (64 KiB), so one read can empty a full pipe.
const copyBufferSize = 64 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// StartRelay opens the FIFOs named in paths and starts copying. An error
// means nothing was started and nothing is left open (pipes excepted: the
// caller owns them until StartRelay succeeds).
func StartRelay(paths Paths, pipes *Pipes) (_ *Relay, err error) {
	r := &Relay{pipes: pipes, outputDone: make(chan struct{})}
	defer func() {
		if err != nil {
			r.closeFifos()
		}
	}()

	var stdin *inputFifo
	if paths.Stdin != "" {
		if stdin, err = openInputFifo(paths.Stdin); err != nil {
			return nil, err
		}
		r.stdinFifo = stdin
		r.closers = append(r.closers, stdin)
	}
	var outputs []copyJob
	for _, stream := range []struct {
		path string
		from io.Reader
	}{{paths.Stdout, pipes.Stdout()}, {paths.Stderr, pipes.Stderr()}} {
		if stream.path == "" {
			continue
		}
		out, err := openOutputFifo(stream.path)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, out)
		outputs = append(outputs, copyJob{to: out, from: stream.from})
	}

	if stdin != nil {
		go r.copyStdin(stdin)
	}
	go r.copyOutputs(outputs)
	return r, nil
}

type copyJob struct {
	to   *outputFifo
	from io.Reader
}

// copyStdin closes the container's stdin when containerd's side reaches
// end-of-file, so a process such as `cat` sees EOF and can finish.
func (r *Relay) copyStdin(stdin io.Reader) {
	to := r.pipes.Stdin()
	copyStream(to, stdin)
	to.Close()
}

func (r *Relay) copyOutputs(jobs []copyJob) {
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			copyStream(job.to.write, job.from)
			// End of the process's output: containerd's reader sees
			// end-of-file once it has read everything.
			job.to.CloseWriter()
		}()
	}
	wg.Wait()
	close(r.outputDone)
}

func copyStream(to io.Writer, from io.Reader) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	_, _ = io.CopyBuffer(to, from, *buf)
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

// Close stops every copy: it closes the FIFOs and the shim's pipe ends.
// Output that nobody read stays in the FIFO buffer for a reader to collect.
func (r *Relay) Close() error {
	var err error
	r.closeOnce.Do(func() {
		err = errors.Join(r.closeFifos(), r.pipes.Close())
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

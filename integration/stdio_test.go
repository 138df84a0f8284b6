package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/client"
)

// stdio is what a test gives a task and reads back.
type stdio struct {
	stdin  io.Reader // nil: the task gets no stdin at all
	stdout syncBuffer
	stderr syncBuffer
}

// syncBuffer is a bytes.Buffer the client's copy goroutine writes to while
// the test reads it, e.g. to wait for a container to say it is ready.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stdinCloser sends CloseIO once the test's stdin is used up, as ctr does.
// The shim itself may hold the stdin FIFO open for writing (the runc shim
// does, so that the container does not see EOF before a client attaches);
// the client closing its end is then not enough, and `cat` would wait for
// input forever without the CloseIO request that tells the shim to let go.
//
// The client starts copying stdin when it makes the FIFOs, before NewTask
// returns the task: a short input can be used up before there is a task to
// send CloseIO to. So whichever comes second, the end of input or the task,
// sends it.
type stdinCloser struct {
	reader io.Reader
	ctx    context.Context

	mu     sync.Mutex // guards the fields below
	task   client.Process
	atEOF  bool
	closed bool
}

func (c *stdinCloser) Read(p []byte) (int, error) {
	n, err := c.reader.Read(p)
	if errors.Is(err, io.EOF) {
		c.mu.Lock()
		c.atEOF = true
		c.closeIfDone()
		c.mu.Unlock()
	}
	return n, err
}

// attach hands over the task once NewTask has returned it.
func (c *stdinCloser) attach(task client.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.task = task
	c.closeIfDone()
}

func (c *stdinCloser) closeIfDone() {
	if c.task != nil && c.atEOF && !c.closed {
		c.closed = true
		c.task.CloseIO(c.ctx, client.WithStdinCloser)
	}
}

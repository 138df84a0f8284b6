package stdio

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/console"
	runc "github.com/containerd/go-runc"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// Terminal relays a process that runs on a pseudo-terminal (`ctr run -t`,
// `docker exec -it`, `kubectl exec -it`). runc creates the pty inside the
// container and sends its master end to the shim over a console socket; the
// process's stdin, stdout and stderr are all the pty's slave end, so there is
// only one output stream: containerd's stdout FIFO.
type Terminal struct {
	master     *console.EpollConsole
	stdin      *inputFifo  // nil without stdin
	stdout     *outputFifo // nil without stdout
	outputDone chan struct{}
	// shutdownOnce: the master is unregistered from epoll once; after
	// Close its fd number may belong to another file.
	shutdownOnce sync.Once
	closeOnce    sync.Once
	observer     observe.Observer
	paths        Paths
}

// One epoll instance, with one goroutine waiting on it, serves every terminal
// of the shim: the master is non-blocking, and a read or write that would
// block parks until epoll says the master is ready.
var (
	epollerOnce sync.Once
	epoller     *console.Epoller
	epollerErr  error
)

func sharedEpoller() (*console.Epoller, error) {
	epollerOnce.Do(func() {
		if epoller, epollerErr = console.NewEpoller(); epollerErr == nil {
			go epoller.Wait()
		}
	})
	return epoller, epollerErr
}

// NewConsoleSocket makes the unix socket runc sends the pty master to
// (runc --console-socket).
func NewConsoleSocket() (*runc.Socket, error) {
	socket, err := runc.NewTempConsoleSocket()
	if err != nil {
		return nil, fmt.Errorf("create console socket: %w", err)
	}
	return socket, nil
}

// StartTerminal receives the master from runc, once runc has created the
// process, and starts relaying it to and from containerd's FIFOs.
func StartTerminal(paths Paths, socket *runc.Socket) (_ *Terminal, err error) {
	master, err := socket.ReceiveMaster()
	if err != nil {
		return nil, fmt.Errorf("receive the pty master from runc: %w", err)
	}
	poller, err := sharedEpoller()
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("epoll for the terminal: %w", err)
	}
	epollMaster, err := poller.Add(master)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("watch the pty master: %w", err)
	}
	t := &Terminal{master: epollMaster, outputDone: make(chan struct{}), observer: paths.Observer, paths: paths}
	// No File: reading its descriptor through Fd would put the master
	// back into blocking mode under the epoll console.
	t.observer.StreamOpened(observe.Stream{Name: "pty", What: "master received from runc", Path: master.Name()})
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if paths.Stdin != "" {
		if t.stdin, err = openInputFifo(paths.Stdin); err != nil {
			return nil, err
		}
		t.observer.StreamOpened(observe.Stream{Name: "stdin", What: "fifo", Path: paths.Stdin, File: t.stdin.read})
	}
	if paths.Stdout != "" {
		if t.stdout, err = openOutputFifo(paths.Stdout); err != nil {
			return nil, err
		}
		t.observer.StreamOpened(observe.Stream{Name: "stdout", What: "fifo", Path: paths.Stdout, File: t.stdout.write})
	}
	if t.stdin != nil {
		go t.copyInput()
	}
	go t.copyOutput()
	return t, nil
}

// copyOutput copies everything the process writes to the terminal. Without
// a stdout FIFO it is still read and dropped: a terminal nobody reads fills
// up and blocks the process.
func (t *Terminal) copyOutput() {
	var to io.Writer = io.Discard
	if t.stdout != nil {
		to = t.stdout.write
	}
	n := copyStream(to, t.master)
	if t.stdout != nil {
		t.stdout.CloseWriter()
	}
	t.observer.StreamClosed(observe.Stream{Name: "stdout", Path: t.paths.Stdout, Bytes: n})
	close(t.outputDone)
}

// copyInput copies what containerd writes to stdin into the terminal.
func (t *Terminal) copyInput() {
	n := copyStream(t.master, t.stdin)
	t.observer.StreamClosed(observe.Stream{Name: "stdin", Path: t.paths.Stdin, Bytes: n})
}

// OutputDone is closed once the terminal's output has been copied out.
func (t *Terminal) OutputDone() <-chan struct{} { return t.outputDone }

// CloseStdin gives up the held stdin writer (see inputFifo).
func (t *Terminal) CloseStdin() {
	if t.stdin != nil {
		t.stdin.CloseWriter()
	}
}

// Resize sets the window size the process sees (TIOCSWINSZ; `stty size`).
func (t *Terminal) Resize(width, height uint32) error {
	return t.master.Resize(console.WinSize{Width: uint16(width), Height: uint16(height)})
}

// ProcessExited shuts the master down. A pty master whose slave is closed
// reads EIO, which the epoll console takes for "wait for more"; after
// Shutdown it instead drains what is buffered and then reports end-of-file,
// so the output copy finishes.
func (t *Terminal) ProcessExited() {
	t.shutdownOnce.Do(func() { t.master.Shutdown(epoller.CloseConsole) })
}

// Close closes the master and the FIFOs.
func (t *Terminal) Close() error {
	var errs []error
	t.closeOnce.Do(func() {
		t.ProcessExited()
		errs = append(errs, t.master.Close())
		if t.stdin != nil {
			errs = append(errs, t.stdin.Close())
		}
		if t.stdout != nil {
			errs = append(errs, t.stdout.Close())
		}
		t.observer.StreamClosed(observe.Stream{Name: "pty", What: "master and FIFOs closed"})
	})
	return errors.Join(errs...)
}

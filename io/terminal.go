package stdio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// A process that runs on a pseudo-terminal (`ctr run -t`, `docker exec -it`,
// `kubectl exec -it`). runc creates the pty inside the container and sends
// its master end to the shim over a console socket; the process's stdin,
// stdout and stderr are all the pty's other end, so there is one output
// stream: containerd's stdout FIFO.
//
// The shim relays a terminal with the same Relay, and the same copy loops
// (pump.go), as pipes: stdin FIFO → master, master → stdout FIFO. The master
// is non-blocking and on Go's poller, like a pipe, so a deadline wakes a copy
// blocked on it, and an upgrade can freeze the copies between two steps and
// hand the master over (handover.go).

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
func StartTerminal(paths Paths, socket *runc.Socket) (_ *Relay, err error) {
	master, err := receiveMaster(socket)
	if err != nil {
		return nil, err
	}
	return relayTerminal(paths, master)
}

// relayTerminal starts the copies between the FIFOs and the master.
func relayTerminal(paths Paths, master *ptyMaster) (_ *Relay, err error) {
	r := &Relay{pipes: &Pipes{}, master: master, paths: paths, outputDone: make(chan struct{}), observer: paths.Observer}
	r.observer.StreamOpened(observe.Stream{Name: "pty", What: "master received from runc", Path: master.file.Name(), File: master.file})
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if paths.Stdin != "" {
		if r.stdinFifo, err = openInputFifo(paths.Stdin); err != nil {
			return nil, err
		}
		r.closers = append(r.closers, r.stdinFifo)
		r.observer.StreamOpened(observe.Stream{Name: "stdin", What: "fifo", Path: paths.Stdin, File: r.stdinFifo.read})
	}
	output := copyJob{name: "stdout", path: paths.Stdout, from: master}
	if output.to, err = openTerminalOutput(paths.Stdout); err != nil {
		return nil, err
	}
	r.closers = append(r.closers, output.to)
	r.outputs = append(r.outputs, output)
	r.observer.StreamOpened(observe.Stream{Name: "stdout", What: outputKind(paths.Stdout), Path: paths.Stdout, File: output.to.File()})
	r.copyOutputs(r.outputs, nil)
	if r.stdinFifo != nil {
		r.copyStdin(progress{})
	}
	return r, nil
}

// openTerminalOutput opens the FIFO a terminal's output goes to. Without
// one, the output is still read, and goes to /dev/null: a terminal nobody
// reads fills up and blocks the process.
func openTerminalOutput(path string) (output, error) {
	if path != "" {
		return openOutputFifo(path)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &outputFile{file: null}, nil
}

// ptyMaster is the shim's end of a process's pseudo-terminal.
//
// A master reads EIO while no process holds the other end: before the
// process opened it, or after a process closed it to open /dev/console
// again (an init like systemd does). Neither is the end of the output, so a
// read waits, as for EAGAIN, until the master is ready again; only once the
// process has exited (processExited) does an empty master end the output.
type ptyMaster struct {
	file   *os.File
	raw    syscall.RawConn
	exited atomic.Bool
}

// receiveMaster takes the master runc sent, and puts it on Go's poller.
func receiveMaster(socket *runc.Socket) (*ptyMaster, error) {
	console, err := socket.ReceiveMaster()
	if err != nil {
		return nil, fmt.Errorf("receive the pty master from runc: %w", err)
	}
	defer console.Close()
	// A descriptor of the shim's own: the console's file would close it
	// when collected. Made non-blocking before os.NewFile sees it, so
	// that Go's poller takes it.
	fd, err := unix.FcntlInt(console.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate the pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("make the pty master non-blocking: %w", err)
	}
	return newPtyMaster(os.NewFile(uintptr(fd), console.Name())), nil
}

func newPtyMaster(file *os.File) *ptyMaster {
	raw, _ := file.SyscallConn() // fails only for a nil file
	return &ptyMaster{file: file, raw: raw}
}

// Read reads what the process wrote to its terminal.
func (m *ptyMaster) Read(p []byte) (int, error) {
	if m.exited.Load() {
		return m.readLeft(p)
	}
	var n int
	var readErr error
	err := m.raw.Read(func(fd uintptr) bool {
		n, readErr = retryEINTR(func() (int, error) { return unix.Read(int(fd), p) })
		return readErr != unix.EAGAIN && readErr != unix.EIO
	})
	if errors.Is(err, os.ErrDeadlineExceeded) && m.exited.Load() {
		return m.readLeft(p) // woken by processExited
	}
	return bytesRead(n, err, readErr)
}

// waitReadable waits until the master has something to read (pump.go).
// Once the process has exited there is nothing more to wait for: Read
// takes what is left. A freeze's deadline ends the wait with its error.
func (m *ptyMaster) waitReadable() error {
	if m.exited.Load() {
		return nil
	}
	err := m.raw.Read(hasBytes)
	if errors.Is(err, os.ErrDeadlineExceeded) && !m.exited.Load() {
		return err
	}
	return nil
}

// readLeft reads what the master still holds, without waiting: once the
// process has exited, an empty master is the end of its output. Control
// lends the descriptor without the poller's deadline.
func (m *ptyMaster) readLeft(p []byte) (int, error) {
	var n int
	var readErr error
	if err := m.raw.Control(func(fd uintptr) {
		n, readErr = retryEINTR(func() (int, error) { return unix.Read(int(fd), p) })
	}); err != nil {
		return 0, err
	}
	if readErr == unix.EAGAIN || readErr == unix.EIO {
		return 0, io.EOF
	}
	return bytesRead(n, nil, readErr)
}

func bytesRead(n int, pollErr, readErr error) (int, error) {
	switch {
	case pollErr != nil:
		return 0, pollErr
	case readErr != nil:
		return 0, readErr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes what the client typed into the terminal. EIO (no process
// holds the other end at the moment) waits, as the read does.
func (m *ptyMaster) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		var n int
		var writeErr error
		err := m.raw.Write(func(fd uintptr) bool {
			n, writeErr = retryEINTR(func() (int, error) { return unix.Write(int(fd), p[written:]) })
			return writeErr != unix.EAGAIN && writeErr != unix.EIO
		})
		if n > 0 {
			written += n
		}
		if err != nil {
			return written, err
		}
		if writeErr != nil {
			return written, writeErr
		}
	}
	return written, nil
}

func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func (m *ptyMaster) SetReadDeadline(t time.Time) error  { return m.file.SetReadDeadline(t) }
func (m *ptyMaster) SetWriteDeadline(t time.Time) error { return m.file.SetWriteDeadline(t) }

// processExited makes an empty master the end of the output, and wakes a
// read waiting for more.
func (m *ptyMaster) processExited() {
	m.exited.Store(true)
	_ = m.file.SetReadDeadline(time.Unix(1, 0))
}

// resize sets the window size the process sees (TIOCSWINSZ; `stty size`).
// containerd/console's Resize would do the same through the file's Fd,
// which would put the master back into blocking mode, off the poller.
func (m *ptyMaster) resize(width, height uint32) error {
	var ioctlErr error
	err := m.raw.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(width), Row: uint16(height)})
	})
	if err == nil {
		err = ioctlErr
	}
	if err != nil {
		return fmt.Errorf("resize the terminal to %dx%d: %w", width, height, err)
	}
	return nil
}

func (m *ptyMaster) Close() error { return m.file.Close() }

package stdio

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// A relay across an in-place upgrade of the shim (docs/upgrade.md). The old
// shim freezes each copy loop between two steps (pump.go) and hands the new
// one the numbers of the descriptors it holds, which survive execve, and the
// bytes it read but had not written yet. The new shim resumes the copies on
// the same descriptors: the container, containerd and the kernel's pipe
// buffers never see a difference.

// RelayHandover is a frozen relay, as the next shim needs it. A descriptor
// number is -1 when there is none.
type RelayHandover struct {
	Stdin, Stdout, Stderr string
	Owner                 Owner
	IOUid, IOGid          int

	// StdinRead and StdinHeldWriter are the two ends of the stdin FIFO the
	// shim holds (fifo.go); StdinPipe is where the stdin copy writes, the
	// shim's end of the container's stdin pipe or the pty master, -1 once
	// the input ended.
	StdinRead, StdinHeldWriter, StdinPipe int
	StdinPending                          []byte
	StdinMoved                            int64 // what the copy moved so far
	Outputs                               []OutputHandover

	// Terminal is the process's pty, nil for pipes; Logger the logging
	// program its output goes to, nil for FIFOs and files. Both came with
	// state version 2.
	Terminal *TerminalHandover `json:",omitempty"`
	Logger   *LoggerHandover   `json:",omitempty"`
}

// OutputHandover is one output stream: where the copy reads (From: the
// shim's end of the container's pipe, or the pty master), where it goes
// (To, -1 once the stream ended), the FIFO's held reader (-1 for a file://),
// the bytes read but not yet written, and how many the copy moved so far.
type OutputHandover struct {
	Name, Path     string
	From, To, Held int
	Pending        []byte
	Moved          int64
	Ended          bool
}

// TerminalHandover is a process's pty: the master, the one end of it the
// shim holds. The copies that use it name the same descriptor (StdinPipe,
// the output's From); the master is kept after they end, for Resize.
type TerminalHandover struct {
	Master int
}

// LoggerHandover is a logging program (binary://, binary-v2://). It reads
// the container's pipes itself, so the shim holds none of their ends: it
// holds the program, its child, whose exit is the end of the output. A
// program reaped already (Exited) is done; otherwise the next shim, the
// same process, is still its parent, and reaps it.
type LoggerHandover struct {
	Pid    int
	Pidfd  int // -1 without one
	Exited bool
}

// Fds are the descriptors the handover names: they must survive execve.
func (h *RelayHandover) Fds() []int {
	fds := []int{h.StdinRead, h.StdinHeldWriter, h.StdinPipe}
	for _, o := range h.Outputs {
		fds = append(fds, o.From, o.To, o.Held)
	}
	if h.Terminal != nil {
		fds = append(fds, h.Terminal.Master)
	}
	if h.Logger != nil {
		fds = append(fds, h.Logger.Pidfd)
	}
	var open []int
	for _, fd := range fds {
		if fd >= 0 {
			open = append(open, fd)
		}
	}
	return open
}

// Freeze stops every copy of the relay between two steps, and describes it.
// It is called with the Reaper paused (shim/upgrade.go), so whether a
// logging program has been reaped cannot change until the next shim runs.
func (r *Relay) Freeze() *RelayHandover {
	for _, p := range r.pumps {
		p.freeze()
	}
	h := &RelayHandover{Stdin: r.paths.Stdin, Stdout: r.paths.Stdout, Stderr: r.paths.Stderr, Owner: r.paths.Owner,
		IOUid: r.paths.IOUid, IOGid: r.paths.IOGid, StdinRead: -1, StdinHeldWriter: -1, StdinPipe: -1}
	if r.master != nil {
		h.Terminal = &TerminalHandover{Master: fdOf(r.master.file)}
	}
	if r.logger != nil {
		h.Logger = r.logger.handover()
	}
	if r.stdinFifo != nil {
		h.StdinRead = fdOf(r.stdinFifo.read)
		h.StdinHeldWriter = fdOf(r.stdinFifo.heldWriter)
		if p := r.pump("stdin"); p != nil && !p.done() {
			h.StdinPipe = descriptorOf(p.to)
			h.StdinPending, h.StdinMoved = p.pending, p.moved
		}
	}
	for _, job := range r.outputs {
		o := OutputHandover{Name: job.name, Path: job.path, From: descriptorOf(job.from), To: -1, Held: -1, Ended: true}
		if p := r.pump(job.name); p != nil && !p.done() {
			o.To, o.Pending, o.Moved, o.Ended = fdOf(job.to.File()), p.pending, p.moved, false
		}
		if fifo, ok := job.to.(*outputFifo); ok {
			o.Held = fdOf(fifo.heldReader)
		}
		h.Outputs = append(h.Outputs, o)
	}
	return h
}

func (l *binaryLogger) handover() *LoggerHandover {
	if l.reaped() {
		return &LoggerHandover{Pid: l.pid, Pidfd: -1, Exited: true}
	}
	return &LoggerHandover{Pid: l.pid, Pidfd: fdOf(l.pidfd)}
}

// descriptorOf is the number of a copy's end: a pipe, a FIFO, or the master.
func descriptorOf(end any) int {
	switch end := end.(type) {
	case *os.File:
		return fdOf(end)
	case *ptyMaster:
		return fdOf(end.file)
	}
	return -1
}

// Thaw lets the copies go on: the upgrade was called off.
func (r *Relay) Thaw() {
	for _, p := range r.pumps {
		if p.isFrozen() {
			p.thaw()
		}
	}
}

func (r *Relay) pump(name string) *pump {
	for _, p := range r.pumps {
		if p.name == name {
			return p
		}
	}
	return nil
}

// RestoreRelay takes over a relay an earlier shim froze, and resumes its
// copies where they stopped. A logging program still running is adopted
// through children, the Reaper.
func RestoreRelay(h *RelayHandover, observer observe.Observer, children Adopter) *Relay {
	paths := Paths{Stdin: h.Stdin, Stdout: h.Stdout, Stderr: h.Stderr, Terminal: h.Terminal != nil, Owner: h.Owner,
		IOUid: h.IOUid, IOGid: h.IOGid, Observer: observer}
	r := &Relay{pipes: &Pipes{}, paths: paths, outputDone: make(chan struct{}), observer: observer}
	if h.Terminal != nil {
		// The master was made non-blocking by the shim that received it;
		// O_NONBLOCK belongs to the open file, and survives execve.
		r.master = newPtyMaster(fileOf(h.Terminal.Master, "pty master"))
	}
	if h.StdinRead >= 0 {
		r.stdinFifo = &inputFifo{read: fileOf(h.StdinRead, h.Stdin), heldWriter: fileOf(h.StdinHeldWriter, h.Stdin)}
		r.closers = append(r.closers, r.stdinFifo)
	}
	at := map[string]progress{}
	var running []copyJob
	for _, o := range h.Outputs {
		job := copyJob{name: o.Name, path: o.Path, to: restoredOutput(o)}
		if r.master != nil {
			job.from = r.master // a terminal's one output comes from its master
		} else {
			from := fileOf(o.From, o.Name+" pipe")
			job.from = from
			r.pipes.setRead(o.Name, from)
		}
		r.closers = append(r.closers, job.to)
		r.outputs = append(r.outputs, job)
		if !o.Ended {
			running = append(running, job)
			at[o.Name] = progress{pending: o.Pending, moved: o.Moved}
		}
	}
	if h.Logger != nil {
		r.followLogger(adoptLogger(h.Logger, children))
	} else {
		r.copyOutputs(running, at)
	}
	if h.StdinPipe >= 0 {
		if r.master == nil {
			r.pipes.stdin.write = fileOf(h.StdinPipe, "stdin pipe")
		}
		r.copyStdin(progress{pending: h.StdinPending, moved: h.StdinMoved})
	}
	return r
}

// restoredOutput is where an output stream goes: a FIFO, with its held
// reader, or a file (a file://, or /dev/null for a terminal without stdout).
func restoredOutput(o OutputHandover) output {
	if o.Held >= 0 {
		return &outputFifo{write: fileOf(o.To, o.Path), heldReader: fileOf(o.Held, o.Path)}
	}
	return &outputFile{file: fileOf(o.To, o.Path)}
}

// adoptLogger takes over a logging program an earlier shim started. One
// still running (or exited, and not yet reaped) is this process's child: the
// Reaper hands its exit here, as it would have to the shim that started it.
func adoptLogger(h *LoggerHandover, children Adopter) *binaryLogger {
	logger := &binaryLogger{pid: h.Pid, exited: make(chan struct{})}
	if h.Exited {
		close(logger.exited)
		return logger
	}
	logger.pidfd = fileOf(h.Pidfd, fmt.Sprintf("pidfd:%d", h.Pid))
	waiter := children.Adopt(h.Pid)
	logger.await(func() { <-waiter })
	return logger
}

// fdOf is the number of f's descriptor. os.File.Fd would do, but it puts a
// pollable file in blocking mode for good, and a blocking descriptor can be
// neither woken by a deadline nor frozen by the next upgrade.
func fdOf(f *os.File) int {
	fd := -1
	if f != nil {
		_ = controlFile(f, func(n int) { fd = n })
	}
	return fd
}

// FdOf is fdOf for the other packages of the shim.
func FdOf(f *os.File) int { return fdOf(f) }

// fileOf makes a file of an inherited descriptor. One left non-blocking by
// the shim before (O_NONBLOCK belongs to the open file, and survives execve)
// is pollable again; a closed one (-1) is no file.
func fileOf(fd int, name string) *os.File {
	if fd < 0 {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// FileOf is fileOf for the other packages of the shim.
func FileOf(fd int, name string) *os.File { return fileOf(fd, name) }

// controlFile lends f's descriptor to use, without os.File.Fd (see fdOf).
func controlFile(f *os.File, use func(fd int)) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return conn.Control(func(fd uintptr) { use(int(fd)) })
}

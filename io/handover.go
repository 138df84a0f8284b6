package stdio

import (
	"fmt"
	"os"

	"github.com/containerd/errdefs"
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
	// shim holds (fifo.go); StdinPipe is the shim's end of the container's
	// stdin pipe, -1 once the input ended and it was closed.
	StdinRead, StdinHeldWriter, StdinPipe int
	StdinPending                          []byte
	Outputs                               []OutputHandover
}

// OutputHandover is one output stream: the shim's end of the container's
// pipe (From), where it goes (To, -1 once the stream ended), the FIFO's held
// reader (-1 for a file://), and the bytes read but not yet written.
type OutputHandover struct {
	Name, Path     string
	From, To, Held int
	Pending        []byte
	Ended          bool
}

// Fds are the descriptors the handover names: they must survive execve.
func (h *RelayHandover) Fds() []int {
	fds := []int{h.StdinRead, h.StdinHeldWriter, h.StdinPipe}
	for _, o := range h.Outputs {
		fds = append(fds, o.From, o.To, o.Held)
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
// A relay whose output goes to a logging program is refused: the program
// reads the pipes itself and is a child the new shim would have to adopt.
func (r *Relay) Freeze() (*RelayHandover, error) {
	if r.logger != nil {
		return nil, fmt.Errorf("output to the logging program %s is not handed over yet: %w", r.logger, errdefs.ErrNotImplemented)
	}
	for _, p := range r.pumps {
		p.freeze()
	}
	h := &RelayHandover{Stdin: r.paths.Stdin, Stdout: r.paths.Stdout, Stderr: r.paths.Stderr, Owner: r.paths.Owner,
		IOUid: r.paths.IOUid, IOGid: r.paths.IOGid, StdinRead: -1, StdinHeldWriter: -1, StdinPipe: -1}
	if r.stdinFifo != nil {
		h.StdinRead = fdOf(r.stdinFifo.read)
		h.StdinHeldWriter = fdOf(r.stdinFifo.heldWriter)
		if p := r.pump("stdin"); p != nil && !p.done() {
			h.StdinPipe = fdOf(r.pipes.stdin.write)
			h.StdinPending = p.pending
		}
	}
	for _, job := range r.outputs {
		o := OutputHandover{Name: job.name, Path: job.path, From: descriptorOf(job.from), To: -1, Held: -1, Ended: true}
		if p := r.pump(job.name); p != nil && !p.done() {
			o.To, o.Pending, o.Ended = fdOf(job.to.File()), p.pending, false
		}
		if fifo, ok := job.to.(*outputFifo); ok {
			o.Held = fdOf(fifo.heldReader)
		}
		h.Outputs = append(h.Outputs, o)
	}
	return h, nil
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
// copies where they stopped.
func RestoreRelay(h *RelayHandover, observer observe.Observer) *Relay {
	paths := Paths{Stdin: h.Stdin, Stdout: h.Stdout, Stderr: h.Stderr, Owner: h.Owner, IOUid: h.IOUid, IOGid: h.IOGid, Observer: observer}
	r := &Relay{pipes: &Pipes{}, paths: paths, outputDone: make(chan struct{}), observer: observer}
	if h.StdinRead >= 0 {
		r.stdinFifo = &inputFifo{read: fileOf(h.StdinRead, h.Stdin), heldWriter: fileOf(h.StdinHeldWriter, h.Stdin)}
		r.closers = append(r.closers, r.stdinFifo)
	}
	pending := map[string][]byte{}
	var running []copyJob
	for _, o := range h.Outputs {
		from := fileOf(o.From, o.Name+" pipe")
		job := copyJob{name: o.Name, path: o.Path, from: from}
		if o.Held >= 0 {
			job.to = &outputFifo{write: fileOf(o.To, o.Path), heldReader: fileOf(o.Held, o.Path)}
		} else {
			job.to = &outputFile{file: fileOf(o.To, o.Path)}
		}
		switch o.Name {
		case "stdout":
			r.pipes.stdout.read = from
		case "stderr":
			r.pipes.stderr.read = from
		}
		r.closers = append(r.closers, job.to)
		r.outputs = append(r.outputs, job)
		if !o.Ended {
			running = append(running, job)
			pending[o.Name] = o.Pending
		}
	}
	r.copyOutputs(running, pending)
	if h.StdinPipe >= 0 {
		r.pipes.stdin.write = fileOf(h.StdinPipe, "stdin pipe")
		r.copyStdin(h.StdinPending)
	}
	return r
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

// fdOf is the number of f's descriptor. os.File.Fd would do, but it puts a
// pollable file in blocking mode for good, and a blocking descriptor can be
// neither woken by a deadline nor frozen by the next upgrade.
func fdOf(f *os.File) int {
	fd := -1
	if f == nil {
		return fd
	}
	if conn, err := f.SyscallConn(); err == nil {
		_ = conn.Control(func(n uintptr) { fd = int(n) })
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

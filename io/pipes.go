package stdio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// Pipes are the container's ends of its standard streams, given to runc so
// the container process inherits them as fds 0, 1 and 2, and the shim's ends,
// from which the Relay copies. They implement go-runc's IO interface.
type Pipes struct {
	stdin  pipe // the container reads, the shim writes
	stdout pipe // the container writes, the shim reads
	stderr pipe
	// devNull stands in for every stream that has no path. It is given
	// to runc explicitly: left unset, go-runc would capture runc's output
	// through a pipe of its own, which the container would inherit and hold
	// open, and go-runc would wait for that pipe's end forever.
	devNull *os.File
}

type pipe struct {
	read, write *os.File
}

// NewPipes creates a pipe for each stream that has a path. os.Pipe sets
// O_CLOEXEC, so no end leaks into a process except as the fd runc is told to
// use.
func NewPipes(paths Paths) (_ *Pipes, err error) {
	p := &Pipes{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	for _, stream := range []struct {
		name   string
		wanted bool
		pipe   *pipe
	}{
		{"stdin", paths.Stdin != "", &p.stdin},
		{"stdout", paths.Stdout != "", &p.stdout},
		{"stderr", paths.Stderr != "", &p.stderr},
	} {
		if !stream.wanted {
			if p.devNull == nil {
				if p.devNull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
					return nil, err
				}
			}
			continue
		}
		if stream.pipe.read, stream.pipe.write, err = os.Pipe(); err != nil {
			return nil, err
		}
		paths.Observer.StreamOpened(observe.Stream{Name: stream.name, What: "pipe", File: stream.pipe.read})
		if paths.IOUid != 0 || paths.IOGid != 0 {
			// Both ends are one pipe inode; chown-ing one owns both.
			if err := stream.pipe.read.Chown(paths.IOUid, paths.IOGid); err != nil {
				return nil, fmt.Errorf("give stdio pipe to %d:%d: %w", paths.IOUid, paths.IOGid, err)
			}
		}
	}
	return p, nil
}

// Set gives runc the container's ends, and /dev/null for absent streams.
func (p *Pipes) Set(cmd *exec.Cmd) {
	cmd.Stdin = orDevNull(p.stdin.read, p.devNull)
	cmd.Stdout = orDevNull(p.stdout.write, p.devNull)
	cmd.Stderr = orDevNull(p.stderr.write, p.devNull)
}

func orDevNull(f, devNull *os.File) *os.File {
	if f != nil {
		return f
	}
	return devNull
}

// CloseAfterStart closes the shim's copies of the container's ends once runc
// has passed them on. Until they are closed the shim itself would hold the
// write side of stdout open, and the relay would never see end-of-file.
func (p *Pipes) CloseAfterStart() error {
	return errors.Join(closeFile(p.stdin.read), closeFile(p.stdout.write), closeFile(p.stderr.write), closeFile(p.devNull))
}

// setRead sets the shim's end of the stdout or stderr pipe: one an upgrade
// handed over (handover.go).
func (p *Pipes) setRead(stream string, f *os.File) {
	switch stream {
	case "stdout":
		p.stdout.read = f
	case "stderr":
		p.stderr.read = f
	}
}

// Stdin is the shim's end of the container's stdin.
func (p *Pipes) Stdin() io.WriteCloser { return writeCloser(p.stdin.write) }

// Stdout is the shim's end of the container's stdout.
func (p *Pipes) Stdout() io.ReadCloser { return readCloser(p.stdout.read) }

// Stderr is the shim's end of the container's stderr.
func (p *Pipes) Stderr() io.ReadCloser { return readCloser(p.stderr.read) }

// Close closes every end still open. Closing an *os.File twice is safe, so
// the Relay may already have closed some of them.
func (p *Pipes) Close() error {
	var errs []error
	for _, f := range []*os.File{p.stdin.read, p.stdin.write, p.stdout.read, p.stdout.write, p.stderr.read, p.stderr.write, p.devNull} {
		errs = append(errs, closeFile(f))
	}
	return errors.Join(errs...)
}

func closeFile(f *os.File) error {
	if f == nil {
		return nil
	}
	err := f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// The accessors return a nil interface, not a typed nil, for absent streams.
func writeCloser(f *os.File) io.WriteCloser {
	if f == nil {
		return nil
	}
	return f
}

func readCloser(f *os.File) io.ReadCloser {
	if f == nil {
		return nil
	}
	return f
}

package stdio

import (
	"os"

	"golang.org/x/sys/unix"
)

// Moving output with splice(2).
//
// A container's output goes from a pipe (its stdout) to a pipe (containerd's
// FIFO; a FIFO is a pipe with a name). read(2) and write(2) would copy every
// byte into the shim and out again. splice(2) between two pipes moves the
// kernel's page references from one pipe to the other instead: no byte is
// copied, and the shim does one system call per chunk rather than two.
//
// Both pipes are non-blocking (Go's poller manages them), so a splice that
// cannot proceed returns EAGAIN, for one of two reasons: the container's pipe
// is empty, or containerd's FIFO is full because containerd reads slowly.
// The shim then waits, through Go's poller, for the side that is stuck:
// readable input or room in the output.

// spliceChunk is the most one splice call moves; the kernel moves what the
// pipes hold, at most.
const spliceChunk = 1 << 20

// A pipe holds 64 KiB unless told otherwise. A stream that fills that much
// at once gets both its pipes grown to largePipe (the most an unprivileged
// process may ask for, /proc/sys/fs/pipe-max-size): the container, the shim
// and containerd then take turns once per MiB instead of once per 64 KiB.
// A quiet stream keeps the small pipes; the kernel allocates a pipe's pages
// only as it fills them, but its table of buffers at once.
const (
	defaultPipeSize = 64 << 10
	largePipe       = 1 << 20
)

// isPipe: splice between pipes needs both ends to be pipes (or FIFOs).
func isPipe(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeNamedPipe != 0
}

// splicePipes moves everything from the pipe from to the pipe to, until from
// reaches end-of-file (every writer closed it and it is drained). It returns
// how many bytes it moved.
//
// Go's poller lends a raw fd to a function (SyscallConn's Read and Write)
// and keeps the file from being closed meanwhile; when the function returns
// false it waits until the fd is ready and calls it again. The input is
// borrowed for the whole copy, the output for one splice at a time: Relay.
// Close closes the FIFOs before the pipes, and a copy stuck on a full FIFO
// must let go of it then.
func splicePipes(to, from *os.File) (int64, error) {
	src, err := from.SyscallConn()
	if err != nil {
		return 0, err
	}
	dst, err := to.SyscallConn()
	if err != nil {
		return 0, err
	}
	var moved int64
	var spliceErr error
	eof, grown := false, false
	readErr := src.Read(func(in uintptr) bool {
		for {
			inputEmpty := false
			writeErr := dst.Write(func(out uintptr) bool {
				n, err := unix.Splice(int(in), nil, int(out), nil, spliceChunk, unix.SPLICE_F_NONBLOCK)
				switch {
				case n > 0:
					moved += n
					if !grown && n >= defaultPipeSize {
						grown = true
						growPipe(in)
						growPipe(out)
					}
				case err == nil: // n == 0: end of the input
					eof = true
				case err == unix.EINTR:
				case err == unix.EAGAIN:
					// Which side is stuck is asked after the fact,
					// so it may have changed meanwhile: containerd
					// read, or the container wrote. Wait only for a
					// side still stuck; if neither is, try again.
					readable, writable := ready(in, out)
					switch {
					case !readable:
						inputEmpty = true
					case !writable:
						return false // the output is full: wait for room
					}
				default:
					spliceErr = err
				}
				return true
			})
			switch {
			case writeErr != nil:
				spliceErr = writeErr
				return true
			case eof || spliceErr != nil:
				return true
			case inputEmpty:
				return false // wait for the container to write
			}
		}
	})
	if readErr != nil && spliceErr == nil {
		spliceErr = readErr
	}
	return moved, spliceErr
}

// growPipe asks the kernel for a larger pipe. It may refuse (a user over its
// pipe quota); the stream then flows as it did, in smaller steps.
func growPipe(fd uintptr) {
	_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, largePipe)
}

// ready tells whether the input has bytes to read and the output room to
// write, now, without waiting.
func ready(in, out uintptr) (readable, writable bool) {
	fds := []unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}, {Fd: int32(out), Events: unix.POLLOUT}}
	if _, err := unix.Poll(fds, 0); err != nil {
		return true, true // try the splice again; it reports a real error
	}
	return fds[0].Revents != 0, fds[1].Revents != 0
}

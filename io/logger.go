package stdio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"syscall"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// Besides FIFO paths, containerd may name a process's output as a URI
// (`ctr run --log-uri`, cio.LogURI):
//
//	binary:///usr/bin/my-logger?key=value     a logging program reads the
//	                                          container's stdout and stderr itself
//	binary-v2:///usr/bin/my-logger?key=value  the same, but the program must say
//	                                          it is ready (see awaitReady)
//	file:///var/log/c1.log                    the shim appends the output to a file
//
// A plain absolute path is a FIFO.

// outputURI parses path; ok is false for a FIFO path.
func outputURI(path string) (uri *url.URL, ok bool, err error) {
	if path == "" || path[0] == '/' {
		return nil, false, nil
	}
	uri, err = url.Parse(path)
	if err != nil {
		return nil, false, fmt.Errorf("stdio %q is neither a path nor a URI: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	switch uri.Scheme {
	case "binary", "binary-v2", "file":
		if uri.Path == "" || uri.Path[0] != '/' {
			return nil, false, fmt.Errorf("%s URI %q needs an absolute path: %w", uri.Scheme, path, errdefs.ErrInvalidArgument)
		}
		return uri, true, nil
	}
	return nil, false, fmt.Errorf("stdio URI scheme %q is not supported (binary://, binary-v2://, file:// or a FIFO path): %w", uri.Scheme, errdefs.ErrInvalidArgument)
}

// isLoggerScheme says whether a URI names a logging program.
func isLoggerScheme(scheme string) bool {
	return scheme == "binary" || scheme == "binary-v2"
}

// outputFile is a file:// destination: appended to, never truncated, so a
// restarted container adds to its log.
type outputFile struct{ file *os.File }

// openOutputFile opens path for appending, creating it (0640) if it does
// not exist.
func openOutputFile(path string) (*outputFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log file %s: %w", path, err)
	}
	return &outputFile{file: f}, nil
}

func (f *outputFile) File() *os.File     { return f.file }
func (f *outputFile) CloseWriter() error { return f.Close() }
func (f *outputFile) Close() error       { return closeFile(f.file) }

// binaryLogger is a running logging program, a child of the shim. Its exit
// marks the end of the output: it exits once every writer of the container's
// pipes is gone and it has read them to the end.
type binaryLogger struct {
	pid int
	// pidfd names the program for an upgrade, which asks whether it was
	// reaped (reaped); nil on a kernel without pidfds.
	pidfd  *os.File
	exited chan struct{}
}

// Adopter is what a relay needs of the shim's Reaper to take over, after an
// in-place upgrade, a logging program an earlier shim started: its exit,
// handed back as it would have been to that shim (process.Reaper).
type Adopter interface {
	Adopt(pid int) chan runc.Exit
}

// await closes exited once the Reaper has handed the program's exit to
// waiter.
func (l *binaryLogger) await(wait func()) {
	go func() {
		wait()
		close(l.exited)
	}()
}

// reaped tells whether the Reaper has collected the program's exit. An
// upgrade asks while the Reaper is paused, so that the answer holds until
// the next shim takes over: a program reaped is done; one not reaped, even
// one that has exited, is a child the next shim adopts, and reaps.
//
// waitid with WNOWAIT looks without reaping; ECHILD says the process is no
// longer this one's child to wait for. Through the pidfd, the question is
// about this very program; by pid alone (no pidfds), about whatever child
// has its number.
func (l *binaryLogger) reaped() bool {
	select {
	case <-l.exited:
		return true
	default:
	}
	var info unix.Siginfo
	const options = unix.WEXITED | unix.WNOHANG | unix.WNOWAIT
	if l.pidfd == nil {
		return unix.Waitid(unix.P_PID, l.pid, &info, options, nil) == unix.ECHILD
	}
	var err error
	if ctlErr := controlFile(l.pidfd, func(fd int) { err = unix.Waitid(unix.P_PIDFD, fd, &info, options, nil) }); ctlErr != nil {
		return true
	}
	return err == unix.ECHILD
}

// startBinaryLogger runs the program of a binary:// or binary-v2:// URI the
// way containerd's logging package expects: the container's stdout as fd 3,
// its stderr as fd 4, and fd 5 to write one byte to (and close) once it is
// ready. Each of
// the query's keys becomes two arguments, key and value (as containerd's
// runc shim passes them, so loggers written for it work); the environment
// holds only CONTAINER_ID and CONTAINER_NAMESPACE, whose output it is.
func startBinaryLogger(ctx context.Context, uri *url.URL, owner Owner, pipes *Pipes) (*binaryLogger, error) {
	var args []string
	query := uri.Query()
	keys := make([]string, 0, len(query))
	for key := range query {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		args = append(args, key, query.Get(key))
	}
	readyRead, readyWrite, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyRead.Close()
	stdout, stderr := pipes.stdout.read, pipes.stderr.read
	if stdout == nil || stderr == nil {
		readyWrite.Close()
		return nil, fmt.Errorf("logging program %s needs both stdout and stderr: %w", uri.Path, errdefs.ErrInvalidArgument)
	}
	cmd := exec.Command(uri.Path, args...)
	cmd.Env = []string{"CONTAINER_ID=" + owner.ContainerID, "CONTAINER_NAMESPACE=" + owner.Namespace}
	cmd.ExtraFiles = []*os.File{stdout, stderr, readyWrite}
	pidfd := -1 // the kernel gives it as it starts the program (clone3)
	cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
	// The Reaper collects every child of the shim; starting the program
	// through it hands the exit back here instead of losing it.
	waiter, err := runc.Monitor.Start(cmd)
	readyWrite.Close()
	if err != nil {
		return nil, fmt.Errorf("start logging program %s: %w", uri.Path, err)
	}
	// The program holds the read ends now; the shim's copies would keep
	// the pipes open after it exits.
	stdout.Close()
	stderr.Close()
	logger := &binaryLogger{pid: cmd.Process.Pid, exited: make(chan struct{})}
	if pidfd >= 0 {
		logger.pidfd = os.NewFile(uintptr(pidfd), fmt.Sprintf("pidfd:%d", logger.pid))
	}
	logger.await(func() { runc.Monitor.Wait(cmd, waiter) })
	if err := awaitReady(ctx, readyRead, uri.Scheme); err != nil {
		cmd.Process.Kill()
		closeFile(logger.pidfd)
		return nil, fmt.Errorf("logging program %s: %w", uri.Path, err)
	}
	return logger, nil
}

// awaitReady waits for the logging program to be ready: to write a byte to
// fd 5, or to close it.
//
// containerd's logging package up to 2.3 (logging.Run) only closed fd 5,
// before or after its work began, so for binary:// a close counts as ready:
// loggers built with it must keep working. binary-v2:// is the scheme of
// loggers that promise the byte, written once they read their input; a
// close without it means the program failed before it was ready.
//
// No timer of the shim's own bounds the wait: a program slow to start on a
// busy machine is not a failed one, and one that dies closes fd 5. The
// request's context, containerd's deadline, is what may end it.
func awaitReady(ctx context.Context, ready *os.File, scheme string) error {
	said := make(chan error, 1)
	go func() {
		var b [1]byte
		n, err := ready.Read(b[:])
		if n == 1 || errors.Is(err, io.EOF) && scheme == "binary" {
			err = nil
		}
		said <- err
	}()
	select {
	case err := <-said:
		if errors.Is(err, io.EOF) {
			return errors.New("exited or closed fd 5 without writing the ready byte, which binary-v2:// loggers must write once ready (a logger that only closes fd 5 belongs under binary://)")
		}
		if err != nil {
			return fmt.Errorf("read the ready byte from fd 5: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("not ready when the request ended: %w", ctx.Err())
	}
}

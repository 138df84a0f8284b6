package stdio

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
)

// Besides FIFO paths, containerd may name a process's output as a URI
// (`ctr run --log-uri`, cio.LogURI):
//
//	binary:///usr/bin/my-logger?key=value   a logging program reads the
//	                                        container's stdout and stderr itself
//	file:///var/log/c1.log                  the shim appends the output to a file
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
	case "binary", "file":
		if uri.Path == "" || uri.Path[0] != '/' {
			return nil, false, fmt.Errorf("%s URI %q needs an absolute path: %w", uri.Scheme, path, errdefs.ErrInvalidArgument)
		}
		return uri, true, nil
	}
	return nil, false, fmt.Errorf("stdio URI scheme %q is not supported (binary://, file:// or a FIFO path): %w", uri.Scheme, errdefs.ErrInvalidArgument)
}

// outputFile is a file:// destination: appended to, never truncated, so a
// restarted container adds to its log.
type outputFile struct{ file *os.File }

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

// loggerReadyLimit bounds how long a logging program may take to say it is
// ready, as containerd's own limit for its loggers.
const loggerReadyLimit = 10 * time.Second

// binaryLogger is a running logging program. Its exit marks the end of the
// output: it exits once every writer of the container's pipes is gone and it
// has read them to the end.
type binaryLogger struct {
	exited chan struct{}
}

// startBinaryLogger runs the program of a binary:// URI the way containerd's
// logging package expects: the container's stdout as fd 3, its stderr as
// fd 4, and fd 5 to write one byte to (and close) once it is ready. Each of
// the query's keys becomes two arguments, key and value (as containerd's
// runc shim passes them, so loggers written for it work); the environment
// holds only CONTAINER_ID and CONTAINER_NAMESPACE, whose output it is.
func startBinaryLogger(uri *url.URL, owner Owner, pipes *Pipes) (*binaryLogger, error) {
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
	logger := &binaryLogger{exited: make(chan struct{})}
	go func() {
		runc.Monitor.Wait(cmd, waiter)
		close(logger.exited)
	}()
	if err := awaitReady(readyRead); err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("logging program %s: %w", uri.Path, err)
	}
	return logger, nil
}

func awaitReady(ready *os.File) error {
	said := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := ready.Read(b[:])
		said <- err
	}()
	select {
	case err := <-said:
		if err != nil {
			return errors.New("exited or closed fd 5 without saying it was ready")
		}
		return nil
	case <-time.After(loggerReadyLimit):
		return fmt.Errorf("not ready after %v", loggerReadyLimit)
	}
}

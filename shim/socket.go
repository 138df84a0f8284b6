package shim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/containerd/containerd/v2/pkg/sys"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// The shim's socket: where containerd reaches the task service. Its address
// has the form unix://<socket folder>/<hex sha256>, hashed from containerd's
// own address, the namespace and the shim's name, so that two containerd
// instances, or two namespaces, never share a shim, and the path stays within
// the 108 bytes a unix socket path may have.

// socketAddress is the address of the socket for the shim called name.
func socketAddress(socketDir, containerdAddress, namespace, name string) string {
	sum := sha256.Sum256([]byte(filepath.Join(containerdAddress, namespace, name)))
	return fmt.Sprintf("unix://%s/%x", socketDir, sum)
}

// socketPath is the file of a unix:// address.
func socketPath(address string) (string, error) {
	path, ok := strings.CutPrefix(address, "unix://")
	if !ok {
		return "", fmt.Errorf("shim address %q is not a unix:// socket", address)
	}
	return path, nil
}

// newSocket creates the socket file and listens on it: a file, never an
// abstract socket, so its permissions apply: 0600 in a 0700 folder, root
// only, since whoever can connect can run containers.
func newSocket(address string) (*net.UnixListener, error) {
	path, err := socketPath(address)
	if err != nil {
		return nil, err
	}
	if err := makeSocketFolder(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("create shim socket %s: %w", address, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("make shim socket %s private: %w", path, err)
	}
	return l, nil
}

// makeSocketFolder creates the folder of a socket file, root's alone.
func makeSocketFolder(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create shim socket folder: %w", err)
	}
	return nil
}

// dialShim connects to a shim's socket, and takes as long as the kernel
// makes it: only its answer tells a live shim from a dead one. connect(2) on
// a blocking socket waits while the listener's queue of connections to
// accept is full (a busy shim, a slow machine), where Go's net.Dial, which
// connects without blocking, fails with EAGAIN; and a timer would call a live
// shim dead on a machine slow enough. ECONNREFUSED: nobody listens on the
// file, which a dead shim left; ENOENT: there is no file.
func dialShim(address string) (net.Conn, error) {
	path, err := socketPath(address)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create a socket to connect to %s: %w", address, err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to %s: %w", address, err)
	}
	file := os.NewFile(uintptr(fd), path)
	defer file.Close() // FileConn holds a copy
	return net.FileConn(file)
}

// shimAnswers: a shim listens on the socket of address.
func shimAnswers(address string) bool {
	conn, err := dialShim(address)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// serverSocket is the socket the shim server serves, as its exit sees it. The
// file is removed once, when the server leaves, before it stops listening:
// connections in progress are unaffected, and no new one can reach a shim
// that is leaving. A group's socket is removed under the group lock
// (group.go): while nobody holds it, the file at a group's address belongs to
// a shim that serves it, or to one that died.
type serverSocket struct {
	address string
	grouped bool
	removed atomic.Bool
}

// lockGroup takes the group lock of a group's socket; an ungrouped socket
// has none to take. A nil serverSocket is a shim without a socket (a test's).
func (s *serverSocket) lockGroup() (unlock func(), err error) {
	if s == nil || !s.grouped {
		return func() {}, nil
	}
	lock, err := lockGroup(s.address)
	if err != nil {
		return nil, err
	}
	return lock.Unlock, nil
}

// removeLocked removes the socket file, the first time it is called. Held:
// the group lock, for a group's socket.
func (s *serverSocket) removeLocked(ctx context.Context) {
	if s == nil || s.removed.Swap(true) {
		return
	}
	if err := removeSocket(s.address); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.G(ctx).WithError(err).Warn("remove the shim's socket")
	}
}

// remove removes the socket file, under the group lock for a group's, unless
// Shutdown did already. A group's socket stays if the lock cannot be taken:
// a start that finds it later takes it for a dead shim's and replaces it.
func (s *serverSocket) remove(ctx context.Context) {
	if s == nil || s.removed.Load() {
		return
	}
	unlock, err := s.lockGroup()
	if err != nil {
		log.G(ctx).WithError(err).Warn("could not take the group lock to remove the shim's socket")
		return
	}
	defer unlock()
	s.removeLocked(ctx)
}

// removeSocket removes the socket file of an address.
func removeSocket(address string) error {
	path, err := socketPath(address)
	if err != nil {
		return err
	}
	return os.Remove(path)
}

// readAddress reads a bundle's "address" file, written by `start`.
func readAddress(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// adjustOOMScore makes the shim a little more likely than containerd (this
// process's parent) to be chosen by the OOM killer, and no more likely than
// its containers: one above containerd's oom_score_adj.
func adjustOOMScore(pid int) error {
	score, err := sys.GetOOMScoreAdj(os.Getppid())
	if err != nil {
		return fmt.Errorf("read containerd's oom_score_adj: %w", err)
	}
	if err := sys.AdjustOOMScore(pid, score+1); err != nil {
		return fmt.Errorf("set the shim's oom_score_adj: %w", err)
	}
	return nil
}

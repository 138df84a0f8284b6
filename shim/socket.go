package shim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys"
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
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create shim socket folder: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("make shim socket %s private: %w", path, err)
	}
	return l, nil
}

// socketInUse: listening failed because the socket file is there already.
func socketInUse(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "listen" && errors.Is(err, syscall.EADDRINUSE)
}

// canConnect tells a live shim's socket from one a dead shim left behind.
func canConnect(address string) bool {
	path, err := socketPath(address)
	if err != nil {
		return false
	}
	conn, err := net.DialTimeout("unix", path, 100*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
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

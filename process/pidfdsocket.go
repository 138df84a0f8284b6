package process

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// The pidfd socket is where one runc command sends the pidfd of the process
// it creates (--pidfd-socket). Each create and each exec gets a socket file
// of its own, in a folder that belongs to this shim:
//
//	/run/containerd-shim-teach-v2/pidfd/<shim pid>/<random>
//
// The folder is root's alone (0700), so only root can connect: whoever does
// is runc, the runc init it starts, or a wrapper named as BinaryName, and the
// shim need not ask the kernel who connected. Any user can read the path in
// /proc/net/unix while runc runs; a random name keeps it from counting the
// shim's creates and execs. The path is short on purpose: a socket's path
// holds at most 107 bytes, and a bundle's path can be long.
//
// The folder is made on the shim's first create or exec and removed when the
// shim exits (RemovePidfdSockets); the next shim to make its own removes
// those that shims killed outright left behind. Under /run, a tmpfs, making
// and removing a socket file costs about as much as the abstract name the
// shim once used, which any user could see and connect to
// (docs/benchmarks.md, History).
//
// When runc sends: runc connects at once, and hands the connection to runc
// init, which sends its own pidfd once it has joined the container's
// namespaces, before it tells runc it is ready: so before `runc create` or
// `runc exec --detach` returns, however long that takes. Until the shim
// accepts it, the kernel keeps the connection, and the pidfd sent on it, in
// the listener's queue; the shim therefore takes nothing while runc runs, and
// no timer runs then either. Only once runc has returned does the shim
// accept and read (take).

// pidfdGrace bounds how long the shim waits, once runc has returned, for a
// pidfd on a connection that is still open: runc has sent it by then, so the
// wait is for a wrapper that sends it on its own. A connection whose senders
// have all gone ends at once, without a wait.
var pidfdGrace = 2 * time.Second

// pidfdRoot holds a folder for each shim that has made a pidfd socket.
var pidfdRoot = filepath.Join(journal.DefaultRoot, "pidfd")

// pidfdFolder is the folder of one shim's pidfd sockets.
type pidfdFolder struct {
	root string // the folder every shim's folder is made in

	mu   sync.Mutex // guards path
	path string     // this shim's folder; "" until made, and once removed
}

// shimPidfdFolder is the folder of this shim's pidfd sockets.
var shimPidfdFolder = &pidfdFolder{root: pidfdRoot}

// RemovePidfdSockets removes the shim's folder of pidfd sockets: the shim
// calls it as it exits.
func RemovePidfdSockets() { shimPidfdFolder.remove() }

// nextPath makes the shim's folder if it has none yet, and returns the path
// of a new socket in it.
func (f *pidfdFolder) nextPath() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == "" {
		path, err := f.make()
		if err != nil {
			return "", err
		}
		f.path = path
	}
	return filepath.Join(f.path, fmt.Sprintf("%016x", rand.Uint64())), nil
}

// make creates this shim's folder, fresh: a shim that died with the same
// pid may have left one. The folders of other shims that died go too.
func (f *pidfdFolder) make() (string, error) {
	if err := os.MkdirAll(f.root, 0o700); err != nil {
		return "", err
	}
	removeFoldersOfDeadShims(f.root)
	path := filepath.Join(f.root, strconv.Itoa(os.Getpid()))
	if err := os.RemoveAll(path); err != nil {
		return "", err
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		return "", err
	}
	return path, nil
}

// removeFoldersOfDeadShims removes the folders named by the pid of a process
// that no longer exists. A folder whose pid the kernel gave to another
// process stays until that one ends too: it holds nothing anybody listens on.
func removeFoldersOfDeadShims(root string) {
	entries, _ := os.ReadDir(root)
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			os.RemoveAll(filepath.Join(root, entry.Name()))
		}
	}
}

// remove removes the shim's folder and what is left in it.
func (f *pidfdFolder) remove() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path != "" {
		os.RemoveAll(f.path)
		f.path = ""
	}
}

// pidfdSocket is runc's --pidfd-socket for one create or exec.
type pidfdSocket struct {
	listener *net.UnixListener
}

// listen opens a new socket in the shim's folder.
func (f *pidfdFolder) listen() (*pidfdSocket, error) {
	path, err := f.nextPath()
	if err != nil {
		return nil, err
	}
	listener, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return &pidfdSocket{listener: listener}, nil
}

// Path is the path runc is given (go-runc's PidfdSocket).
func (s *pidfdSocket) Path() string { return s.listener.Addr().String() }

// Close removes the socket file. The kernel closes the connections still
// queued, and the pidfds sent on them, so nothing is left; a sender that
// sends afterwards gets EPIPE. Closing a nil socket (no pidfds to be had)
// does nothing.
func (s *pidfdSocket) Close() {
	if s != nil {
		s.listener.Close()
	}
}

// errClosedWithoutPidfd: every sender that connected closed its connection
// without sending a pidfd.
var errClosedWithoutPidfd = errors.New("every connection to it closed without one")

// collect takes the pidfd runc sent, once runc has returned. connected is
// false when nobody connected: a runc that does not know --pidfd-socket,
// or a wrapper that dropped it. A connection that ends without a pidfd is
// passed over for the next queued one, if any: the pidfd may come on
// another connection than the first.
func (s *pidfdSocket) collect() (file *os.File, connected bool, err error) {
	deadline := time.Now().Add(pidfdGrace)
	for {
		queued, err := s.hasQueuedConnection()
		switch {
		case err != nil:
			return nil, connected, err
		case !queued && connected:
			return nil, true, errClosedWithoutPidfd
		case !queued:
			return nil, false, nil
		}
		conn, err := s.listener.AcceptUnix()
		if err != nil {
			return nil, connected, err
		}
		connected = true
		file, err := receiveFile(conn, deadline)
		conn.Close()
		if !errors.Is(err, io.EOF) {
			return file, true, err
		}
	}
}

// hasQueuedConnection reports, without waiting, whether a connection waits
// to be accepted: the listener then polls readable.
func (s *pidfdSocket) hasQueuedConnection() (bool, error) {
	raw, err := s.listener.SyscallConn()
	if err != nil {
		return false, err
	}
	var n int
	var pollErr error
	err = raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, pollErr = unix.Poll(fds, 0)
			if !errors.Is(pollErr, unix.EINTR) {
				return
			}
		}
	})
	if err == nil {
		err = pollErr
	}
	return n > 0, err
}

// receiveFile reads one descriptor sent as SCM_RIGHTS, waiting no later
// than deadline; io.EOF if the connection ends first. runc sends the file's
// name as the message's bytes; only the descriptor matters here.
func receiveFile(conn *net.UnixConn, deadline time.Time) (*os.File, error) {
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	payload := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(payload, oob)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("none came within %v of runc returning, on a connection still open", pidfdGrace)
	}
	if err != nil {
		return nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, io.EOF
	}
	messages, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(messages) != 1 {
		return nil, fmt.Errorf("expected one control message with a descriptor, got %d", len(messages))
	}
	fds, err := unix.ParseUnixRights(&messages[0])
	if err != nil {
		return nil, err
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("expected one descriptor, got %d", len(fds))
	}
	return os.NewFile(uintptr(fds[0]), "pidfd"), nil
}

// sentNoPidfd is the error of a create or exec whose runc connected to the
// pidfd socket and sent nothing: the process was made, but the shim cannot
// tell its exit from that of a process given its pid later, so it does not
// keep it.
func sentNoPidfd(err error) error {
	return fmt.Errorf("runc connected to the pidfd socket (--pidfd-socket) but sent no pidfd: %v; "+
		"a runc wrapper named as BinaryName must pass --pidfd-socket on to runc unchanged: %w", err, errdefs.ErrUnknown)
}

package process

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// pidfdSocket is the unix socket one runc command sends its new process's
// pidfd to (--pidfd-socket).
//
// It is an abstract socket: a name the kernel keeps, not a file. (runc
// dials it with Go's net package, which reads a leading '@' as the abstract
// namespace.) go-runc's socket is a file in a new temporary folder: on this
// project's test machine, whose /tmp is on disk, making and removing the
// folder and the file took 0.36 ms, an abstract socket 6 µs, and the pidfd
// work around each create and exec had cost 0.84 ms, more than all the
// shim's other work for an exec (docs/benchmarks.md, History).
//
// An abstract name has no owner and no permissions: any process in the
// shim's network namespace may connect to it, a container's with host
// networking too. So the socket takes a pidfd only from the runc command it
// was made for. The kernel tells which process connected (SO_PEERCRED), and
// the Reaper, which starts every runc command, tells the socket the pid of
// the command whose arguments name it (announcePidfdSender). The command may
// be a wrapper script (BinaryName) that runs runc as its child rather than
// exec'ing it, so a descendant of the command is accepted too. A connection
// from anyone else is closed unread, so it cannot hold the socket up.
type pidfdSocket struct {
	listener *net.UnixListener
	name     string

	senderOnce sync.Once
	sender     int           // the runc command's pid; read only once announced is closed
	announced  chan struct{} // closed once sender is set
	closed     chan struct{} // closed by Close
	closeOnce  sync.Once
}

// pidfdSockets finds a socket by its name, for the Reaper.
var pidfdSockets sync.Map // name → *pidfdSocket

var pidfdSocketCount atomic.Uint64

// errNotTheSender is a connection from another process than the runc command.
var errNotTheSender = errors.New("connection from a process other than the runc command")

// newPidfdSocket listens on a new abstract name. The random part keeps
// another process from taking the name first.
func newPidfdSocket() (*pidfdSocket, error) {
	name := fmt.Sprintf("@containerd-shim-teach-v2/%d/pidfd-%d-%016x", os.Getpid(), pidfdSocketCount.Add(1), rand.Uint64())
	listener, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, err
	}
	s := &pidfdSocket{listener: listener, name: name, announced: make(chan struct{}), closed: make(chan struct{})}
	pidfdSockets.Store(name, s)
	return s, nil
}

// Path is the name runc is given (go-runc's PidfdSocket).
func (s *pidfdSocket) Path() string { return s.name }

// Close stops listening; a receive in progress ends.
func (s *pidfdSocket) Close() error {
	s.closeOnce.Do(func() {
		pidfdSockets.Delete(s.name)
		close(s.closed)
	})
	return s.listener.Close()
}

// senderStarted records the pid of the runc command given this socket.
func (s *pidfdSocket) senderStarted(pid int) {
	s.senderOnce.Do(func() {
		s.sender = pid
		close(s.announced)
	})
}

// announcePidfdSender is the Reaper's part: cmd has just started; if its
// arguments name one of the shim's pidfd sockets, that socket learns the
// pid that will connect to it.
func announcePidfdSender(cmd *exec.Cmd) {
	for i := 0; i+1 < len(cmd.Args); i++ {
		if cmd.Args[i] != "--pidfd-socket" {
			continue
		}
		if s, ok := pidfdSockets.Load(cmd.Args[i+1]); ok {
			s.(*pidfdSocket).senderStarted(cmd.Process.Pid)
		}
		return
	}
}

// receive waits for the runc command to connect and send its pidfd.
// Connections from other processes are closed and skipped.
func (s *pidfdSocket) receive() (*os.File, error) {
	for {
		conn, err := s.listener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		file, err := s.receiveFrom(conn)
		conn.Close()
		if errors.Is(err, errNotTheSender) {
			continue
		}
		return file, err
	}
}

func (s *pidfdSocket) receiveFrom(conn *net.UnixConn) (*os.File, error) {
	peer, err := peerPid(conn)
	if err != nil {
		return nil, err
	}
	// runc may connect before the Reaper has recorded its pid: the command
	// runs from the moment it is started.
	select {
	case <-s.announced:
	case <-s.closed:
		return nil, net.ErrClosed
	}
	if !descendsFrom(peer, s.sender) {
		return nil, errNotTheSender
	}
	// runc sends at once; a deadline still bounds a sender that does not.
	if err := conn.SetReadDeadline(time.Now().Add(pidfdCollectLimit)); err != nil {
		return nil, err
	}
	return receiveFile(conn)
}

// peerPid is the pid of the process that connected, as the kernel recorded
// it at connect(2).
func peerPid(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return int(cred.Pid), nil
}

// wrapperDepth bounds how many parents are followed from the connecting
// process to the runc command: a wrapper script, perhaps a shell in it.
const wrapperDepth = 3

// descendsFrom reports whether pid is ancestor or a child, grandchild... of
// it, up to wrapperDepth generations. runc is still running when it
// connects (it closes the connection as it exits), and so are the wrappers
// waiting for it, so their /proc entries are there to read.
func descendsFrom(pid, ancestor int) bool {
	for range wrapperDepth {
		if pid == ancestor {
			return true
		}
		parent, err := parentPid(pid)
		if err != nil || parent <= 1 {
			return false
		}
		pid = parent
	}
	return pid == ancestor
}

// parentPid reads a process's parent from /proc/<pid>/stat: the field after
// the command name, which is in parentheses and may itself hold spaces and
// parentheses.
func parentPid(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	return strconv.Atoi(fields[1])
}

// receiveFile reads one descriptor sent as SCM_RIGHTS. runc sends the
// file's name as the message's bytes; only the descriptor matters here.
func receiveFile(conn *net.UnixConn) (*os.File, error) {
	payload := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(payload, oob)
	if err != nil {
		return nil, err
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

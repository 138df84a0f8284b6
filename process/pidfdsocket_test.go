package process

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pidfdSenderEnv makes the test binary a stand-in for runc: it connects to
// the socket named in the variable and sends its own pidfd.
const pidfdSenderEnv = "TEACH_TEST_SEND_OWN_PIDFD"

func TestMain(m *testing.M) {
	if socket := os.Getenv(pidfdSenderEnv); socket != "" {
		os.Exit(sendOwnPidfd(socket))
	}
	os.Exit(m.Run())
}

func sendOwnPidfd(socket string) int {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte("pidfd"), unix.UnixRights(fd), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// The socket is a name in the kernel, not a file: nothing to remove.
func TestPidfdSocketIsAbstract(t *testing.T) {
	s, err := newPidfdSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Path(), "@containerd-shim-teach-v2/") {
		t.Fatalf("socket name %q is not in the abstract namespace", s.Path())
	}
	if _, err := os.Stat(s.Path()); err == nil {
		t.Fatalf("a file named %q exists", s.Path())
	}
}

// Anyone in the network namespace may connect to an abstract socket. A
// connection from another process than the runc command is closed unread,
// even one that sends nothing and stays open, and the command's pidfd is
// still taken.
func TestPidfdSocketTakesOnlyTheRuncCommandsPidfd(t *testing.T) {
	r := newListeningReceiver(t)
	socket := r.socket

	// The intruder (this test) connects first and says nothing.
	intruder, err := net.Dial("unix", socket.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()

	// The "runc command": the test binary, sending its own pidfd.
	cmd, wait := startSender(t, socket, os.Args[0], "-test.run=^$")
	wait()

	file, reason := r.take(cmd.Process.Pid)
	if file == nil {
		t.Fatalf("the runc command's pidfd was not taken: %s", reason)
	}
	file.Close()
	// The intruder's connection was closed by the shim: a read sees its end.
	buf := make([]byte, 1)
	if n, err := intruder.Read(buf); n != 0 || err == nil {
		t.Fatalf("the intruder's connection is still open (read %d, %v)", n, err)
	}
}

// A BinaryName may be a script that runs runc as its child: the pidfd then
// comes from a child of the command the Reaper started, and is taken.
func TestPidfdSocketTakesThePidfdOfAWrappedRunc(t *testing.T) {
	r := newListeningReceiver(t)
	socket := r.socket

	// `; exit` keeps the shell from exec'ing the last command itself.
	_, wait := startSender(t, socket, "sh", "-c", `"$0" -test.run='^$'; exit $?`, os.Args[0])
	var file *os.File
	select {
	case file = <-r.received:
	case <-time.After(10 * time.Second):
		t.Fatal("the wrapped runc's pidfd was not taken")
	}
	wait()
	if file == nil {
		t.Fatal("the wrapped runc's connection was refused")
	}
	file.Close()
}

func TestParentPid(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if parent, err := parentPid(cmd.Process.Pid); err != nil || parent != os.Getpid() {
		t.Fatalf("parent of %d: %d, %v; want %d", cmd.Process.Pid, parent, err, os.Getpid())
	}
	if !descendsFrom(cmd.Process.Pid, os.Getpid()) {
		t.Fatal("a child does not descend from its parent")
	}
	if descendsFrom(os.Getpid(), cmd.Process.Pid) {
		t.Fatal("a parent descends from its child")
	}
}

// startSender starts a stand-in for the runc command given socket, through
// the package's Reaper as the shim starts runc: the Reaper tells the socket
// its pid, found by the --pidfd-socket argument (the stand-in ignores its
// arguments after the ones given), and collects its exit, which a plain
// cmd.Wait would race the Reaper's wait4 for. wait fails the test unless the
// stand-in exits 0.
func startSender(t *testing.T, socket *pidfdSocket, name string, args ...string) (*exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(name, append(args, "--pidfd-socket", socket.Path())...)
	cmd.Env = append(os.Environ(), pidfdSenderEnv+"="+socket.Path())
	cmd.Stderr = os.Stderr
	waiter, err := testReaper.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, func() {
		t.Helper()
		if status, err := testReaper.Wait(cmd, waiter); err != nil || status != 0 {
			t.Fatalf("%s: exit status %d, %v", name, status, err)
		}
	}
}

// The Reaper names the sender by the socket in the command's arguments.
func TestAnnouncePidfdSenderFindsTheSocketInTheArguments(t *testing.T) {
	socket, err := newPidfdSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer socket.Close()
	cmd := exec.Command("runc", "--root", "/run/runc", "exec", "--pidfd-socket", socket.Path(), "--detach", "c1")
	cmd.Process = &os.Process{Pid: 4242}
	announcePidfdSender(cmd)
	select {
	case <-socket.announced:
	default:
		t.Fatal("the socket was not told its sender")
	}
	if got := socket.sender; got != 4242 {
		t.Fatalf("sender %d, want 4242", got)
	}
}

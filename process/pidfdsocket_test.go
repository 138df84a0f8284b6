package process

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the processes that send a pidfd the way runc
// and its wrappers do: senderRoleEnv names the role, the socket is its last
// argument (where runc has --pidfd-socket's value), and senderDelayEnv, if
// set, how long it works before it sends.
const (
	senderRoleEnv  = "TEACH_TEST_PIDFD_SENDER"
	senderDelayEnv = "TEACH_TEST_PIDFD_DELAY"
)

// The roles, each a way a pidfd legitimately reaches the shim.
const (
	// runc itself: connects, works, sends its own pidfd.
	roleRunc = "runc"
	// runc's parent connects; the child it starts (runc init) sends on
	// the inherited connection while the parent waits for it.
	roleRuncParent = "runc-parent"
	// runc's parent connects and starts an intermediate process that
	// starts runc init and exits at once, as runc's do: runc init is
	// re-parented while it starts, then sends.
	roleRuncParentWithIntermediate = "runc-parent-with-intermediate"
	roleIntermediate               = "intermediate"
	// runc init: sends its own pidfd on descriptor 3; started by an
	// intermediate whose pid is its argument, once that has exited.
	roleInit = "init"
	// connects, and exits without sending.
	roleSilent = "silent"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(senderRoleEnv); role != "" {
		os.Exit(actAsSender(role, os.Args[len(os.Args)-1]))
	}
	testReaper = NewReaper()
	testReaper.Run()
	root, err := os.MkdirTemp("", "pidfd-sockets-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The tests' sockets stay out of /run, where the shims' are.
	shimPidfdFolder.root = root
	code := m.Run()
	shimPidfdFolder.remove()
	os.RemoveAll(root)
	os.Exit(code)
}

func actAsSender(role, arg string) int {
	if err := sendAs(role, arg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

func sendAs(role, arg string) error {
	switch role {
	case roleRunc, roleSilent:
		conn, err := net.Dial("unix", arg)
		if err != nil {
			return err
		}
		defer conn.Close()
		if role == roleSilent {
			return nil
		}
		workForAWhile()
		return sendOwnPidfd(conn.(*net.UnixConn))
	case roleRuncParent, roleRuncParentWithIntermediate:
		conn, err := net.Dial("unix", arg)
		if err != nil {
			return err
		}
		child, childArg := roleInit, ""
		if role == roleRuncParentWithIntermediate {
			child, childArg = roleIntermediate, ""
		}
		connFile, err := conn.(*net.UnixConn).File()
		if err != nil {
			return err
		}
		conn.Close()
		// runc waits until runc init says it is ready: here, until the
		// last holder of the pipe's write end, runc init, exits.
		ready, readyWriter, err := os.Pipe()
		if err != nil {
			return err
		}
		cmd := selfAs(child, childArg, connFile, readyWriter)
		if err := cmd.Run(); err != nil {
			return err
		}
		connFile.Close()
		readyWriter.Close()
		if _, err := ready.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			return fmt.Errorf("waiting for runc init: %v", err)
		}
		return nil
	case roleIntermediate:
		// Start runc init and leave it: it is re-parented.
		cmd := selfAs(roleInit, strconv.Itoa(os.Getpid()), os.NewFile(3, "conn"), os.NewFile(4, "ready"))
		return cmd.Start()
	case roleInit:
		// Started by an intermediate (arg is its pid), runc init goes on
		// once the intermediate has exited and it has a new parent.
		for arg == strconv.Itoa(os.Getppid()) {
			time.Sleep(time.Millisecond)
		}
		workForAWhile()
		conn, err := net.FileConn(os.NewFile(3, "conn"))
		if err != nil {
			return err
		}
		defer conn.Close()
		return sendOwnPidfd(conn.(*net.UnixConn))
	}
	return fmt.Errorf("unknown role %q", role)
}

// selfAs is the test binary in another role, with conn as descriptor 3 and
// ready as 4.
func selfAs(role, arg string, conn, ready *os.File) *exec.Cmd {
	cmd := exec.Command(os.Args[0], arg)
	cmd.Env = append(os.Environ(), senderRoleEnv+"="+role)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{conn, ready}
	return cmd
}

// workForAWhile stands for runc's work before it sends: as long as the
// sender was told to take.
func workForAWhile() {
	if delay, err := time.ParseDuration(os.Getenv(senderDelayEnv)); err == nil {
		time.Sleep(delay)
	}
}

func sendOwnPidfd(conn *net.UnixConn) error {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, _, err = conn.WriteMsgUnix([]byte("standard"), unix.UnixRights(fd), nil)
	return err
}

// runSender runs the test binary in role as the runc command given socket,
// through the package's Reaper as the shim runs runc, and returns once it
// has exited: once "runc" has returned. The Reaper collects its exit, which
// a plain cmd.Wait would race the Reaper's wait4 for.
func runSender(t *testing.T, socket *pidfdSocket, role string, delay time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--pidfd-socket", socket.Path())
	cmd.Env = senderEnv(role, delay)
	cmd.Stderr = os.Stderr
	waiter, err := testReaper.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := testReaper.Wait(cmd, waiter); err != nil || status != 0 {
		t.Fatalf("%s: exit status %d, %v", role, status, err)
	}
}

// senderEnv is the environment of the test binary in role. A binary built
// with -race waits a second as it exits unless told not to.
func senderEnv(role string, delay time.Duration) []string {
	return append(os.Environ(), senderRoleEnv+"="+role, senderDelayEnv+"="+delay.String(), "GORACE=atexit_sleep_ms=0")
}

// shortGrace makes pidfdGrace short for one test, so that a sender can
// take longer than it without making the test slow. A sender taking longer
// than the grace proves that no timer runs while runc does.
func shortGrace(t *testing.T) time.Duration {
	saved := pidfdGrace
	pidfdGrace = 50 * time.Millisecond
	t.Cleanup(func() { pidfdGrace = saved })
	return pidfdGrace
}

func newTestSocket(t *testing.T) *pidfdSocket {
	t.Helper()
	socket, err := shimPidfdFolder.listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(socket.Close)
	return socket
}

// assertNoSocketLeft fails the test if the shim's folder holds anything.
func assertNoSocketLeft(t *testing.T) {
	t.Helper()
	shimPidfdFolder.mu.Lock()
	dir := shimPidfdFolder.path
	shimPidfdFolder.mu.Unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Fatalf("left in %s: %v", dir, entries)
	}
}

// Every way runc, its init or a wrapper sends the pidfd is accepted, even
// when the sender works longer than the grace the shim gives after runc
// returns: no timer runs while the command does.
func TestPidfdSocketTakesThePidfdOfEveryLegitimateSender(t *testing.T) {
	if !kernelHasPidfds() {
		t.Skip("this kernel gives no pidfds")
	}
	slow := 4 * shortGrace(t)
	for _, role := range []string{roleRunc, roleRuncParent, roleRuncParentWithIntermediate} {
		for _, delay := range []time.Duration{0, slow} {
			t.Run(fmt.Sprintf("%s after %v", role, delay), func(t *testing.T) {
				socket := newTestSocket(t)
				runSender(t, socket, role, delay)
				file, connected, err := socket.collect()
				if err != nil || file == nil || !connected {
					t.Fatalf("collect: file %v, connected %v, %v", file, connected, err)
				}
				defer file.Close()
				if _, err := pidfdTarget(file); err != nil {
					t.Fatalf("what was sent is not a pidfd: %v", err)
				}
			})
		}
	}
	// A BinaryName may be a script that runs runc as its child rather
	// than exec'ing it. `; exit` keeps the shell from exec'ing the last
	// command itself.
	t.Run("runc under a wrapper script", func(t *testing.T) {
		socket := newTestSocket(t)
		cmd := exec.Command("sh", "-c", `"$0" "$@"; exit $?`, os.Args[0], "--pidfd-socket", socket.Path())
		cmd.Env = senderEnv(roleRunc, slow)
		waiter, err := testReaper.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if status, err := testReaper.Wait(cmd, waiter); err != nil || status != 0 {
			t.Fatalf("wrapper: exit status %d, %v", status, err)
		}
		file, _, err := socket.collect()
		if err != nil {
			t.Fatal(err)
		}
		file.Close()
	})
	assertNoSocketLeft(t)
}

// A runc that connected and sent nothing fails the create or exec, with an
// error that names the pidfd socket and says what to do.
func TestPidfdSocketSenderThatSendsNothingIsAnError(t *testing.T) {
	socket := newTestSocket(t)
	runSender(t, socket, roleSilent, 0)
	file, reason, err := socket.take(os.Getpid())
	if file != nil || err == nil {
		t.Fatalf("take: file %v, reason %q, %v; want an error", file, reason, err)
	}
	if !errdefs.IsUnknown(err) || !strings.Contains(err.Error(), "--pidfd-socket") || !strings.Contains(err.Error(), "sent no pidfd") {
		t.Fatalf("error %q (%T): want errdefs Unknown naming the pidfd socket", err, errors.Unwrap(err))
	}
	assertNoSocketLeft(t)
}

// A sender that holds its connection open and sends nothing when runc has
// returned is given pidfdGrace; a pidfd it sends later is refused by the
// kernel, and nothing stays behind.
func TestPidfdSocketRefusesAPidfdAfterTheGrace(t *testing.T) {
	shortGrace(t)
	socket := newTestSocket(t)
	conn, err := net.Dial("unix", socket.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// "runc" has returned now.
	file, _, err := socket.take(os.Getpid())
	if file != nil || err == nil || !strings.Contains(err.Error(), "connection still open") {
		t.Fatalf("take: file %v, %v; want no pidfd within the grace", file, err)
	}
	sendErr := sendOwnPidfd(conn.(*net.UnixConn))
	if !errors.Is(sendErr, syscall.EPIPE) && !errors.Is(sendErr, syscall.ECONNRESET) {
		t.Fatalf("a pidfd sent after the grace: %v; want EPIPE or ECONNRESET", sendErr)
	}
	assertNoSocketLeft(t)
}

// A runc that never connected (a wrapper that dropped --pidfd-socket) is no
// error: the exit is attributed by pid, for the reason given.
func TestPidfdSocketNobodyConnected(t *testing.T) {
	socket := newTestSocket(t)
	file, reason, err := socket.take(os.Getpid())
	if file != nil || err != nil || !strings.Contains(reason, "did not connect") {
		t.Fatalf("take: file %v, reason %q, %v", file, reason, err)
	}
	assertNoSocketLeft(t)
}

// A first connection that ends without a pidfd does not hide one sent on a
// second.
func TestPidfdSocketLooksPastAConnectionWithoutAPidfd(t *testing.T) {
	if !kernelHasPidfds() {
		t.Skip("this kernel gives no pidfds")
	}
	socket := newTestSocket(t)
	runSender(t, socket, roleSilent, 0)
	runSender(t, socket, roleRunc, 0)
	file, _, err := socket.collect()
	if err != nil {
		t.Fatal(err)
	}
	file.Close()
}

// Only root may enter the shim's folder, so only root can connect; the
// path stays within the 107 bytes a socket's path may hold.
func TestPidfdSocketFolderIsRootsAlone(t *testing.T) {
	socket := newTestSocket(t)
	dir := filepath.Dir(socket.Path())
	if dir != filepath.Join(shimPidfdFolder.root, strconv.Itoa(os.Getpid())) {
		t.Fatalf("socket %s is not in the shim's folder", socket.Path())
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o700 || st.Uid != uint32(os.Getuid()) {
		t.Fatalf("%s: mode %04o, owner %d; want 0700, the shim's user", dir, st.Mode&0o777, st.Uid)
	}
	longest := filepath.Join(pidfdRoot, "4194304", filepath.Base(socket.Path()))
	if len(longest) > 107 {
		t.Fatalf("a socket path can be %d bytes long: %s", len(longest), longest)
	}
}

// A shim's folder is made fresh; the folders of shims that have died go,
// those of live processes stay; the shim's exit removes its own.
func TestPidfdFolderIsMadeFreshAndRemoved(t *testing.T) {
	root := t.TempDir()
	folder := &pidfdFolder{root: root}
	pidMax, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(pidMax)))
	dead := strconv.Itoa(max + 1) // no process has it
	own := strconv.Itoa(os.Getpid())
	live := "1"
	for _, name := range []string{dead, own, live} {
		if err := os.MkdirAll(filepath.Join(root, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name, "1"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path, err := folder.nextPath()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != filepath.Join(root, own) {
		t.Fatalf("socket path %s is not in the shim's folder", path)
	}
	if entries, err := os.ReadDir(filepath.Join(root, own)); err != nil || len(entries) > 0 {
		t.Fatalf("what a dead shim with our pid left is still there: %v, %v", entries, err)
	}
	if _, err := os.Stat(filepath.Join(root, dead)); !os.IsNotExist(err) {
		t.Fatalf("the folder of a dead shim is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, live)); err != nil {
		t.Fatalf("the folder of a live process was removed: %v", err)
	}
	folder.remove()
	if _, err := os.Stat(filepath.Join(root, own)); !os.IsNotExist(err) {
		t.Fatalf("the shim's folder outlived its removal: %v", err)
	}
}

// BenchmarkPidfdSocket times what a create or exec pays for its pidfd
// socket: make it, let runc connect and send, take the pidfd, remove it.
// "file" is the shim's socket file in a folder of its own, on the file
// system the folder is on (/run, and a tmpfs); "abstract" is a name in the
// kernel's abstract namespace, with nothing on any file system, as the shim
// once used.
func BenchmarkPidfdSocket(b *testing.B) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		b.Skip("this kernel gives no pidfds")
	}
	defer unix.Close(fd)
	for _, root := range []string{"/run", "/dev/shm"} {
		b.Run("file in "+root, func(b *testing.B) {
			dir, err := os.MkdirTemp(root, "pidfd-bench-")
			if err != nil {
				b.Skip(err)
			}
			defer os.RemoveAll(dir)
			folder := &pidfdFolder{root: dir}
			defer folder.remove()
			for b.Loop() {
				socket, err := folder.listen()
				if err != nil {
					b.Fatal(err)
				}
				sendAndTake(b, socket, fd)
			}
		})
	}
	b.Run("abstract", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			name := fmt.Sprintf("@pidfd-bench/%d/%d", os.Getpid(), i)
			listener, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
			if err != nil {
				b.Fatal(err)
			}
			sendAndTake(b, &pidfdSocket{listener: listener}, fd)
		}
	})
}

func sendAndTake(b *testing.B, socket *pidfdSocket, fd int) {
	conn, err := net.Dial("unix", socket.Path())
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte("standard"), unix.UnixRights(fd), nil); err != nil {
		b.Fatal(err)
	}
	conn.Close()
	file, _, err := socket.collect()
	if err != nil {
		b.Fatal(err)
	}
	file.Close()
	socket.Close()
}

package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

// The decision every grouped `start` takes (group.go), played by goroutines:
// each opens the lock file anew, as a start process would, so the flock
// keeps them apart as it keeps processes apart.

// groupAddress is a group socket's address in a folder of the test's.
func groupAddress(t *testing.T) string {
	return "unix://" + filepath.Join(t.TempDir(), "group")
}

// groupShim is the Group service of a shim that runs no container yet,
// served on listener as runServer would.
func groupShim(t *testing.T, address string, listener *net.UnixListener) *TaskService {
	t.Helper()
	s := &TaskService{
		containers: make(map[string]*Container),
		creating:   make(map[string]struct{}),
		joining:    make(map[string]struct{}),
		socket:     &serverSocket{address: address, grouped: true},
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	registerGroupService(server, s)
	go server.Serve(context.Background(), listener)
	t.Cleanup(func() { server.Close() })
	return s
}

// listenAsGroupShim creates the group's socket as `start` does for a shim it
// launches: the file stays when the listener closes.
func listenAsGroupShim(t *testing.T, address string) *net.UnixListener {
	t.Helper()
	l, err := newSocket(address)
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	return l
}

// startOfGroup is what a grouped start decides, under the group lock: join
// the group's shim, or create the socket for a new one (returned).
func startOfGroup(address, containerID string) (*net.UnixListener, error) {
	lock, err := lockGroup(address)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	err = joinGroupShim(context.Background(), address, containerID)
	if !errors.Is(err, errNoGroupShim) {
		return nil, err
	}
	l, err := newSocket(address)
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	return l, nil
}

func awaited(s *TaskService) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.joining)
}

func pathExists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestConcurrentStartsOfOneGroupLaunchOneShim(t *testing.T) {
	const starts = 20
	address := groupAddress(t)
	launched := make(chan *net.UnixListener, starts)
	errs := make(chan error, starts)
	var wg sync.WaitGroup
	for i := range starts {
		wg.Go(func() {
			l, err := startOfGroup(address, fmt.Sprintf("member-%d", i))
			if l != nil {
				launched <- l
			}
			errs <- err
		})
	}
	// The shim serves only once its socket was handed over, while the
	// other starts wait for it, as a slow machine makes them: they joined
	// its socket, and their Join waits there until it serves.
	listener := <-launched
	shim := groupShim(t, address, listener)
	wg.Wait()
	close(launched)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for extra := range launched {
		t.Errorf("a second shim's socket was created: %v", extra.Addr())
	}
	if got := awaited(shim); got != starts-1 {
		t.Errorf("the shim awaits %d containers, want %d: every start but the one that launched it joined it", got, starts-1)
	}
}

func TestStartReplacesTheSocketOfADeadShim(t *testing.T) {
	address := groupAddress(t)
	dead := listenAsGroupShim(t, address)
	dead.Close() // the shim died: its socket file stays, nobody listens
	path, _ := socketPath(address)
	if !pathExists(t, path) {
		t.Fatal("the dead shim's socket should still be there")
	}
	l, err := startOfGroup(address, "member")
	if err != nil {
		t.Fatal(err)
	}
	if l == nil {
		t.Fatal("the start joined a dead shim; want a new shim's socket")
	}
	defer l.Close()
	if !shimAnswers(address) {
		t.Error("the new shim's socket does not answer")
	}
}

func TestStartWhileTheGroupShimDecidesToLeave(t *testing.T) {
	address := groupAddress(t)
	shim := groupShim(t, address, listenAsGroupShim(t, address))
	path, _ := socketPath(address)

	// A start holds the lock while it joins; Shutdown, for the group's
	// last container, arrives meanwhile and waits for the lock.
	lock, err := lockGroup(address)
	if err != nil {
		t.Fatal(err)
	}
	left := make(chan bool)
	go func() { left <- shim.leaveIfIdle(context.Background(), "last") }()
	if err := joinGroupShim(context.Background(), address, "newcomer"); err != nil {
		t.Fatal(err)
	}
	lock.Unlock()
	if <-left {
		t.Fatal("the shim left while a container that joined it was on its way")
	}
	if !pathExists(t, path) {
		t.Fatal("the shim that stays removed its socket")
	}

	// containerd's Create for the newcomer arrives, fails, and containerd
	// shuts the shim down for it: now it leaves, and its socket and lock
	// go with it.
	if err := shim.reserve("newcomer"); err != nil {
		t.Fatal(err)
	}
	shim.release("newcomer")
	if !shim.leaveIfIdle(context.Background(), "newcomer") {
		t.Fatal("the shim stayed with no container and none on its way")
	}
	if pathExists(t, path) || pathExists(t, path+".lock") {
		t.Error("the shim that left kept its socket or its lock file")
	}
	if err := shim.reserve("late"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Create in a shim that is leaving: %v, want FailedPrecondition", err)
	}
}

func TestShutdownForAContainerThatNeverCameReleasesIt(t *testing.T) {
	address := groupAddress(t)
	shim := groupShim(t, address, listenAsGroupShim(t, address))
	if l, err := startOfGroup(address, "abandoned"); err != nil || l != nil {
		t.Fatalf("start: listener %v, %v; want it joined", l, err)
	}
	if shim.leaveIfIdle(context.Background(), "another") {
		t.Fatal("the shim left while it awaited a container")
	}
	// containerd gave up on the container before its Create: it calls
	// Shutdown with its id.
	if !shim.leaveIfIdle(context.Background(), "abandoned") {
		t.Fatal("the shim stayed for a container containerd gave up on")
	}
}

func TestStartAfterTheGroupShimLeftLaunchesAnother(t *testing.T) {
	address := groupAddress(t)
	old := groupShim(t, address, listenAsGroupShim(t, address))
	// The old shim still listens (it is flushing its events) but its
	// socket file is gone: no start can reach it.
	if !old.leaveIfIdle(context.Background(), "last") {
		t.Fatal("an idle shim stayed")
	}
	l, err := startOfGroup(address, "next")
	if err != nil {
		t.Fatal(err)
	}
	if l == nil {
		t.Fatal("the start joined the shim that left")
	}
	l.Close()
	if err := old.reserve("next"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Create in the shim that left: %v, want FailedPrecondition", err)
	}
}

// The lock file is removed by whoever lets go of the lock while the group has
// no socket, while other starts wait on it: the lock must stay one lock.
func TestGroupLockExcludesWhileItsFileIsRemoved(t *testing.T) {
	address := groupAddress(t)
	var holders atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				lock, err := lockGroup(address)
				if err != nil {
					t.Error(err)
					return
				}
				holders.Add(1)
				for range 10 {
					runtime.Gosched() // let the others try meanwhile
				}
				if n := holders.Add(-1); n != 0 {
					t.Errorf("%d holders of the group lock at once", n+1)
				}
				lock.Unlock() // no socket: the lock file goes
			}
		})
	}
	wg.Wait()
	path, _ := socketPath(address)
	if pathExists(t, path+".lock") {
		t.Error("the lock file of a group without a socket stayed")
	}
}

// A shim too busy to accept connections is alive: connecting waits for it,
// where a non-blocking connect would fail.
func TestDialShimWaitsForABusyShim(t *testing.T) {
	address := groupAddress(t)
	path, _ := socketPath(address)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	// A queue of one connection waiting to be accepted, filled.
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	first, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := net.Dial("unix", path); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("a non-blocking connect to a full queue: %v, want EAGAIN", err)
	}
	dialed := make(chan error)
	go func() {
		conn, err := dialShim(address)
		if err == nil {
			conn.Close()
		}
		dialed <- err
	}()
	// The shim gets to its queue.
	accepted, _, err := unix.Accept(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(accepted)
	if err := <-dialed; err != nil {
		t.Errorf("connect to a busy shim: %v, want it connected once the shim accepts", err)
	}
}

// shimGroup reads the group from the bundle's annotations, and falls back to
// the container's own id for anything it should not trust or cannot read.
func TestShimGroupFromTheBundle(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         string
		grouped      bool
	}{
		{"group annotation", `{"annotations":{"io.containerd.teach.v2.group":"web"}}`, "web", true},
		{"a pod's sandbox id", `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}`, "pod1", true},
		{"an unsafe group", `{"annotations":{"io.containerd.teach.v2.group":"../x"}}`, "c1", false},
		{"no annotations", `{}`, "c1", false},
		{"not JSON", `{`, "c1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			if group, grouped := shimGroup(bundle, "c1"); group != tc.want || grouped != tc.grouped {
				t.Errorf("shimGroup = %q, %v; want %q, %v", group, grouped, tc.want, tc.grouped)
			}
		})
	}
	t.Run("a config.json too large to read", func(t *testing.T) {
		bundle := t.TempDir()
		// Valid JSON naming a group, made too large by a padding annotation.
		padding := strings.Repeat("x", maxBundleSpecSize)
		config := `{"annotations":{"io.containerd.teach.v2.group":"web","padding":"` + padding + `"}}`
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		if group, grouped := shimGroup(bundle, "c1"); group != "c1" || grouped {
			t.Errorf("shimGroup = %q, %v; want the container's own id", group, grouped)
		}
	})
	if group, grouped := shimGroup(t.TempDir(), "c1"); group != "c1" || grouped {
		t.Errorf("no config.json: shimGroup = %q, %v; want the container's own id", group, grouped)
	}
}

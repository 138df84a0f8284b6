package process

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// startSleeper starts a child that runs until killed, and opens its pidfd.
// The package's testReaper reaps it once it dies.
func startSleeper(t *testing.T) (*exec.Cmd, *os.File) {
	t.Helper()
	if !kernelHasPidfds() {
		t.Skip("this kernel gives no pidfds")
	}
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, os.NewFile(uintptr(fd), "pidfd")
}

// waitExited blocks until the pidfd's process has exited.
func waitExited(t *testing.T, file *os.File) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(file.Fd()), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			return
		}
	}
}

func TestPidfdOwnsOnlyTheExitOfItsProcess(t *testing.T) {
	cmd, file := startSleeper(t)
	pid := cmd.Process.Pid
	var p Pidfd
	p.hold(file, pid)
	if p.Attribution() != AttributedByPidfd {
		t.Fatalf("attribution %q with a pidfd", p.Attribution())
	}
	// While the process runs, an exit reaped for its pid is an earlier
	// holder's of the number.
	if p.OwnsExit(pid) {
		t.Fatal("a live process's pidfd claimed an exit of its pid")
	}
	if held, err := p.Signal(unix.SIGKILL); !held || err != nil {
		t.Fatalf("signal through the pidfd: held %v, %v", held, err)
	}
	waitExited(t, file)
	if !p.OwnsExit(pid) {
		t.Fatal("the pidfd of a process that died does not claim its exit")
	}
	if p.OwnsExit(pid + 1) {
		t.Fatal("the pidfd claimed the exit of another pid")
	}
	p.Close()
	if held, _ := p.Signal(unix.SIGKILL); held {
		t.Fatal("a closed pidfd still signals")
	}
	if p.Attribution() != AttributedByPidfd {
		t.Fatalf("attribution %q after close, want it kept", p.Attribution())
	}
}

func TestPidfdSignalToAReapedProcessIsNotFound(t *testing.T) {
	cmd, file := startSleeper(t)
	var p Pidfd
	p.hold(file, cmd.Process.Pid)
	defer p.Close()
	cmd.Process.Kill()
	waitExited(t, file)
	// Reaped or still a zombie, the signal cannot reach another process.
	err := signalError(unix.PidfdSendSignal(int(file.Fd()), unix.SIGTERM, nil, 0), "c1", 15)
	if err != nil && !errdefs.IsNotFound(err) {
		t.Fatalf("signal to an exited process: %v, want NotFound or nothing (zombie)", err)
	}
}

func TestNoPidfdFallsBackToThePid(t *testing.T) {
	var p Pidfd
	p.hold(nil, 42)
	if p.Attribution() != AttributedByPid {
		t.Fatalf("attribution %q without a pidfd", p.Attribution())
	}
	if !p.OwnsExit(42) {
		t.Fatal("without a pidfd the pid match must stand")
	}
	if held, err := p.Signal(unix.SIGTERM); held || err != nil {
		t.Fatalf("signal without a pidfd: held %v, %v", held, err)
	}
	var zero Pidfd
	if zero.Attribution() != AttributedByPid {
		t.Fatalf("a process not yet started: attribution %q", zero.Attribution())
	}
}

// sendPidfd does what runc does with --pidfd-socket: connect, and send the
// pidfd as SCM_RIGHTS with a name as payload.
func sendPidfd(t *testing.T, path string, file *os.File) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	_, _, err = conn.(*net.UnixConn).WriteMsgUnix([]byte("standard"), unix.UnixRights(int(file.Fd())), nil)
	if err != nil {
		t.Error(err)
	}
}

func TestSocketTakesThePidfdOfThePidRuncReported(t *testing.T) {
	cmd, file := startSleeper(t)
	defer file.Close()
	for _, tc := range []struct {
		name     string
		pid      int
		accepted bool
	}{
		{"same pid", cmd.Process.Pid, true},
		{"another pid", cmd.Process.Pid + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			socket := newTestSocket(t)
			sendPidfd(t, socket.Path(), file)
			got, reason, err := socket.take(tc.pid)
			if tc.accepted != (got != nil) || err != nil {
				t.Fatalf("take(%d): file %v, reason %q, %v", tc.pid, got, reason, err)
			}
			if got != nil {
				got.Close()
			} else if !strings.Contains(reason, "names pid") {
				t.Fatalf("refusal reason %q", reason)
			}
		})
	}
}

// The process may be reaped before the shim reads the pidfd (an exec that
// ends at once): the pidfd names pid -1 then, and is kept.
func TestSocketKeepsThePidfdOfAReapedProcess(t *testing.T) {
	cmd, file := startSleeper(t)
	defer file.Close()
	pid := cmd.Process.Pid
	cmd.Process.Kill()
	waitReaped(t, file)
	socket := newTestSocket(t)
	sendPidfd(t, socket.Path(), file)
	got, reason, err := socket.take(pid)
	if got == nil {
		t.Fatalf("the pidfd of a reaped process was refused: %s, %v", reason, err)
	}
	defer got.Close()
	var p Pidfd
	p.hold(got, pid)
	if !p.OwnsExit(pid) {
		t.Fatal("the pidfd of a reaped process does not claim its exit")
	}
}

// waitReaped waits until the test reaper has collected the process
// the pidfd names: its fdinfo then shows pid -1.
func waitReaped(t *testing.T, file *os.File) {
	t.Helper()
	for range 1000 {
		if pid, err := pidfdTarget(file); err == nil && pid == -1 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the process was never reaped")
}

package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// A pid is only a number: once a process has been reaped, the kernel may give
// its number to the next process it starts. The shim learns a process's exit
// from wait4, which names the pid reaped, and signals a process by its pid;
// both go wrong if the number meanwhile belongs to another process. A pidfd
// (a descriptor that names one process, not a number) cannot be recycled:
// signals sent through it reach that process or fail, and it turns readable
// when that process, and no other, has exited.
//
// runc 1.2 and later send the pidfd of the process they create over a unix
// socket (--pidfd-socket), as they send a terminal's master. The shim holds
// it from create (or exec) until the exit is recorded, and uses it twice:
//   - to attribute an exit: when wait4 reaps pid P, the process the shim
//     tracks as P is the one that died only if its pidfd is readable;
//   - to send Kill's signal, which then cannot reach a recycled pid.
//
// Without a pidfd (an older runc, a kernel before 5.3, pidfd_open refused by
// a sandbox) the shim falls back to matching wait4's pid, and says so. A runc
// that connects to the socket and then sends no pidfd is broken, not old: the
// create or exec fails (pidfdsocket.go).

// ExitAttribution names how the shim tells that a reaped pid is its process.
type ExitAttribution string

const (
	AttributedByPidfd ExitAttribution = "pidfd"
	AttributedByPid   ExitAttribution = "wait4 pid match"
)

// Pidfd holds a process's pidfd while the process lives. The zero value holds
// none; every method is then a no-op that reports so, and the caller falls
// back to the pid.
type Pidfd struct {
	// mu guards file: a Kill racing with the exit must not signal through
	// a descriptor number that was closed and reused for another file.
	mu   sync.Mutex
	file *os.File
	pid  int
	// attribution is fixed once the process has started; it stays "pidfd"
	// after the descriptor is closed.
	attribution ExitAttribution
}

// hold keeps file as the pidfd of pid; with a nil file, the process is
// attributed by pid.
func (p *Pidfd) hold(file *os.File, pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.file, p.pid = file, pid
	p.attribution = AttributedByPid
	if file != nil {
		p.attribution = AttributedByPidfd
	}
}

// Attribution is how the process's exit is attributed.
func (p *Pidfd) Attribution() ExitAttribution {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.attribution == "" {
		return AttributedByPid
	}
	return p.attribution
}

// Signal sends sig through the pidfd. held is false when no pidfd is held;
// ESRCH means the process has exited (it may not be reaped yet).
func (p *Pidfd) Signal(sig unix.Signal) (held bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.file == nil {
		return false, nil
	}
	return true, unix.PidfdSendSignal(int(p.file.Fd()), sig, nil, 0)
}

// OwnsExit reports whether the exit wait4 reaped for pid is this process's.
// The router has already matched the pid; with a pidfd the kernel confirms
// it: the pidfd of a process that has exited polls readable, that of a live
// one does not, whatever process now or once had the same number.
func (p *Pidfd) OwnsExit(pid int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.file == nil {
		return true // the pid match is all there is
	}
	if pid != p.pid {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(p.file.Fd()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// Cannot ask the kernel: trust the pid, as without a pidfd.
			log.L.WithError(err).WithField("pid", pid).Warn("poll pidfd; attributing the exit by pid")
			return true
		}
		return n > 0 && fds[0].Revents&unix.POLLIN != 0
	}
}

// Close releases the pidfd. The process's exit is recorded by then, so the
// shim has nothing more to ask of it.
func (p *Pidfd) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.file != nil {
		p.file.Close()
		p.file = nil
	}
}

// listenForPidfd opens the socket runc sends the pidfd to, or returns nil,
// with the reason, when pidfds are not to be had here. The observer sees the
// one `runc --version` a shim asks.
func listenForPidfd(ctx context.Context, observer observe.Observer, rc *runc.Runc) (*pidfdSocket, string) {
	if reason := pidfdsUnavailable(ctx, observer, rc); reason != "" {
		return nil, reason
	}
	socket, err := shimPidfdFolder.listen()
	if err != nil {
		return nil, fmt.Sprintf("cannot create the pidfd socket: %v", err)
	}
	return socket, ""
}

// runcSocket is the option for go-runc's CreateOpts and ExecOpts. It must be
// a nil interface, not a nil *pidfdSocket, when there is no socket: go-runc
// tests the interface against nil.
func (s *pidfdSocket) runcSocket() runc.PidfdSocket {
	if s == nil {
		return nil
	}
	return s
}

// take returns the pidfd runc sent for pid, once runc has returned, and
// closes the socket. Without a pidfd, reason says why and the process's exit
// will be attributed by pid; a runc that connected and sent none is an
// error (sentNoPidfd). A pidfd that names another live process than the pid
// file does is refused: attributing exits by it would be wrong.
func (s *pidfdSocket) take(pid int) (file *os.File, reason string, err error) {
	defer s.Close()
	file, connected, err := s.collect()
	switch {
	case err != nil:
		return nil, "", sentNoPidfd(err)
	case !connected:
		return nil, "runc did not connect to the pidfd socket", nil
	}
	// A process that has already been reaped (one that ends at once) shows
	// as -1: the pidfd still names it, and polls readable, as its exit
	// needs.
	named, err := pidfdTarget(file)
	if err != nil || (named != pid && named != -1) {
		file.Close()
		return nil, fmt.Sprintf("the pidfd runc sent names pid %d (%v), not %d", named, err, pid), nil
	}
	return file, "", nil
}

// pidfdTarget reads which pid a pidfd names, from its "Pid:" line in
// /proc/self/fdinfo (-1 once the process has been reaped).
func pidfdTarget(file *os.File) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", file.Fd()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parsePidfdInfo(f)
}

func parsePidfdInfo(r io.Reader) (int, error) {
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if ok && key == "Pid" {
			return strconv.Atoi(strings.TrimSpace(value))
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no Pid line: not a pidfd")
}

// kernelHasPidfds reports whether this kernel (5.3 and later) gives pidfds
// to the shim; asked once.
var kernelHasPidfds = sync.OnceValue(func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
})

// runcSendsPidfds caches, per runc binary, whether it knows --pidfd-socket.
var runcSendsPidfds sync.Map // binary → bool

// pidfdsUnavailable returns why the shim cannot get pidfds from rc, or "".
// runc's version is asked once per binary: `runc --version` costs a few
// milliseconds, a container's life many runc calls.
func pidfdsUnavailable(ctx context.Context, observer observe.Observer, rc *runc.Runc) string {
	if !kernelHasPidfds() {
		return "the kernel gives no pidfds (pidfd_open failed)"
	}
	if known, ok := runcSendsPidfds.Load(rc.Command); ok {
		if !known.(bool) {
			return "runc is older than 1.2 (no --pidfd-socket)"
		}
		return ""
	}
	var version runc.Version
	err := runcCall(ctx, observer, rc, "version", "", func(ctx context.Context) (err error) {
		version, err = rc.Version(ctx)
		return err
	})
	if err != nil {
		return fmt.Sprintf("cannot ask runc its version: %v", err)
	}
	sends := versionAtLeast(version.Runc, 1, 2)
	runcSendsPidfds.Store(rc.Command, sends)
	if !sends {
		return fmt.Sprintf("runc %s is older than 1.2 (no --pidfd-socket)", version.Runc)
	}
	return ""
}

// versionAtLeast compares a version such as "1.2.0-rc.1" or "1.5.3" with
// major.minor; a version it cannot read counts as older.
func versionAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	gotMajor, err1 := strconv.Atoi(parts[0])
	gotMinor, err2 := strconv.Atoi(leadingDigits(parts[1]))
	if err1 != nil || err2 != nil {
		return false
	}
	return gotMajor > major || (gotMajor == major && gotMinor >= minor)
}

func leadingDigits(s string) string {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	return s[:end]
}

// adoptPidfd puts the pidfd runc sent for pid into holder (none without a
// socket: reason says why) and logs how the process's exit will be
// attributed. It fails if runc connected to the socket and sent no pidfd.
func adoptPidfd(ctx context.Context, socket *pidfdSocket, reason string, pid int, holder *Pidfd, fields log.Fields) error {
	var file *os.File
	if socket != nil {
		var err error
		if file, reason, err = socket.take(pid); err != nil {
			return err
		}
	}
	holder.hold(file, pid)
	fields["pid"] = pid
	logAttribution(ctx, fields, holder.Attribution(), reason)
	return nil
}

// logAttribution tells, once per process, how its exit will be attributed:
// an engineer reading the shim's log learns whether pid reuse could have
// misled it.
func logAttribution(ctx context.Context, fields log.Fields, attribution ExitAttribution, fallbackReason string) {
	fields["attribution"] = string(attribution)
	entry := log.G(ctx).WithFields(fields)
	if fallbackReason != "" {
		entry = entry.WithField("reason", fallbackReason)
	}
	entry.Infof("exit attribution: %s", attribution)
}

// noteSignalSent tells the observer how a signal reached the process: the
// Kill request itself is told by the shim; this says which way the signal
// went, since runc kill, which the observer sees as a command, is only one of
// them. It carries sentAt, read just before the signal went: a process that
// dies of it at once may be reaped, and its exit told, before this is, and a
// story ordered by time must still show the signal first.
func noteSignalSent(observer observe.Observer, sentAt time.Time, pid int, signal uint32, how string) {
	observer.SignalSent(observe.Signal{Number: int(signal), Pid: pid, How: how, At: sentAt})
}

const (
	sentThroughPidfd = "sent with pidfd_send_signal: a pidfd cannot name a recycled pid"
	sentToPid        = "sent with kill(2) to the pid: no pidfd is held"
)

// signalError turns the answer of a signal sent to process id into the
// errdefs kind containerd expects: ESRCH (the process has exited) is NotFound,
// as `runc kill` answers for a finished container.
func signalError(err error, id string, signal uint32) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("process %s already finished: %w", id, errdefs.ErrNotFound)
	}
	return fmt.Errorf("signal %d to process %s: %w", signal, id, err)
}

package stdio

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// newTestPty makes a pty as runc would, and returns the master as the shim
// holds it and the process's end, in raw mode: bytes pass unchanged, and
// nothing is echoed.
func newTestPty(t *testing.T) (*ptyMaster, *os.File) {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	fd, err := unix.FcntlInt(master.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	slave := openSlave(t, slavePath)
	setRaw(t, slave)
	return newPtyMaster(os.NewFile(uintptr(fd), "pty master")), slave
}

// setRaw turns off what a terminal does to bytes on their way: echo,
// lines, signals, \n to \r\n.
func setRaw(t *testing.T, slave *os.File) {
	t.Helper()
	termios, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	termios.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	termios.Oflag &^= unix.OPOST
	termios.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	termios.Cc[unix.VMIN], termios.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, termios); err != nil {
		t.Fatal(err)
	}
}

func openSlave(t *testing.T, path string) *os.File {
	t.Helper()
	slave, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return slave
}

// handOver freezes r and takes it over as the next shim would after
// execve: the state through JSON, the descriptors under other numbers
// (duplicates stand for the numbers execve keeps, and the old numbers are
// closed, as execve leaves no file of the old shim).
func handOver(t *testing.T, r *Relay) *Relay {
	t.Helper()
	h := r.Freeze()
	moved := map[int]int{-1: -1}
	for _, fd := range h.Fds() {
		if _, done := moved[fd]; done {
			continue
		}
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		moved[fd] = dup
	}
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var next RelayHandover
	if err := json.Unmarshal(data, &next); err != nil {
		t.Fatal(err)
	}
	next.StdinRead, next.StdinHeldWriter, next.StdinPipe = moved[next.StdinRead], moved[next.StdinHeldWriter], moved[next.StdinPipe]
	for i := range next.Outputs {
		o := &next.Outputs[i]
		o.From, o.To, o.Held = moved[o.From], moved[o.To], moved[o.Held]
	}
	if next.Terminal != nil {
		next.Terminal.Master = moved[next.Terminal.Master]
	}
	restored := RestoreRelay(&next, r.observer, nil)
	t.Cleanup(func() { restored.Close() })
	r.Close() // the old numbers; its copies stay parked
	return restored
}

// A terminal's output handed over five times while the process writes
// arrives whole, every line once and in order; what the client types
// reaches the process before and after; and the window size set after the
// handovers is the one the process sees.
func TestTerminalHandedOverKeepsEveryByte(t *testing.T) {
	paths := fifos(t)
	paths.Stderr = ""
	master, slave := newTestPty(t)
	relay, err := relayTerminal(paths, master)
	if err != nil {
		t.Fatal(err)
	}
	output := readAll(openReader(t, paths.Stdout))
	stdin, err := os.OpenFile(paths.Stdin, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	typed := bufio.NewReader(slave)

	const lines = 20000
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := range lines {
			fmt.Fprintf(slave, "line %d\n", i)
		}
	}()
	expectTyped(t, stdin, typed, "before\n")
	for range 5 {
		relay = handOver(t, relay)
	}
	expectTyped(t, stdin, typed, "after\n")
	if err := relay.Resize(100, 30); err != nil {
		t.Fatal(err)
	}
	size, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ)
	if err != nil || size.Col != 100 || size.Row != 30 {
		t.Fatalf("window size %+v, %v; want 100 columns, 30 rows", size, err)
	}
	<-written
	// The process exits while another still holds the terminal: its
	// output ends once what it wrote is out.
	relay.ProcessExited()
	<-relay.OutputDone()
	got := strings.Split(strings.TrimSuffix(<-output, "\n"), "\n")
	if len(got) != lines {
		t.Fatalf("%d lines out, want %d", len(got), lines)
	}
	for i, line := range got {
		if line != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d is %q", i, line)
		}
	}
}

func expectTyped(t *testing.T, stdin *os.File, typed *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(stdin, line); err != nil {
		t.Fatal(err)
	}
	got, err := typed.ReadString('\n')
	if err != nil || got != line {
		t.Fatalf("the process read %q, %v; want %q", got, err, line)
	}
}

// A terminal nobody holds for a moment (an init that closes its terminal
// and opens /dev/console again) has not ended: output written after it is
// opened again is relayed.
func TestTerminalOutputGoesOnWhenTheProcessOpensItAgain(t *testing.T) {
	paths := fifos(t)
	paths.Stdin, paths.Stderr = "", ""
	master, slave := newTestPty(t)
	relay, err := relayTerminal(paths, master)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	output := openReader(t, paths.Stdout)
	lines := bufio.NewReader(output)
	name, err := ptsName(slave)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(slave, "first")
	slave.Close() // no one holds the terminal: the master reads EIO
	again := openSlave(t, name)
	fmt.Fprintln(again, "second")
	for _, want := range []string{"first\n", "second\n"} {
		if got := readLine(t, output, lines); got != want {
			t.Fatalf("read %q, want %q", got, want)
		}
	}
	again.Close()
	relay.ProcessExited()
	<-relay.OutputDone()
}

// readLine reads a line from the non-blocking FIFO reader, waiting for it in
// the poller.
func readLine(t *testing.T, f *os.File, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read %q: %v (%s)", line, err, f.Name())
	}
	return line
}

func ptsName(slave *os.File) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/self/fd/%d", slave.Fd()))
}

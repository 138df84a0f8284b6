package stdio

import (
	"bufio"
	"fmt"
	"os"
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

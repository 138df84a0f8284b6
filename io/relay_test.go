package stdio

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// fifos makes the three FIFOs containerd would make for a process.
func fifos(t *testing.T) Paths {
	t.Helper()
	dir := t.TempDir()
	paths := Paths{Stdin: filepath.Join(dir, "stdin"), Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr"), Observer: observe.Nop{}}
	for _, p := range []string{paths.Stdin, paths.Stdout, paths.Stderr} {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func startRelay(t *testing.T, paths Paths) (*Pipes, *Relay) {
	t.Helper()
	pipes, err := NewPipes(paths)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := OpenRelay(paths, pipes)
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return pipes, relay
}

// openReader opens a FIFO's read end as containerd does: without waiting
// for a writer (the relay may already have closed its write end).
func openReader(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestOutputReachesTheFifosAndThenOutputDone(t *testing.T) {
	paths := fifos(t)
	pipes, relay := startRelay(t, paths)
	stdout, stderr := openReader(t, paths.Stdout), openReader(t, paths.Stderr)

	pipes.stdout.write.WriteString("to stdout\n")
	pipes.stderr.write.WriteString("to stderr\n")
	pipes.CloseAfterStart() // the container's ends: as if the process exited

	select {
	case <-relay.OutputDone():
	case <-time.After(10 * time.Second):
		t.Fatal("OutputDone never closed after every writer closed")
	}
	for f, want := range map[*os.File]string{stdout: "to stdout\n", stderr: "to stderr\n"} {
		buf := make([]byte, 64)
		n, _ := f.Read(buf)
		if string(buf[:n]) != want {
			t.Errorf("%s: read %q, want %q", f.Name(), buf[:n], want)
		}
	}
}

// While containerd is away nobody reads the FIFO; the container must neither
// get EPIPE nor lose what it wrote.
func TestOutputWaitsForAReaderWithoutEPIPE(t *testing.T) {
	paths := fifos(t)
	paths.Stdin, paths.Stderr = "", ""
	pipes, relay := startRelay(t, paths)

	const chunk = "line written while nobody reads\n"
	var want strings.Builder
	for range 100 {
		if _, err := pipes.stdout.write.WriteString(chunk); err != nil {
			t.Fatalf("write with no reader: %v", err)
		}
		want.WriteString(chunk)
	}
	pipes.CloseAfterStart()

	reader := openReader(t, paths.Stdout) // containerd comes back
	got, err := io.ReadAll(reader)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("read %d bytes, want %d", len(got), want.Len())
	}
	<-relay.OutputDone()
}

func TestStdinEOFReachesTheContainer(t *testing.T) {
	paths := fifos(t)
	paths.Stdout, paths.Stderr = "", ""
	pipes, relay := startRelay(t, paths)

	writer, err := os.OpenFile(paths.Stdin, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	writer.WriteString("typed input\n")
	writer.Close()
	// containerd's writer is gone, but that alone is not the end of stdin
	// (containerd may be restarting): only CloseIO is.
	container := readAll(pipes.stdin.read)
	select {
	case <-container:
		t.Fatal("stdin ended when containerd's writer closed, before CloseIO")
	case <-time.After(200 * time.Millisecond):
	}
	relay.CloseStdin()
	if got := <-container; got != "typed input\n" {
		t.Fatalf("container read %q", got)
	}
}

func TestStdioPathsThatAreNotFifos(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, nil, 0o600)
	for path, check := range map[string]func(error) bool{
		regular:                       errdefs.IsInvalidArgument,
		filepath.Join(dir, "missing"): errdefs.IsNotFound,
	} {
		paths := Paths{Stdout: path, Observer: observe.Nop{}}
		pipes, _ := NewPipes(paths)
		_, err := OpenRelay(paths, pipes)
		if !check(err) {
			t.Errorf("%s: got %v", path, err)
		}
		pipes.Close()
	}
}

func TestAbsentStreamsGetNoPipe(t *testing.T) {
	pipes, err := NewPipes(Paths{Stdout: "/somewhere", Observer: observe.Nop{}})
	if err != nil {
		t.Fatal(err)
	}
	defer pipes.Close()
	if pipes.Stdin() != nil || pipes.Stderr() != nil || pipes.Stdout() == nil {
		t.Fatal("pipes made for the wrong streams")
	}
}

// readAll reads r to its end in the background and then sends what it read.
func readAll(r io.Reader) <-chan string {
	done := make(chan string, 1)
	go func() {
		data, _ := io.ReadAll(r)
		done <- string(data)
	}()
	return done
}

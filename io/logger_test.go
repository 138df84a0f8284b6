package stdio

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

func TestOutputURI(t *testing.T) {
	for path, want := range map[string]string{
		"":                                "fifo",
		"/run/containerd/fifo/1/c-stdout": "fifo",
		"binary:///usr/bin/logger?a=b":    "binary /usr/bin/logger",
		"binary-v2:///usr/bin/logger":     "binary-v2 /usr/bin/logger",
		"file:///var/log/c.log":           "file /var/log/c.log",
	} {
		uri, isURI, err := outputURI(path)
		got := "fifo"
		if isURI {
			got = uri.Scheme + " " + uri.Path
		}
		if err != nil || got != want {
			t.Errorf("%q: %s, %v; want %s", path, got, err, want)
		}
	}
	for _, bad := range []string{"http://example.com/x", "file://relative", "binary://", "relative/path"} {
		if _, _, err := outputURI(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: got %v, want InvalidArgument", bad, err)
		}
	}
}

func TestFileOutputAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	os.WriteFile(path, []byte("earlier\n"), 0o600)
	paths := Paths{Stdout: "file://" + path, Observer: observe.Nop{}}
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
	defer relay.Close()
	pipes.stdout.write.WriteString("now\n")
	pipes.CloseAfterStart()
	<-relay.OutputDone()
	data, _ := os.ReadFile(path)
	if string(data) != "earlier\nnow\n" {
		t.Fatalf("log file holds %q", data)
	}
}

// FuzzOutputURI: any stdio path is accepted as a FIFO path or a supported
// URI with an absolute path, or refused with InvalidArgument.
func FuzzOutputURI(f *testing.F) {
	for _, seed := range []string{"/a/fifo", "binary:///bin/x?k=v", "binary-v2:///bin/x", "file:///x", "ftp://h/x", "file:", "%zz"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		uri, isURI, err := outputURI(path)
		switch {
		case err != nil:
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error without a kind: %v", err)
			}
		case isURI:
			if !strings.HasPrefix(uri.Path, "/") || (!isLoggerScheme(uri.Scheme) && uri.Scheme != "file") {
				t.Fatalf("accepted %q as %s %q", path, uri.Scheme, uri.Path)
			}
		}
	})
}

// A logging program that copies the container's stdout (fd 3) and stderr
// (fd 4) into the file its "file" argument names. sayReady is the shell that
// tells the shim it is ready, on fd 5.
func shellLogger(t *testing.T, sayReady string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "logger")
	script := "#!/bin/sh\n" + sayReady + "\ncat <&3 >\"$2\"\ncat <&4 >>\"$2\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// startLogger starts a relay whose output is the logging program at uri,
// with the program's file argument set to logFile.
func startLogger(t *testing.T, uri, logFile string) (*Relay, *Pipes, error) {
	t.Helper()
	uri += "?file=" + logFile
	paths := Paths{Stdout: uri, Stderr: uri, Observer: observe.Nop{}}
	pipes, err := NewPipes(paths)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pipes.Close() })
	relay, err := OpenRelay(paths, pipes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return relay, pipes, relay.Start(context.Background())
}

// loggedOutput writes to the container's side of the pipes and returns what
// the logging program wrote once it exited.
func loggedOutput(t *testing.T, relay *Relay, pipes *Pipes, logFile string) string {
	t.Helper()
	pipes.stdout.write.WriteString("to-out\n")
	pipes.stderr.write.WriteString("to-err\n")
	pipes.CloseAfterStart()
	<-relay.OutputDone()
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestLoggerThatOnlyClosesFd5IsReadyUnderBinary(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "c.log")
	relay, pipes, err := startLogger(t, "binary://"+shellLogger(t, "exec 5>&-"), logFile)
	if err != nil {
		t.Fatalf("a binary:// logger that closes fd 5 was refused: %v", err)
	}
	if got := loggedOutput(t, relay, pipes, logFile); got != "to-out\nto-err\n" {
		t.Fatalf("the logger received %q", got)
	}
}

func TestLoggerThatWritesTheReadyByteUnderBinaryV2(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "c.log")
	relay, pipes, err := startLogger(t, "binary-v2://"+shellLogger(t, "printf r >&5; exec 5>&-"), logFile)
	if err != nil {
		t.Fatalf("a binary-v2:// logger that wrote the ready byte was refused: %v", err)
	}
	if got := loggedOutput(t, relay, pipes, logFile); got != "to-out\nto-err\n" {
		t.Fatalf("the logger received %q", got)
	}
}

func TestLoggerThatNeverSaysReadyFailsUnderBinaryV2(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "c.log")
	_, _, err := startLogger(t, "binary-v2://"+shellLogger(t, "exec 5>&-"), logFile)
	if err == nil || !strings.Contains(err.Error(), "ready byte") {
		t.Fatalf("a binary-v2:// logger that closed fd 5 without the ready byte: err = %v, want one about the ready byte", err)
	}
}

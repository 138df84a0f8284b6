package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

func TestRuncCallReportsOnlyTheFailingCommandsReason(t *testing.T) {
	dir := t.TempDir()
	// Any binary that exists: the calls below are stand-ins for runc's.
	rc := NewRunc(RuncConfig{Binary: "sh", Namespace: "ns", Bundle: dir})
	if rc.Root != filepath.Join(DefaultRuncRoot, "ns") || rc.Log != filepath.Join(dir, "log.json") {
		t.Fatalf("root %s, log %s", rc.Root, rc.Log)
	}
	earlier := `{"level":"error","msg":"an earlier failure","time":"t"}` + "\n"
	if err := os.WriteFile(rc.Log, []byte(earlier), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runcCall(t.Context(), observe.Nop{}, rc, "start", "c1", func(context.Context) error {
		appendTo(t, rc.Log, `{"level":"warning","msg":"not this"}`+"\n"+
			`{"level":"error","msg":"container does not exist"}`+"\n")
		return errors.New("exit status 1")
	})
	if err == nil || !strings.Contains(err.Error(), "runc start c1: container does not exist") {
		t.Fatalf("got %v", err)
	}
	if !errdefs.IsNotFound(err) {
		t.Fatalf("a container runc does not know is NotFound, got %v", err)
	}

	err = runcCall(t.Context(), observe.Nop{}, rc, "kill", "c1", func(context.Context) error { return errors.New("exit status 1") })
	if err == nil || strings.Contains(err.Error(), "container does not exist") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("a failure that logged nothing must not borrow an old reason: %v", err)
	}
}

func TestRuncCallNamesAMissingBinary(t *testing.T) {
	rc := NewRunc(RuncConfig{Binary: "/nonexistent/runc", Namespace: "ns", Bundle: t.TempDir()})
	err := runcCall(t.Context(), observe.Nop{}, rc, "state", "c1", func(ctx context.Context) error {
		_, err := rc.State(ctx, "c1")
		return err
	})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `"/nonexistent/runc"`) {
		t.Fatalf("got %v", err)
	}
}

func TestReadPidFileOfMissingFile(t *testing.T) {
	if _, err := runc.ReadPidFile(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("want an error")
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// FuzzLastRuncError feeds arbitrary log contents to the parser of runc's log:
// it must never panic, and must find nothing past the end of the log.
func FuzzLastRuncError(f *testing.F) {
	f.Add([]byte(`{"level":"error","msg":"exec: \"x\": executable file not found in $PATH"}`+"\n"), int64(0))
	f.Add([]byte("not json\n{\"level\":\"fatal\",\"msg\":\"boom\"}\n"), int64(3))
	f.Add([]byte(""), int64(100))
	f.Fuzz(func(t *testing.T, log []byte, offset int64) {
		path := filepath.Join(t.TempDir(), "log.json")
		if err := os.WriteFile(path, log, 0o600); err != nil {
			t.Fatal(err)
		}
		msg := lastRuncError(path, offset)
		if offset >= int64(len(log)) && msg != "" {
			t.Fatalf("found %q past the end of the log", msg)
		}
	})
}

func TestRuncCallKillsACommandPastItsDeadline(t *testing.T) {
	rc := NewRunc(RuncConfig{Binary: "sh", Namespace: "ns", Bundle: t.TempDir()})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := runcCall(ctx, observe.Nop{}, rc, "kill", "c1", func(callCtx context.Context) error {
		<-callCtx.Done() // a runc that hangs until killed
		return callCtx.Err()
	})
	if !errdefs.IsDeadlineExceeded(err) || !strings.Contains(err.Error(), "runc kill c1 did not finish within 8s") {
		t.Fatalf("got %v", err)
	}
}

package process

import (
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestTransitionTable(t *testing.T) {
	all := []State{Created, CreatedFromCheckpoint, Running, Paused, Stopped, Deleted}
	legal := map[[2]State]bool{
		{Created, Running}: true, {Created, Stopped}: true, {Created, Deleted}: true,
		{CreatedFromCheckpoint, Running}: true, {CreatedFromCheckpoint, Stopped}: true,
		{Running, Paused}: true, {Running, Stopped}: true,
		{Paused, Running}: true, {Paused, Stopped}: true,
		{Stopped, Deleted}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := canMove(from, to); got != legal[[2]State{from, to}] {
				t.Errorf("canMove(%s, %s) = %v, want %v", from, to, got, !got)
			}
		}
	}
}

func TestIllegalStepIsFailedPrecondition(t *testing.T) {
	l := NewLifecycle()
	if err := l.MoveTo(Paused, "c1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("created → paused: got %v, want FailedPrecondition", err)
	}
	if err := l.MoveTo(Running, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := l.MoveTo(Running, "c1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("running → running: got %v, want FailedPrecondition", err)
	}
}

func TestStoppedComesOnlyFromAnExit(t *testing.T) {
	l := NewLifecycle()
	if err := l.MoveTo(Stopped, "c1"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("MoveTo(Stopped): got %v, want InvalidArgument", err)
	}
}

func TestSetExitedRecordsTheFirstExitOnly(t *testing.T) {
	l := NewLifecycle()
	if _, ok := l.Exit(); ok {
		t.Fatal("a created process has no exit yet")
	}
	at := time.Unix(1700000000, 0)
	l.SetExited(ExitStatus{Pid: 42, Code: 3, ExitedAt: at})
	l.SetExited(ExitStatus{Pid: 42, Code: 9})
	select {
	case <-l.Exited():
	default:
		t.Fatal("Exited is not closed after SetExited")
	}
	exit, ok := l.Exit()
	if !ok || exit.Code != 3 || exit.Pid != 42 || !exit.ExitedAt.Equal(at) {
		t.Fatalf("Exit() = %+v, %v; want code 3 from pid 42", exit, ok)
	}
	if l.State() != Stopped {
		t.Fatalf("state %s, want stopped", l.State())
	}
	if err := l.MoveTo(Deleted, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Exit(); !ok {
		t.Fatal("a deleted process keeps its exit status")
	}
}

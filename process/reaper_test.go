package process

import (
	"os/exec"
	"testing"
	"time"

	runc "github.com/containerd/go-runc"
)

// The reaper is process-wide (it installs itself as go-runc's Monitor and
// calls wait4(-1)), so one is shared by every test in this package. TestMain
// makes it, and only when the binary runs the tests: the same binary also
// plays the pidfd senders (pidfdsocket_test.go), which wait for children of
// their own, and a Reaper there would reap them first (waitid: ECHILD).
var testReaper *Reaper

func TestReaperHandsCommandExitsBackToTheirWaiter(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -KILL $$", 128 + 9},
		{"kill -TERM $$", 128 + 15},
	} {
		cmd := exec.Command("sh", "-c", tc.script)
		waiter, err := runc.Monitor.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		status, err := runc.Monitor.Wait(cmd, waiter)
		if err != nil || status != tc.want {
			t.Errorf("%q: status %d, %v; want %d", tc.script, status, err, tc.want)
		}
	}
}

func TestReaperSendsOtherExitsToTheExitChannel(t *testing.T) {
	// A child started outside the Monitor stands for a container process:
	// the shim did not start it through go-runc, it was re-parented to it.
	cmd := exec.Command("sh", "-c", "exit 7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case exit := <-testReaper.Exits():
			if exit.Pid != cmd.Process.Pid {
				continue
			}
			if exit.Status != 7 {
				t.Fatalf("status %d, want 7", exit.Status)
			}
			return
		case <-deadline:
			t.Fatal("exit of pid never reached Exits()")
		}
	}
}

func TestReaperManyCommandsAtOnce(t *testing.T) {
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		go func() {
			cmd := exec.Command("sh", "-c", "exit $1", "sh", string(rune('0'+i%10)))
			waiter, err := runc.Monitor.Start(cmd)
			if err != nil {
				errs <- err
				return
			}
			status, _ := runc.Monitor.Wait(cmd, waiter)
			if status != i%10 {
				t.Errorf("command %d: status %d, want %d", i, status, i%10)
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A child an earlier shim started, adopted after an upgrade, has its exit
// handed to the adopter, not taken for a container's.
func TestReaperHandsAnAdoptedChildsExitToItsAdopter(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waiter := testReaper.Adopt(cmd.Process.Pid)
	cmd.Process.Kill()
	select {
	case exit := <-waiter:
		if exit.Pid != cmd.Process.Pid || exit.Status != 128+9 {
			t.Fatalf("adopted child's exit: %+v; want pid %d, status 137", exit, cmd.Process.Pid)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the adopted child's exit never reached its adopter")
	}
}

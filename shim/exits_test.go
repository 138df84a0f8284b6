package shim

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	runc "github.com/containerd/go-runc"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/observe"
	"github.com/teach/containerd-shim-teach-v2/process"
)

// recordedEvents stands in for containerd's event service in unit tests.
type recordedEvents struct {
	mu     sync.Mutex
	topics []string
	exits  []*eventstypes.TaskExit
}

func (r *recordedEvents) Publish(ctx context.Context, topic string, event events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.topics = append(r.topics, topic)
	if exit, ok := event.(*eventstypes.TaskExit); ok {
		r.exits = append(r.exits, exit)
	}
	return nil
}

// exitedProcess is the smallest process.Process: it only records its exit.
type exitedProcess struct {
	id   string
	pid  int
	life *process.Lifecycle
	done chan struct{}
	// alive stands for what a pidfd tells: the process still runs, so an
	// exit reaped for its pid is an earlier process's.
	alive bool
}

func newExitedProcess(id string, pid int) *exitedProcess {
	done := make(chan struct{})
	close(done) // no output to wait for
	return &exitedProcess{id: id, pid: pid, life: process.NewLifecycle(), done: done}
}

func (p *exitedProcess) ID() string                               { return p.id }
func (p *exitedProcess) Pid() int                                 { return p.pid }
func (p *exitedProcess) State() process.State                     { return p.life.State() }
func (p *exitedProcess) Stdio() stdio.Paths                       { return stdio.Paths{} }
func (p *exitedProcess) Start(context.Context) error              { return nil }
func (p *exitedProcess) Kill(context.Context, uint32, bool) error { return nil }
func (p *exitedProcess) Delete(context.Context) (process.ExitStatus, error) {
	return process.ExitStatus{}, nil
}
func (p *exitedProcess) CloseIO()                          {}
func (p *exitedProcess) Resize(width, height uint32) error { return nil }
func (p *exitedProcess) Exited() <-chan struct{}           { return p.life.Exited() }
func (p *exitedProcess) Exit() (process.ExitStatus, bool)  { return p.life.Exit() }
func (p *exitedProcess) OutputDone() <-chan struct{}       { return p.done }
func (p *exitedProcess) OwnsExit(pid int) bool             { return pid == p.pid && !p.alive }
func (p *exitedProcess) ExitAttribution() process.ExitAttribution {
	return process.AttributedByPidfd
}
func (p *exitedProcess) SetExited(code int, at time.Time) {
	p.life.SetExited(process.ExitStatus{Pid: p.pid, Code: code, ExitedAt: at})
}

func newTestContainer(id string) (*Container, *recordedEvents) {
	recorded := &recordedEvents{}
	sink := NewEventSink(namespaces.WithNamespace(context.Background(), "test"), recorded)
	return &Container{ID: id, events: sink, observer: observe.Nop{}, execs: make(map[string]*tracked)}, recorded
}

// waitReported waits for TaskExit to be queued and sent, and returns the
// exits containerd would have received.
func waitReported(t *testing.T, c *Container, p *tracked, recorded *recordedEvents) []*eventstypes.TaskExit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.waitExitReported(ctx); err != nil {
		t.Fatal("TaskExit never published")
	}
	c.events.Flush(ctx)
	recorded.mu.Lock()
	defer recorded.mu.Unlock()
	return append([]*eventstypes.TaskExit(nil), recorded.exits...)
}

func TestExitOfAKnownPidReachesItsProcess(t *testing.T) {
	router := NewExitRouter(observe.Nop{})
	c, recorded := newTestContainer("c1")
	p := track(newExitedProcess("c1", 100), observe.Nop{})
	w := router.OpenWindow()
	w.Claim(100, exitTarget{container: c, process: p})

	router.route(runc.Exit{Pid: 100, Status: 3, Timestamp: time.Now()})
	exits := waitReported(t, c, p, recorded)
	if len(exits) != 1 || exits[0].ExitStatus != 3 || exits[0].Pid != 100 {
		t.Fatalf("exits published: %v", exits)
	}
}

// An exit reaped while runc has not yet reported the pid must not be lost.
func TestExitBeforeThePidIsKnownIsKeptByTheWindow(t *testing.T) {
	router := NewExitRouter(observe.Nop{})
	c, recorded := newTestContainer("c1")
	p := track(newExitedProcess("c1", 200), observe.Nop{})
	w := router.OpenWindow()
	router.route(runc.Exit{Pid: 999, Status: 1}) // someone else's
	router.route(runc.Exit{Pid: 200, Status: 0, Timestamp: time.Now()})
	w.Claim(200, exitTarget{container: c, process: p})
	exits := waitReported(t, c, p, recorded)
	if len(exits) != 1 || exits[0].Pid != 200 {
		t.Fatalf("exits published: %v", exits)
	}
	if len(router.windows) != 0 || len(router.byPid) != 0 {
		t.Fatalf("router keeps %d windows and %d pids after the exit", len(router.windows), len(router.byPid))
	}
}

func TestExitsWithNoWindowOpenAreDropped(t *testing.T) {
	router := NewExitRouter(observe.Nop{})
	router.route(runc.Exit{Pid: 300})
	w := router.OpenWindow()
	if len(w.early) != 0 {
		t.Fatal("a window opened later saw an exit from before it")
	}
	w.Close()
}

// liveProcess is a process whose pidfd would say it still runs.
func liveProcess(id string, pid int) (*exitedProcess, *tracked) {
	p := newExitedProcess(id, pid)
	p.alive = true
	return p, track(p, observe.Nop{})
}

// A pid is reused: an earlier process with the number the new exec gets is
// reaped while runc exec runs. The window keeps that exit; the claim must not
// give it to the new process, whose pidfd says it is alive. Its own exit,
// later, is routed to it.
func TestAnEarlierExitOfAReusedPidIsNotClaimed(t *testing.T) {
	router := NewExitRouter(observe.Nop{})
	c, recorded := newTestContainer("c1")
	exec, p := liveProcess("e1", 400)
	w := router.OpenWindow()
	router.route(runc.Exit{Pid: 400, Status: 9, Timestamp: time.Now()}) // the pid's earlier holder
	w.Claim(400, exitTarget{container: c, process: p})
	select {
	case <-p.exitReported:
		t.Fatal("the exit of the pid's earlier holder was reported as the new process's")
	default:
	}
	if _, waits := router.byPid[400]; !waits {
		t.Fatal("the process was not registered for its own exit")
	}

	exec.alive = false
	router.route(runc.Exit{Pid: 400, Status: 2, Timestamp: time.Now()})
	exits := waitReported(t, c, p, recorded)
	if len(exits) != 1 || exits[0].ExitStatus != 2 {
		t.Fatalf("exits published: %v", exits)
	}
}

// A reaped pid whose tracked process is alive is not that process's exit.
func TestARoutedExitTheProcessDeniesIsNotReported(t *testing.T) {
	router := NewExitRouter(observe.Nop{})
	c, _ := newTestContainer("c1")
	_, p := liveProcess("e1", 500)
	router.OpenWindow().Claim(500, exitTarget{container: c, process: p})
	router.route(runc.Exit{Pid: 500, Status: 1, Timestamp: time.Now()})
	if _, waits := router.byPid[500]; !waits {
		t.Fatal("the process no longer waits for its own exit")
	}
}

// An exit held by a start window is written to the journal once: as its
// process's, marked early, when a window claims it; as nobody's, in the
// shim-wide journal, when the last window holding it closes without a claim.
func TestAHeldExitIsJournaledOnce(t *testing.T) {
	dir := t.TempDir()
	shimWide, err := journal.Open(filepath.Join(dir, "shim"), journal.Options{Level: journal.Info})
	if err != nil {
		t.Fatal(err)
	}
	own, err := journal.Open(filepath.Join(dir, "c1"), journal.Options{ID: "c1", Level: journal.Info})
	if err != nil {
		t.Fatal(err)
	}
	router := NewExitRouter(&journals{grouped: true, shim: shimWide, byID: make(map[string]*journal.Journal)})
	c, recorded := newTestContainer("c1")
	p := track(newExitedProcess("c1", 600), newContainerJournal(own, nil, nil).Process("e1"))

	first, second := router.OpenWindow(), router.OpenWindow()
	router.route(runc.Exit{Pid: 600, Status: 0, Timestamp: time.Now()})
	router.route(runc.Exit{Pid: 601, Status: 7, Timestamp: time.Now()}) // a re-parented daemon's
	if got := reapedLines(t, shimWide, own); len(got) != 0 {
		t.Fatalf("held exits journaled before any window closed: %v", got)
	}
	first.Claim(600, exitTarget{container: c, process: p})
	waitReported(t, c, p, recorded)
	if got := reapedLines(t, shimWide, own); len(got) != 1 || got[0] != "c1 e1 pid 600 status 0: "+earlyExitNote {
		t.Fatalf("after the claim the journals hold %q; want the exit once, as the exec's, marked early", got)
	}
	second.Close()
	want := []string{"  pid 601 status 7: held while a process was being started; no process claimed it", "c1 e1 pid 600 status 0: " + earlyExitNote}
	if got := reapedLines(t, shimWide, own); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after the last window closed the journals hold %q; want %q", got, want)
	}
}

// reapedLines are the reaped entries of the journals, one string each.
func reapedLines(t *testing.T, journals ...*journal.Journal) []string {
	t.Helper()
	var lines []string
	for _, j := range journals {
		story, err := journal.Read(j.Dir())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range story.Entries {
			if e.Kind == journal.KindReaped {
				lines = append(lines, fmt.Sprintf("%s %s pid %d status %d: %s", e.ID, e.Exec, e.Pid, *e.Code, e.Msg))
			}
		}
	}
	sort.Strings(lines)
	return lines
}

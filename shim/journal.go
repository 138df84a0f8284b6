package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"

	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/observe"
)

// The journal is the shim's observer (package observe): the core tells it
// each step it takes, and it writes them down, one line each, in the
// container's journal (package journal), and works out from them why each
// process ended (forensics.go). The core knows none of this; with the
// journal off, it talks to observe.Nop.
//
//	journals        the shim's observer: requests, containers, exits no
//	                process claimed (this file)
//	processJournal  a container's observer, and each of its processes'
//	                (journalprocess.go)
//	runcCommands    what go-runc's Monitor sees of a runc command: its argv,
//	                pid and exit status (journalrunc.go)

// journalRoot is where journals are kept; unit tests point it elsewhere.
var journalRoot = journal.DefaultRoot

// journals are the open journals of a shim: one per container it serves,
// and, for a grouped shim, which serves many containers, one for what
// concerns the shim as a whole. An ungrouped shim serves one container, whose
// journal takes the shim-wide entries too: one file less to make and remove
// on each container's way.
//
// Of the seams, the shim's observer hears the requests (RPC), the
// containers created, and the exits no process claimed; the rest it leaves
// to observe.Nop.
type journals struct {
	observe.Nop
	namespace string
	group     string
	grouped   bool
	shim      *journal.Journal // a grouped shim's; nil when off or unknown
	commands  *runcCommands

	mu   sync.Mutex
	byID map[string]*journal.Journal // guarded by mu
}

// openJournals makes the shim server's observer. It has side effects: it
// opens the shim-wide journal, and it puts itself between go-runc and the
// Reaper, go-runc's Monitor (watchRuncCommands), to learn each runc command's
// argv, pid and exit status; so a process makes one, once, after the Reaper.
//
// The shim server runs in the bundle of the container that started it
// (serverCommand), whose path names containerd's state folder and whose
// annotation its level. Without a group on the command line this is not a
// shim server (a unit test), and there is no shim-wide journal. A shim
// executed by an upgrade (handedOver) continues the journals it finds.
func openJournals(namespace string, reaper runc.ProcessMonitor, handedOver bool) *journals {
	js := &journals{namespace: namespace, byID: make(map[string]*journal.Journal), commands: watchRuncCommands(reaper)}
	flags, err := parseLaunchFlags(os.Args[1:])
	if err != nil || flags.id == "" {
		return js
	}
	js.group = flags.id
	bundle, err := os.Getwd()
	if err != nil {
		return js
	}
	// An ungrouped shim is named after its container, whose bundle it
	// runs in.
	if js.grouped = js.group != filepath.Base(bundle); !js.grouped {
		return js
	}
	level := journal.DefaultLevel
	if spec, err := readBundleSpec(bundle); err == nil {
		if l, err := journal.ParseLevel(journalSetting(spec, shimOptions{})); err == nil {
			level = l
		}
	}
	state := journal.StateOfBundle(bundle)
	openJournal := journal.Open
	if handedOver { // an upgrade: the group's story goes on
		openJournal = journal.Continue
	}
	js.shim, err = openJournal(journal.ShimDir(journalRoot, state, namespace, js.group), journal.Options{Level: level, State: state})
	if err != nil {
		log.L.WithError(err).Warn("no shim-wide journal")
	}
	if handedOver {
		return js
	}
	js.shim.Record(journal.Entry{Kind: journal.KindJournal, ID: filepath.Base(bundle), Pid: os.Getpid(), Name: js.group, Msg: level.String()})
	return js
}

// Container opens a container's journal, at the level it asks for; a
// container whose journal is off (or cannot be written) is watched by
// observe.Nop, and costs the shim nothing more.
func (js *journals) Container(c observe.Container) (observe.Observer, error) {
	level, err := journal.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("annotation %s or runtime option Journal: %v: %w", JournalAnnotation, err, errdefs.ErrInvalidArgument)
	}
	j := js.open(c.ID, c.Bundle, level, c.HandedOver)
	if j == nil {
		return observe.Nop{}, nil
	}
	return newContainerJournal(j, js.commands, c.Remembered), nil
}

// open starts a container's journal. A journal that cannot be written is
// logged, not fatal: the container runs without one.
//
// A container handed over by an upgrade has its journal continued: the
// story is the same, told by the next binary.
func (js *journals) open(id, bundle string, level journal.Level, handedOver bool) *journal.Journal {
	state := journal.StateOfBundle(bundle)
	dir, opts := journal.ContainerDir(journalRoot, state, js.namespace, id), journal.Options{ID: id, Level: level, State: state}
	openJournal := journal.Open
	if handedOver {
		openJournal = journal.Continue
	}
	j, err := openJournal(dir, opts)
	if err != nil {
		log.L.WithError(err).WithField("id", id).Warn("no journal for this container")
		return nil
	}
	if !handedOver {
		j.Record(journal.Entry{Kind: journal.KindJournal, Pid: os.Getpid(), Name: js.group, Msg: level.String(), Path: bundle})
		js.shim.Record(journal.Entry{Kind: journal.KindShim, ID: id, Name: "container joined", Msg: "journal level " + level.String()})
	}
	if j != nil {
		js.mu.Lock()
		js.byID[id] = j
		js.mu.Unlock()
	}
	return j
}

// of is a container's journal; nil when it has none (level off, unknown id).
func (js *journals) of(id string) *journal.Journal {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.byID[id]
}

// shimWide is where shim-wide entries go: the grouped shim's own journal,
// or an ungrouped shim's one container's.
func (js *journals) shimWide() *journal.Journal {
	if js.grouped {
		return js.shim
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, j := range js.byID {
		return j
	}
	return nil
}

// close ends a container's journal: its last line, then the file.
func (js *journals) close(id string) {
	js.mu.Lock()
	j := js.byID[id]
	delete(js.byID, id)
	js.mu.Unlock()
	j.Record(journal.Entry{Kind: journal.KindClosed})
	j.Close()
	js.shim.Record(journal.Entry{Kind: journal.KindShim, ID: id, Name: "container left"})
}

// Reaped writes the exit of a pid no process claimed into the shim-wide
// journal: a process the shim never started (a daemon inside a container,
// re-parented to the shim when its parent died), or one whose start failed.
func (js *journals) Reaped(exit observe.Reap) {
	note := ""
	if exit.Held {
		note = "held while a process was being started; no process claimed it"
	}
	js.shimWide().Record(reapedEntry(exit, note))
}

// reapedEntry is the journal's line for an exit the Reaper collected, at
// the time it was reaped.
func reapedEntry(exit observe.Reap, note string) journal.Entry {
	return journal.Entry{Kind: journal.KindReaped, Mono: monoOf(exit.At), Pid: exit.Pid, Code: journal.Code(exit.Status), Msg: note}
}

// monoOf reads a time on the journal's clock (journal.Now, monotonic); the
// zero time is now.
func monoOf(at time.Time) int64 {
	if at.IsZero() {
		return journal.Now()
	}
	return journal.Now() - int64(time.Since(at))
}

// The request fields the journal reads; every task API request (v2 and v3)
// has ID, most have ExecID, and Create and Start answer with a Pid.
type (
	withID     interface{ GetID() string }
	withExecID interface{ GetExecID() string }
	withPid    interface{ GetPid() uint32 }
)

// RPC runs one ttrpc request and records it in its container's journal:
// when it arrived (as soon as it is decoded, before the task service acts on
// it) and when its answer left, with the error's kind. A request for a
// container without a journal goes to the shim-wide one.
func (js *journals) RPC(ctx context.Context, name string, unmarshal observe.Decode, call observe.Call) (any, error) {
	arrived := journal.Now()
	var id, exec string
	var j *journal.Journal
	decode := func(req any) error {
		if err := unmarshal(req); err != nil {
			return err
		}
		if r, ok := req.(withID); ok {
			id = r.GetID()
		}
		if r, ok := req.(withExecID); ok {
			exec = r.GetExecID()
		}
		if j = js.of(id); j != nil {
			j.Record(journal.Entry{Kind: journal.KindRPCIn, Mono: arrived, Exec: exec, Name: name})
		}
		return nil
	}
	resp, err := call(ctx, decode)
	out := journal.Entry{Kind: journal.KindRPCOut, Exec: exec, Name: name, Took: journal.Now() - arrived, Err: journal.ErrorKind(err)}
	if err != nil {
		out.Msg = err.Error()
	}
	if r, ok := resp.(withPid); ok {
		out.Pid = int(r.GetPid())
	}
	created := false
	if j == nil && name == "Create" {
		// The journal was opened by Create itself: its request is
		// recorded now, with the time it arrived.
		if j = js.of(id); j != nil {
			created = true
			j.Record(journal.Entry{Kind: journal.KindRPCIn, Mono: arrived, Name: name})
		}
	}
	if j == nil {
		shim := js.shimWide()
		shim.Record(journal.Entry{Kind: journal.KindRPCIn, Mono: arrived, ID: id, Exec: exec, Name: name})
		out.ID = id
		shim.Record(out)
		return resp, err
	}
	j.Record(out)
	// A container's journal ends with the answer to its Delete, or to
	// the Create that failed to make it.
	deleted := name == "Delete" && exec == "" && err == nil
	if deleted || created && err != nil {
		js.close(id)
	}
	return resp, err
}

// cleanupJournal is the observer of the `delete` action, which containerd
// runs when a shim died: the dead shim's journal, if it kept one, gets the
// cleanup too, since the story of a container whose shim was killed ends
// there. It watches runc commands through go-runc's own Monitor, since the
// action has no Reaper. close ends the journal.
func cleanupJournal(bundle, namespace, id string) (observer observe.Observer, close func()) {
	j := journal.Reopen(journal.ContainerDir(journalRoot, journal.StateOfBundle(bundle), namespace, id), id)
	if j == nil {
		return observe.Nop{}, func() {}
	}
	j.Record(journal.Entry{Kind: journal.KindCleanup, Pid: os.Getpid(), Msg: "containerd ran the delete action: the shim is gone"})
	return newContainerJournal(j, watchRuncCommands(runc.Monitor), nil), func() { j.Close() }
}

// Upgraded writes an in-place upgrade of the shim into every container's
// journal and the group's: each container's trace shows where its shim
// changed binary, and how long it was frozen.
func (js *journals) Upgraded(u observe.Upgrade) {
	e := journal.Entry{Kind: journal.KindUpgrade, Name: u.From + " → " + u.To, Path: u.Binary, Took: int64(u.Switch),
		Pid: os.Getpid(), Msg: u.Handed, Err: u.Err}
	js.shim.Record(e)
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, j := range js.byID {
		j.Record(e)
	}
}

package shim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/log"
	"github.com/containerd/ttrpc"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// JournalAnnotation sets a container's journal level: off, info or debug.
// It wins over the runtime options' `Journal` (see shimOptions).
const JournalAnnotation = "io.containerd.teach.v2.journal"

// journalRoot is where journals are kept; unit tests point it elsewhere.
var journalRoot = journal.DefaultRoot

// journalLevel chooses a container's journal level: its annotation, else
// the runtime options, else journal.DefaultLevel.
func journalLevel(spec *bundleSpec, own shimOptions) (journal.Level, error) {
	setting := own.Journal
	if value, ok := spec.Annotations[JournalAnnotation]; ok {
		setting = value
	}
	return journal.ParseLevel(setting)
}

// journals are the open journals of a shim: one per container it serves,
// and, for a grouped shim, which serves many containers, one for what
// concerns the shim as a whole. An ungrouped shim serves one container, whose
// journal takes the shim-wide entries too: one file less to make and remove
// on each container's way.
type journals struct {
	namespace string
	group     string
	grouped   bool
	shim      *journal.Journal // a grouped shim's; nil when off or unknown

	mu   sync.Mutex
	byID map[string]*journal.Journal // guarded by mu
}

// openJournals opens the shim-wide journal. The shim server runs in the
// bundle of the container that started it (serverCommand), whose path names
// containerd's state folder and whose annotation its level. Without a group
// on the command line this is not a shim server (a unit test), and there is
// no shim-wide journal.
func openJournals(namespace string) *journals {
	js := &journals{namespace: namespace, byID: make(map[string]*journal.Journal)}
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
		if l, err := journalLevel(spec, shimOptions{}); err == nil {
			level = l
		}
	}
	state := journal.StateOfBundle(bundle)
	js.shim, err = journal.Open(journal.ShimDir(journalRoot, state, namespace, js.group), journal.Options{Level: level, State: state})
	if err != nil {
		log.L.WithError(err).Warn("no shim-wide journal")
	}
	js.shim.Record(journal.Entry{Kind: journal.KindJournal, ID: filepath.Base(bundle), Pid: os.Getpid(), Name: js.group, Msg: level.String()})
	return js
}

// open starts a container's journal. A journal that cannot be written is
// logged, not fatal: the container runs without one.
func (js *journals) open(id, bundle string, level journal.Level) *journal.Journal {
	state := journal.StateOfBundle(bundle)
	j, err := journal.Open(journal.ContainerDir(journalRoot, state, js.namespace, id), journal.Options{ID: id, Level: level, State: state})
	if err != nil {
		log.L.WithError(err).WithField("id", id).Warn("no journal for this container")
		return nil
	}
	j.Record(journal.Entry{Kind: journal.KindJournal, Pid: os.Getpid(), Name: js.group, Msg: level.String(), Path: bundle})
	js.shim.Record(journal.Entry{Kind: journal.KindShim, ID: id, Name: "container joined", Msg: "journal level " + level.String()})
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

// The request fields the journal reads; every task API request (v2 and v3)
// has ID, most have ExecID, and Create and Start answer with a Pid.
type (
	withID     interface{ GetID() string }
	withExecID interface{ GetExecID() string }
	withPid    interface{ GetPid() uint32 }
)

// journalRPC runs one ttrpc request and records it in its container's
// journal: when it arrived (as soon as it is decoded, before the task
// service acts on it) and when its answer left, with the error's kind. A
// request for a container without a journal goes to the shim-wide one.
func (js *journals) journalRPC(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
	arrived := journal.Now()
	name := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
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
	resp, err := method(ctx, decode)
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

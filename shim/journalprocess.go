package shim

import (
	"context"
	"encoding/json"
	"os"
	"sync"

	eventstypes "github.com/containerd/containerd/api/events"

	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/observe"
)

// containerJournal is what the observers of one container share: its
// journal, and what a process's forensics need of the container's life.
type containerJournal struct {
	j        *journal.Journal
	commands *runcCommands

	mu sync.Mutex
	// lastOOM is when the latest OOM kill was told (TaskOOM), 0 for none;
	// initExited is when the init's exit was reaped, 0 while it runs;
	// init is the init's life, for its kills; oomFile is the file that
	// counted the OOM kills; remembered is, for a container handed over
	// by an upgrade, the lives its processes had before, by exec id,
	// until Process takes each up. All guarded by mu.
	lastOOM    int64
	initExited int64
	init       *lifeRecord
	oomFile    string
	remembered map[string]json.RawMessage
}

// processJournal is the observer of a container (exec "", life nil) or of
// one of its processes (exec "" for the init): it writes each step into the
// container's journal, marked with the exec, and keeps the process's life
// for its exit forensics.
type processJournal struct {
	observe.Nop // requests and containers are the shim's observer's
	container   *containerJournal
	exec        string
	life        *lifeRecord
}

// newContainerJournal is the observer of a container whose journal is j;
// remembered is what an upgrade carried of its processes (nil for a new
// container).
func newContainerJournal(j *journal.Journal, commands *runcCommands, remembered map[string]json.RawMessage) *processJournal {
	return &processJournal{container: &containerJournal{j: j, commands: commands, remembered: remembered}}
}

// Process starts the life of one of the container's processes: it was
// created now, or, handed over by an upgrade, it goes on from what the
// binary before remembered.
func (p *processJournal) Process(exec string) observe.Observer {
	c := p.container
	c.mu.Lock()
	defer c.mu.Unlock()
	life := newLifeRecord()
	var remembered rememberedLife
	if data, ok := c.remembered[exec]; ok && json.Unmarshal(data, &remembered) == nil {
		life = lifeRemembered(remembered)
		delete(c.remembered, exec)
	}
	if exec == "" {
		c.init = life
	}
	return &processJournal{container: c, exec: exec, life: life}
}

// Remembered is the process's life, for the next binary's journal.
func (p *processJournal) Remembered() json.RawMessage {
	if p.life == nil {
		return nil
	}
	data, err := json.Marshal(p.life.remember())
	if err != nil {
		return nil
	}
	return data
}

func (p *processJournal) record(e journal.Entry) {
	e.Exec = p.exec
	p.container.j.Record(e)
}

func (p *processJournal) debug() bool { return p.container.j.Level() >= journal.Debug }

// RuncCommand writes one line for the command, at the time it started: its
// argv, pid, exit status and duration, and runc's reason when it failed.
func (p *processJournal) RuncCommand(ctx context.Context, name string, run func(context.Context) error) error {
	commands := p.container.commands
	ctx, seen := commands.watch(ctx)
	defer commands.forget(seen)
	started := journal.Now()
	err := run(ctx)
	p.record(runcEntry(name, seen, started, journal.Now()-started, err))
	return err
}

func runcEntry(command string, seen *observedCommand, started, took int64, err error) journal.Entry {
	e := journal.Entry{Kind: journal.KindRunc, Mono: started, Name: command, Took: took, Err: journal.ErrorKind(err)}
	argv, pid, status, exited := seen.result()
	e.Argv, e.Pid = argv, pid
	if exited {
		e.Code = journal.Code(status)
	}
	if err != nil {
		e.Msg = err.Error()
	}
	return e
}

// StreamOpened writes the stream opened; at debug level with the shim's
// file descriptor for it.
func (p *processJournal) StreamOpened(s observe.Stream) {
	e := journal.Entry{Kind: journal.KindOpen, Name: s.Name, Msg: s.What, Path: s.Path}
	if s.File != nil && p.debug() {
		e.FD = fdOf(s.File)
	}
	p.record(e)
}

// fdOf reads a file's descriptor without os.File.Fd, which would switch the
// file to blocking mode and take it off Go's poller.
func fdOf(f *os.File) int {
	fd := -1
	if conn, err := f.SyscallConn(); err == nil {
		conn.Control(func(raw uintptr) { fd = int(raw) })
	}
	return fd
}

// StreamClosed writes the stream closed, at debug level with what it
// carried, and counts that for the process's forensics.
func (p *processJournal) StreamClosed(s observe.Stream) {
	e := journal.Entry{Kind: journal.KindClose, Name: s.Name, Msg: s.What, Path: s.Path}
	if p.debug() {
		e.Bytes = s.Bytes
	}
	p.record(e)
	if p.life != nil {
		p.life.noteBytes(s.Name, s.Bytes)
	}
}

// SignalSent writes the signal. One sent on containerd's behalf is also
// kept for the forensics, until undelivered takes it back. Signal 0 sends
// nothing (it asks whether the process exists): a request for it is not
// written.
func (p *processJournal) SignalSent(s observe.Signal) (undelivered func()) {
	if s.By != "" && s.Number == 0 {
		return func() {}
	}
	at := monoOf(s.At)
	msg := s.By
	if msg == "" {
		msg = s.How
	}
	p.record(journal.Entry{Kind: journal.KindSignal, Mono: at, Signal: s.Number, Pid: s.Pid, All: s.All, Msg: msg})
	if s.By == "" || p.life == nil {
		return func() {}
	}
	return p.life.noteKill(killRecord{signal: s.Number, at: at, by: s.By, all: s.All})
}

// earlyExitNote marks the journal line of an exit reaped before runc told
// the shim the process's pid: the exit was held until then, and routed to
// its process once runc returned.
const earlyExitNote = "reaped before runc returned its pid; held until then"

// Reaped writes the exit, at the time it was reaped, which is also when
// the process's forensics say it exited.
func (p *processJournal) Reaped(exit observe.Reap) {
	note := ""
	if exit.Held {
		note = earlyExitNote
	}
	e := reapedEntry(exit, note)
	p.record(e)
	if p.life == nil {
		return
	}
	p.life.noteExited(e.Mono)
	if p.exec == "" {
		p.container.mu.Lock()
		p.container.initExited = e.Mono
		p.container.mu.Unlock()
	}
}

// EventPublished writes the event. Three events are also landmarks of the
// forensics: a process started when containerd is told so; TaskOOM stands
// for one OOM kill, written as the kernel's act just before; and a
// process's ending is written just before its TaskExit, once everything
// that explains it (an OOM kill told just before, the output drained) is
// known.
func (p *processJournal) EventPublished(topic string, event any) {
	switch topic {
	case topicTaskStart, topicTaskExecStarted:
		if p.life != nil {
			p.life.noteStarted()
		}
	case topicTaskOOM:
		at := journal.Now()
		p.container.mu.Lock()
		p.container.lastOOM = at
		file := p.container.oomFile
		p.container.mu.Unlock()
		p.record(journal.Entry{Kind: journal.KindOOM, Mono: at, Path: file, Msg: "the kernel's OOM killer killed a process in the container's cgroup"})
	case topicTaskExit:
		if exit, ok := event.(*eventstypes.TaskExit); ok && p.life != nil {
			p.recordEnding(exit)
		}
	}
	p.record(journal.Entry{Kind: journal.KindEvent, Name: topic})
}

// recordEnding writes the process's exit forensics.
func (p *processJournal) recordEnding(exit *eventstypes.TaskExit) {
	facts := p.life.facts(int(exit.ExitStatus))
	if facts.exited == 0 {
		facts.exited = journal.Now()
	}
	c := p.container
	c.mu.Lock()
	facts.lastOOM = c.lastOOM
	initExited, init := c.initExited, c.init
	c.mu.Unlock()
	if p.exec != "" && init != nil {
		// An exec dies with its container: a signal to the whole
		// container, or to its init, may be what ended it.
		facts.containerKills = init.kills()
		facts.initExited = initExited
	}
	end := explainExit(facts)
	p.record(journal.Entry{Kind: journal.KindExit, Pid: int(exit.Pid), End: &end})
}

// Mounted writes a rootfs mount, or the failure to mount the rootfs.
func (p *processJournal) Mounted(m observe.Mount) {
	if m.Err != nil {
		p.record(journal.Entry{Kind: journal.KindMount, Path: m.Target, Err: journal.ErrorKind(m.Err), Msg: m.Err.Error()})
		return
	}
	p.record(journal.Entry{Kind: journal.KindMount, Name: m.Type, Msg: m.Source, Path: m.Target})
}

// CgroupRead writes what the cgroup says after a pause or a resume. The
// file that counted an OOM kill goes into the OOM line of the TaskOOM told
// next.
func (p *processJournal) CgroupRead(r observe.Cgroup) {
	if r.Step == "oom" {
		p.container.mu.Lock()
		p.container.oomFile = r.File
		p.container.mu.Unlock()
		return
	}
	e := journal.Entry{Kind: journal.KindCgroup, Name: r.Step, Path: r.File, Msg: r.Says}
	if r.Err != nil {
		e.Path, e.Msg = "", r.Err.Error()
	}
	p.record(e)
}

// Unmounted writes the rootfs unmounted, or the failure to.
func (p *processJournal) Unmounted(m observe.Mount) {
	e := journal.Entry{Kind: journal.KindUnmount, Path: m.Target}
	if m.Err != nil {
		e.Err, e.Msg = journal.ErrorKind(m.Err), m.Err.Error()
	}
	p.record(e)
}

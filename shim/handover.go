package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sys/unix"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
	"github.com/teach/containerd-shim-teach-v2/observe"
	"github.com/teach/containerd-shim-teach-v2/process"
)

// What a shim hands to the binary that takes its place (upgrade.go,
// docs/upgrade.md). It is all the state a shim holds that is not in the
// kernel or on disk: the kernel keeps the processes, their pipes and FIFOs,
// the sockets and the buffered bytes; the bundle keeps config.json and the
// runc state. What only the shim's memory knows goes here, as JSON, with
// each descriptor by its number: descriptors survive execve when their
// close-on-exec flag is cleared.

// handoverStateVersion is the newest version of shimHandover this binary
// writes; takesStateVersions are those it can take over. A binary that
// changes the meaning of a field writes a new version, and keeps taking the
// old ones for as long as shims that write them may run.
//
// Version 2 describes terminals, logging programs and containers waiting to
// be restored from a checkpoint, which version 1 could not. A shim holding
// none of them writes version 1 (stateVersionFor), so that it can still be
// taken back by a binary that knows only version 1.
const handoverStateVersion = 2

var takesStateVersions = []int{1, 2}

// stateVersionFor is the lowest state version that describes a process, and
// why it needs more than version 1.
func stateVersionFor(paths stdio.Paths, state process.State) (int, string) {
	switch {
	case paths.Terminal:
		return 2, "has a terminal"
	case state == process.CreatedFromCheckpoint:
		return 2, "waits to be restored from a checkpoint"
	}
	if uri, isURI := loggerURI(paths.Stdout); isURI {
		return 2, "has its output go to the logging program " + uri
	}
	return 1, ""
}

// stateVersion is the lowest version that describes h.
func (h *shimHandover) stateVersion() int {
	version := 1
	for _, c := range h.Containers {
		for _, p := range append([]*process.Handover{c.Init}, c.Execs...) {
			v, _ := stateVersionFor(stdio.Paths{Stdout: p.Stdout, Terminal: p.Terminal}, p.State)
			version = max(version, v)
		}
	}
	return version
}

type shimHandover struct {
	StateVersion int
	// Attempt numbers the upgrades of this shim process; the client asks
	// Status for its outcome.
	Attempt       int
	OldVersion    string
	OldExecutable string
	// Fallback is an O_PATH descriptor of the old executable: the new
	// binary executes it again if it cannot take over.
	Fallback int
	// FrozenAt is when the freeze began, on CLOCK_MONOTONIC, which the
	// process keeps across execve: the new binary measures the switch.
	FrozenAt int64

	Namespace  string
	Listener   int
	Conns      []ConnHandover
	Address    string
	Grouped    bool
	Joining    []string
	Containers []containerHandover
	Events     []eventHandover
}

type containerHandover struct {
	ID, Bundle, Rootfs string
	SharesHostPids     bool
	IOUid, IOGid       int
	JournalLevel       string
	OOMsReported       uint64
	Init               *process.Handover
	Execs              []*process.Handover
	// Remembered is what the observers of the processes remembered, by
	// exec id, "" for the init (observe.Observer.Remembered).
	Remembered map[string]json.RawMessage `json:",omitempty"`
}

type eventHandover struct {
	Topic   string
	TypeURL string
	Value   []byte
}

// fds are the descriptors the state names, which must survive execve.
func (h *shimHandover) fds() []int {
	fds := []int{h.Listener, h.Fallback}
	for _, c := range h.Conns {
		fds = append(fds, c.Fd)
	}
	for _, c := range h.Containers {
		fds = append(fds, c.Init.Fds()...)
		for _, e := range c.Execs {
			fds = append(fds, e.Fds()...)
		}
	}
	return fds
}

// stateVersionNeeded is the lowest state version that describes what the
// shim holds now, and why, when it needs more than version 1.
func (s *TaskService) stateVersionNeeded() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	version, why := 1, ""
	for _, c := range s.containers {
		for _, p := range append([]*tracked{c.initTracked}, c.execList()...) {
			if v, reason := stateVersionFor(p.Stdio(), p.State()); v > version {
				version, why = v, fmt.Sprintf("container %s: process %s %s", c.ID, p.ID(), reason)
			}
		}
	}
	return version, why
}

func (c *Container) execList() []*tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := make([]*tracked, 0, len(c.execs))
	for _, e := range c.execs {
		list = append(list, e)
	}
	return list
}

// freezeContainers freezes every process's relay and describes the
// containers.
func (s *TaskService) freezeContainers() []containerHandover {
	s.mu.Lock()
	containers := make([]*Container, 0, len(s.containers))
	for _, c := range s.containers {
		containers = append(containers, c)
	}
	s.mu.Unlock()
	var out []containerHandover
	for _, c := range containers {
		out = append(out, c.freeze())
	}
	return out
}

func (c *Container) freeze() containerHandover {
	h := containerHandover{ID: c.ID, Bundle: c.Bundle, Rootfs: c.rootfs, SharesHostPids: c.sharesHostPids,
		IOUid: c.ioUID, IOGid: c.ioGID, JournalLevel: c.journalLevel, Init: c.init.Freeze()}
	h.remember("", c.initTracked)
	for _, e := range c.execList() {
		h.Execs = append(h.Execs, e.Process.(*process.ExecProcess).Freeze())
		h.remember(e.ID(), e)
	}
	return h
}

// remember keeps what p's observer asks to carry to the next binary.
func (h *containerHandover) remember(exec string, p *tracked) {
	if data := p.observer.Remembered(); data != nil {
		if h.Remembered == nil {
			h.Remembered = map[string]json.RawMessage{}
		}
		h.Remembered[exec] = data
	}
}

func (s *TaskService) thawContainers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.containers {
		c.init.Thaw()
		for _, e := range c.execList() {
			e.Process.(*process.ExecProcess).Thaw()
		}
	}
}

// lockEvents holds every container's eventOrder, so that nothing is queued
// for containerd (an OOM kill's TaskOOM) between the state and the execve,
// and reads each one's OOM count under it.
func (s *TaskService) lockEvents(containers []containerHandover) (unlock func()) {
	var locked []*Container
	for i := range containers {
		c, err := s.container(containers[i].ID)
		if err != nil {
			continue
		}
		c.eventOrder.Lock()
		containers[i].OOMsReported = c.oomsReported
		locked = append(locked, c)
	}
	return func() {
		for _, c := range locked {
			c.eventOrder.Unlock()
		}
	}
}

func handoverEvents(queued []queuedEvent) ([]eventHandover, error) {
	var out []eventHandover
	for _, q := range queued {
		any, err := typeurl.MarshalAny(q.event)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", q.topic, err)
		}
		out = append(out, eventHandover{Topic: q.topic, TypeURL: any.GetTypeUrl(), Value: any.GetValue()})
	}
	return out, nil
}

// writeHandover writes the state to a memfd, which the new binary reads;
// the file is what the kernel names "upgrade-state" in /proc/PID/fd.
func writeHandover(h *shimHandover) (*os.File, error) {
	data, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode the upgrade state: %w", err)
	}
	fd, err := unix.MemfdCreate("upgrade-state", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create the upgrade state's memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "upgrade-state")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the upgrade state: %w", err)
	}
	return f, nil
}

// readHandover reads the state an earlier shim wrote, and checks that this
// binary can take it over.
func readHandover(fd int) (*shimHandover, error) {
	data, err := readFromStart(fd)
	if err != nil {
		return nil, fmt.Errorf("read the upgrade state (fd %d): %w", fd, err)
	}
	var h shimHandover
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("decode the upgrade state: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if !takesVersion(h.StateVersion) {
		return nil, fmt.Errorf("upgrade state version %d; this binary (%s) takes %v: %w", h.StateVersion, versionString(), takesStateVersions, errdefs.ErrNotImplemented)
	}
	return &h, nil
}

func readFromStart(fd int) ([]byte, error) {
	var data []byte
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return data, nil
		}
		data = append(data, buf[:n]...)
		off += int64(n)
	}
}

func takesVersion(v int) bool {
	for _, t := range takesStateVersions {
		if t == v {
			return true
		}
	}
	return false
}

// restore takes over the containers an earlier shim handed over: their
// processes, relays and pidfds, their exits still to come, and the events
// not yet delivered. Called before the Reaper's exits are routed.
func (s *TaskService) restore(h *shimHandover) {
	for _, ch := range h.Containers {
		s.restoreContainer(ch)
	}
	s.mu.Lock()
	for _, id := range h.Joining {
		s.joining[id] = struct{}{}
	}
	s.mu.Unlock()
	for _, e := range h.Events {
		event, err := typeurl.UnmarshalAny(&typeurlAny{typeURL: e.TypeURL, value: e.Value})
		if err != nil {
			log.L.WithError(err).WithField("topic", e.Topic).Error("an event handed over is lost: this binary cannot decode it")
			continue
		}
		if event, ok := event.(events.Event); ok {
			s.events.requeue(e.Topic, event)
		}
	}
}

func (s *TaskService) restoreContainer(ch containerHandover) {
	observer, err := s.observer.Container(observe.Container{ID: ch.ID, Bundle: ch.Bundle, Level: ch.JournalLevel,
		HandedOver: true, Remembered: ch.Remembered})
	if err != nil {
		observer = observe.Nop{}
	}
	c := &Container{ID: ch.ID, Bundle: ch.Bundle, rootfs: ch.Rootfs, sharesHostPids: ch.SharesHostPids,
		ioUID: ch.IOUid, ioGID: ch.IOGid, events: s.events, observer: observer, journalLevel: ch.JournalLevel,
		oomsReported: ch.OOMsReported, execs: make(map[string]*tracked)}
	// What the container knows of its processes' stdio; the rest is each
	// process's own.
	paths := stdio.Paths{Owner: stdio.Owner{ContainerID: ch.ID, Namespace: s.namespace}, IOUid: ch.IOUid, IOGid: ch.IOGid}
	children := s.upgrade.reaper
	initObserver := observer.Process("")
	c.init = process.RestoreInit(ch.Init, process.InitConfig{Bundle: ch.Bundle, Stdio: paths, Observer: initObserver}, children)
	c.initTracked = restoredTracked(c.init, initObserver)
	s.expectExit(c, c.initTracked)
	for _, eh := range ch.Execs {
		execObserver := observer.Process(eh.ID)
		e := process.RestoreExec(eh, process.ExecConfig{ID: eh.ID, ContainerID: ch.ID, Bundle: ch.Bundle,
			Runc: c.init.Runc(), Observer: execObserver, Stdio: paths}, children)
		c.execs[eh.ID] = restoredTracked(e, execObserver)
		s.expectExit(c, c.execs[eh.ID])
	}
	s.events.order.seed(c)
	if live(c.init.State()) {
		c.watchResources()
		c.reportOOMs() // kills counted during the switch
	}
	s.mu.Lock()
	s.containers[ch.ID] = c
	s.mu.Unlock()
}

// restoredTracked: a process whose exit was reported before the switch has
// it reported still.
func restoredTracked(p process.Process, observer observe.Observer) *tracked {
	t := track(p, observer)
	if _, exited := p.Exit(); exited {
		close(t.exitReported)
	}
	return t
}

// expectExit routes the exit of a live process to it.
func (s *TaskService) expectExit(c *Container, p *tracked) {
	if !live(p.State()) || p.Pid() == 0 {
		return
	}
	s.exits.mu.Lock()
	s.exits.byPid[p.Pid()] = exitTarget{container: c, process: p}
	s.exits.mu.Unlock()
}

func live(state process.State) bool {
	return state == process.Created || state == process.Running || state == process.Paused
}

// typeurlAny is an event as typeurl reads it back.
type typeurlAny struct {
	typeURL string
	value   []byte
}

func (a *typeurlAny) GetTypeUrl() string { return a.typeURL }
func (a *typeurlAny) GetValue() []byte   { return a.value }

// loggerURI: the output goes to a logging program (binary://, binary-v2://).
func loggerURI(stdout string) (string, bool) {
	if strings.HasPrefix(stdout, "binary://") || strings.HasPrefix(stdout, "binary-v2://") {
		return stdout, true
	}
	return "", false
}

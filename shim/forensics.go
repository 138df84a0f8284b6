package shim

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// Exit forensics: when a process ends, the journal says why. It knows
// the exit status (the reaper's wait status, as 128+signal when a signal
// killed it), the signals the shim relayed for containerd, the OOM kills in the
// container's cgroup, and whether the container's init had already ended.
// From those, explainExit tells a Kill request from the OOM killer from a
// signal sent by someone else.

// killRecord is one signal the shim sent a process on containerd's behalf.
// It is comparable: withdraw finds its own record by value.
type killRecord struct {
	signal int
	at     int64  // journal.Now() when the shim was about to send it
	by     string // "Kill request", "Delete request"
	all    bool   // to every process of the container
}

// lifeRecord is what the journal remembers of one process for its
// forensics: its landmarks (journal.Now()), the kills relayed to it, and
// what its streams carried.
type lifeRecord struct {
	mu      sync.Mutex
	created int64 // when the shim began to create it; guarded by mu
	started int64 // guarded by mu
	exited  int64 // when its exit was reaped; guarded by mu
	// lastKills is the latest kill of each signal: what explainExit needs,
	// and a bounded record however many Kill requests a client sends.
	lastKills map[int]killRecord // guarded by mu
	bytes     [3]int64           // stdin, stdout, stderr; guarded by mu
}

// newLifeRecord starts the record of a process the shim begins to create
// now.
func newLifeRecord() *lifeRecord { return &lifeRecord{created: journal.Now()} }

func (l *lifeRecord) noteStarted() {
	l.mu.Lock()
	l.started = journal.Now()
	l.mu.Unlock()
}

func (l *lifeRecord) noteExited(at int64) {
	l.mu.Lock()
	l.exited = at
	l.mu.Unlock()
}

// noteBytes counts what a stream carried, once its copy has ended: by the
// time the process's exit is told, its output has been drained.
func (l *lifeRecord) noteBytes(stream string, n int64) {
	var i int
	switch stream {
	case "stdin":
		i = 0
	case "stdout":
		i = 1
	case "stderr":
		i = 2
	default:
		return
	}
	l.mu.Lock()
	l.bytes[i] += n
	l.mu.Unlock()
}

// noteKill records a kill as the latest of its signal. The shim notes a
// kill before it sends it: the signal may end the process, and its exit be
// recorded, before the sender hears back. withdraw takes the record back,
// for a kill that was refused or could not be delivered and so ended
// nothing; a later kill of the same signal that replaced it stays.
func (l *lifeRecord) noteKill(k killRecord) (withdraw func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastKills == nil {
		l.lastKills = make(map[int]killRecord)
	}
	replaced, hadOne := l.lastKills[k.signal]
	l.lastKills[k.signal] = k
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch {
		case l.lastKills[k.signal] != k:
		case hadOne:
			l.lastKills[k.signal] = replaced
		default:
			delete(l.lastKills, k.signal)
		}
	}
}

// kills are the latest kill of each signal sent to the process.
func (l *lifeRecord) kills() []killRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	kills := make([]killRecord, 0, len(l.lastKills))
	for _, k := range l.lastKills {
		kills = append(kills, k)
	}
	return kills
}

// rememberedLife is a lifeRecord as an in-place upgrade carries it to the
// next binary's journal (processJournal.Remembered): a process that started
// before the switch has started, and a kill sent before it may be what
// ends the process after. The landmarks are on CLOCK_MONOTONIC, which the
// process keeps across execve.
type rememberedLife struct {
	Created, Started, Exited int64
	Kills                    []rememberedKill `json:",omitempty"`
	Bytes                    [3]int64
}

type rememberedKill struct {
	Signal int
	At     int64
	By     string
	All    bool
}

func (l *lifeRecord) remember() rememberedLife {
	r := rememberedLife{}
	for _, k := range l.kills() {
		r.Kills = append(r.Kills, rememberedKill{Signal: k.signal, At: k.at, By: k.by, All: k.all})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Created, r.Started, r.Exited, r.Bytes = l.created, l.started, l.exited, l.bytes
	return r
}

// lifeRemembered is the record of a process an earlier binary watched.
func lifeRemembered(r rememberedLife) *lifeRecord {
	l := &lifeRecord{created: r.Created, started: r.Started, exited: r.Exited, bytes: r.Bytes}
	for _, k := range r.Kills {
		l.noteKill(killRecord{signal: k.Signal, at: k.At, by: k.By, all: k.All})
	}
	return l
}

// facts are what explainExit weighs of the process itself.
func (l *lifeRecord) facts(code int) exitFacts {
	kills := l.kills()
	l.mu.Lock()
	defer l.mu.Unlock()
	return exitFacts{code: code, exited: l.exited, created: l.created, started: l.started, kills: kills, bytes: l.bytes}
}

// exitFacts is everything explainExit weighs.
type exitFacts struct {
	code             int
	exited           int64 // when it was reaped
	created, started int64
	kills            []killRecord // sent to this process
	containerKills   []killRecord // sent to the whole container (all, or to its init for an exec)
	lastOOM          int64        // latest OOM kill in the container's cgroup; 0 for none
	initExited       int64        // for an exec: when the container's init exited; 0 if it has not
	bytes            [3]int64     // stdin, stdout, stderr
}

// explainExit decides why a process ended.
func explainExit(f exitFacts) journal.Ending {
	end := journal.Ending{
		Code: f.code, Created: f.created, Started: f.started, Exited: f.exited,
		Stdin: f.bytes[0], Stdout: f.bytes[1], Stderr: f.bytes[2],
	}
	signal := 0
	if f.code > 128 && f.code <= 128+64 {
		signal = f.code - 128
	}
	end.Signal = signal
	kill, killed := latestKill(killsSince(f.created, f.kills, f.containerKills), signal)
	switch {
	case signal == 0:
		end.Cause = journal.CauseExited
		if killed {
			// It handled a relayed signal and exited by itself.
			end.By, end.KillSignal, end.KillAt = kill.by, kill.signal, kill.at
		}
	case signal == int(unix.SIGKILL) && f.lastOOM != 0 && f.lastOOM >= f.created:
		// The OOM killer's SIGKILL wins over a requested one: the
		// kernel reports the kill that happened.
		end.Cause, end.By, end.OOMAt = journal.CauseOOMKiller, "the kernel's OOM killer", f.lastOOM
	case killed && kill.signal == signal:
		end.Cause, end.By, end.KillSignal, end.KillAt = journal.CauseKillRequest, kill.by, kill.signal, kill.at
	case f.initExited != 0 && signal == int(unix.SIGKILL):
		end.Cause, end.By = journal.CauseInitExited, "the kernel, when the container's init exited"
	default:
		end.Cause = journal.CauseOtherSignal
		end.By = "a signal the shim did not relay (from inside the container or the host)"
	}
	return end
}

// killsSince are the kills sent at or after created. A kill to the whole
// container, or to its init, from before an exec existed cannot have ended
// that exec.
func killsSince(created int64, lists ...[]killRecord) []killRecord {
	var since []killRecord
	for _, kills := range lists {
		for _, k := range kills {
			if k.at >= created {
				since = append(since, k)
			}
		}
	}
	return since
}

// latestKill is the last relayed kill with the given signal, or else the
// last relayed kill of any signal.
func latestKill(kills []killRecord, signal int) (killRecord, bool) {
	var match, latest *killRecord
	for i := range kills {
		k := &kills[i]
		if latest == nil || k.at >= latest.at {
			latest = k
		}
		if k.signal == signal && (match == nil || k.at >= match.at) {
			match = k
		}
	}
	switch {
	case match != nil:
		return *match, true
	case latest != nil:
		return *latest, true
	}
	return killRecord{}, false
}

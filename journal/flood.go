package journal

import "time"

// A container can make the shim record the same thing many times a second:
// in an OOM loop (a process grows until the OOM killer kills it, and is
// started again) every kill is an oom line and an event line, over 600 of
// them in 10 s, and the journal's files would rotate away the container's
// Create and Start within minutes. Such entries are coalesced: in each
// window of repeatWindow, the first entry of a kind is written as it comes,
// the ones like it after it are counted, and one entry says how many when
// the window ends (Entry.Repeats). Whatever still rotates out, the story's
// first lines stay (keepHead).

// repeatWindow is how long the repeats of an entry are counted into one
// line.
const repeatWindow = int64(time.Second)

// comesInFloods: the kinds of entry a container can cause without bound.
// A request, a runc command or an exit is written every time.
func comesInFloods(e Entry) bool { return e.Kind == KindOOM || e.Kind == KindEvent }

// repeatKey is what makes two entries alike.
type repeatKey struct {
	kind            Kind
	exec, name, msg string
}

// repeats is one window of an entry's repeats.
type repeats struct {
	opened int64 // Mono of the entry that opened the window, which was written
	count  int   // the entries like it since, not written
	first  int64 // Mono of the first of them
	last   Entry // the latest of them
}

// countRepeat counts e when an entry like it opened a window that is still
// open, and returns true: e is not to be written. Otherwise it writes what
// the last window counted, opens a window with e, and returns false. mu is
// held.
func (j *Journal) countRepeat(e Entry) bool {
	key := repeatKey{e.Kind, e.Exec, e.Name, e.Msg}
	w := j.repeats[key]
	if w != nil && e.Mono-w.opened < repeatWindow {
		if w.count == 0 {
			w.first = e.Mono
		}
		w.count++
		w.last = e
		j.flushLater()
		return true
	}
	if w != nil {
		j.writeRepeats(w)
	}
	j.forgetClosedWindows(e.Mono)
	if j.repeats == nil {
		j.repeats = make(map[repeatKey]*repeats)
	}
	j.repeats[key] = &repeats{opened: e.Mono}
	return false
}

// writeRepeats writes one entry for what a window counted. mu is held.
func (j *Journal) writeRepeats(w *repeats) {
	if w.count == 0 {
		return
	}
	summary := w.last
	summary.Repeats, summary.Since = w.count, w.first
	w.count = 0
	j.write(summary)
}

// forgetClosedWindows drops the windows that ended with nothing counted:
// every exec's events have keys of their own, and the map must not grow
// with them. mu is held.
func (j *Journal) forgetClosedWindows(now int64) {
	for key, w := range j.repeats {
		if w.count == 0 && now-w.opened >= repeatWindow {
			delete(j.repeats, key)
		}
	}
}

// flushLater makes sure a count is written when its window ends, even if
// nothing like it comes after. The timer is the journal's: Close stops it.
// mu is held.
func (j *Journal) flushLater() {
	if j.flushTimer == nil {
		j.flushTimer = time.AfterFunc(time.Duration(repeatWindow), j.flushEndedWindows)
	}
}

// flushEndedWindows writes the counts of the windows that ended, and waits
// again for the ones still open.
func (j *Journal) flushEndedWindows() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.flushTimer = nil
	if j.file == nil {
		return
	}
	now := Now()
	for _, w := range j.repeats {
		switch {
		case w.count == 0:
		case now-w.opened >= repeatWindow:
			j.writeRepeats(w)
		default:
			j.flushLater()
		}
	}
}

// flushAll writes every count, ended or not: the journal is closing. mu is
// held.
func (j *Journal) flushAll() {
	if j.flushTimer != nil {
		j.flushTimer.Stop()
		j.flushTimer = nil
	}
	for _, w := range j.repeats {
		j.writeRepeats(w)
	}
}

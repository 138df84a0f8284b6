package trace

import (
	"os"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// A grouped shim serves several containers (a pod's), and keeps what
// concerns the shim as a whole in a journal of its own: its start, the
// requests for a container that has no journal (yet, or any more), the
// exits of pids no process claimed. trace merges what of it concerns the
// container into the container's timeline, marked [shim].

// sharedJournal is the shim-wide journal merged into one container's story.
type sharedJournal struct {
	dir    string
	id     string // the container whose story it is merged into
	offset int64  // how far Read got, for --follow
}

// readShared reads the shim-wide journal of the grouped shim that served
// the story's container, and adds the entries that concern it to the
// story. An ungrouped shim has none: it gives nil.
func readShared(story *journal.Story, id string) *sharedJournal {
	dir := journal.SharedDir(story.Dir, shimOf(story.Entries).Name)
	if dir == "" {
		return nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	shared, err := journal.Read(dir)
	if err != nil {
		return nil
	}
	from, to := lifespan(*story)
	for _, e := range shared.Entries {
		if concerns(e, id, from, to) {
			e.Shared = true
			story.Entries = append(story.Entries, e)
		}
	}
	story.Skipped += shared.Skipped
	return &sharedJournal{dir: dir, id: id, offset: shared.Offset}
}

// lifespan is when the container's journal starts and, once it ended, when
// it ends (0 while it goes on).
func lifespan(story journal.Story) (from, to int64) {
	for _, e := range story.Entries {
		if from == 0 || e.Mono < from {
			from = e.Mono
		}
		if ended(story) && e.Mono > to {
			to = e.Mono
		}
	}
	return from, to
}

// concerns tells whether a shim-wide entry belongs in the container's
// timeline: it names the container (the shim started in its bundle, it
// joined or left, a request for it came when it had no journal); or it
// names no container and happened while the container lived (a pid reaped
// that no process claimed may be one of its daemons'). Entries about the
// group's other containers stay out.
func concerns(e journal.Entry, id string, from, to int64) bool {
	if e.ID != "" {
		return e.ID == id
	}
	return e.Mono >= from && (to == 0 || e.Mono <= to)
}

// accept reads one line of the shim-wide journal written while following,
// and says whether it concerns the container.
func (s *sharedJournal) accept(line []byte) (journal.Entry, bool) {
	e, err := journal.ParseLine(line)
	if err != nil || !concerns(e, s.id, 0, 0) {
		return e, false
	}
	e.Shared = true
	return e, true
}

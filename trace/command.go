package trace

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/printable"
)

// Exit statuses of trace.
const (
	exitOK         = 0
	exitFailed     = 1 // no such container, or its journal cannot be read
	exitUsage      = 2
	exitIncomplete = 3 // the story has a hole: the shim died, or the start was rotated out
)

const usage = `usage: containerd-shim-teach-v2 trace [-n NAMESPACE] [--state DIR] ID [--follow] [--json]

Draws the journal of container ID as a timeline: what containerd asked, what
the shim did, which runc commands it ran, and how each process ended.

  -n, --namespace NAMESPACE  the containerd namespace (default "default")
  --state DIR                containerd's state folder, for a containerd not at
                             /run/containerd (containerd's config: state = ...)
  -f, --follow               keep drawing as the journal grows
  --json                     print the journal's lines as they are
  --journal-root DIR         where journals are kept (default ` + journal.DefaultRoot + `)

Exit status: 0 the whole story was told; 1 no journal for the container, or it
cannot be read; 2 usage; 3 the story has a hole (the shim died without
recording the container's end, or its oldest entries were rotated out).
`

// request is what the command line asks for.
type request struct {
	namespace, state, root, id string
	follow, json               bool
}

func parseArgs(args []string) (request, error) {
	r := request{namespace: "default", root: journal.DefaultRoot}
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&r.namespace, "n", r.namespace, "")
	fs.StringVar(&r.namespace, "namespace", r.namespace, "")
	fs.StringVar(&r.state, "state", "", "")
	fs.StringVar(&r.root, "journal-root", r.root, "")
	fs.BoolVar(&r.follow, "f", false, "")
	fs.BoolVar(&r.follow, "follow", false, "")
	fs.BoolVar(&r.json, "json", false, "")
	// The flags may come before or after the id: parse, take one
	// positional argument, parse the rest.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return r, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		return r, fmt.Errorf("want one container id, got %d", len(positional))
	}
	r.id = positional[0]
	return r, nil
}

// Main runs the trace command with the arguments after `trace` and returns
// its exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	r, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if err != nil {
		printable.Fprintf(stderr, "trace: %v\n", err)
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	found, err := journal.Find(r.root, r.state, r.namespace, r.id)
	if err != nil {
		printable.Fprintf(stderr, "trace: %v\n", explainNotFound(err, r))
		return exitFailed
	}
	story, err := journal.Read(found.Dir)
	if err != nil {
		printable.Fprintf(stderr, "trace: read the journal of container %q: %v\n", r.id, err)
		return exitFailed
	}
	if r.json {
		return printRaw(found.Dir, story, r.follow, stdout, stderr)
	}
	if len(story.Entries) == 0 {
		printable.Fprintf(stderr, "trace: the journal of container %q in %s is empty\n", r.id, found.Dir)
		return exitFailed
	}
	shared := readShared(&story, r.id)
	sortByTime(story.Entries)
	t := newTimeline(stdout, story.Entries[0], time.Local)
	t.lostAfter = story.LostAfter
	t.header(r.id, r.namespace, found, story.Entries[0], shimOf(story.Entries))
	t.entries(story.Entries)
	if r.follow && !ended(story) && !hasKind(story.Entries, journal.KindCleanup) {
		if story, err = follow(t, story, shared); err != nil {
			printable.Fprintf(stderr, "trace: follow %s: %v\n", found.Dir, err)
			return exitFailed
		}
	}
	t.summary()
	return verdict(story, stderr)
}

// explainNotFound turns Find's error into what the user can do about it.
func explainNotFound(err error, r request) string {
	if !errors.Is(err, journal.ErrNoJournal) {
		return err.Error()
	}
	where := "the default containerd (state " + journal.DefaultContainerdState + ") or any other"
	if r.state != "" {
		where = "the containerd with state " + r.state
	}
	return fmt.Sprintf("no journal for container %q in namespace %q of %s. "+
		"Check the id and the namespace (-n); a containerd with its own state folder needs --state; "+
		"a container whose journal level is off has none, and the journals of long-deleted containers are pruned.",
		r.id, r.namespace, where)
}

// verdict tells the user about a hole in the story, and sets the status.
func verdict(story journal.Story, stderr io.Writer) int {
	status := exitOK
	first := story.Entries[0]
	switch {
	case story.Rotated && story.LostAfter != 0:
		printable.Fprintf(stderr, "trace: entries were rotated out after the journal's first lines (it keeps those and about its last %d KiB); the timeline skips from %s\n",
			2*journal.DefaultFileLimit>>10, (&timeline{base: first.Mono}).relative(story.LostAfter))
		status = exitIncomplete
	case story.Rotated:
		printable.Fprintf(stderr, "trace: the journal's oldest entries were rotated out (it keeps about %d KiB per container); the timeline starts at %s\n",
			2*journal.DefaultFileLimit>>10, first.Time.Local().Format(time.RFC3339))
		status = exitIncomplete
	}
	if story.Skipped > 0 {
		printable.Fprintf(stderr, "trace: %d lines of the journal could not be read and were left out\n", story.Skipped)
	}
	shim := shimOf(story.Entries)
	switch {
	case hasKind(story.Entries, journal.KindCleanup):
		printable.Fprintf(stderr, "trace: the shim (pid %d) died before the container was deleted; containerd cleaned up after it (the cleanup lines above)\n", shim.Pid)
		status = exitIncomplete
	case ended(story):
	case shim.Kind == journal.KindJournal && !journal.ShimRunning(shim.Pid, shim.Name):
		printable.Fprintf(stderr, "trace: the shim (pid %d) is no longer running and did not record the container's end: it was killed or crashed. "+
			"containerd cleans up when it notices (its delete action adds its lines here)\n", shim.Pid)
		status = exitIncomplete
	}
	return status
}

// ended: the container was deleted, and its journal closed.
func ended(story journal.Story) bool {
	return story.Ended || hasKind(story.Entries, journal.KindClosed)
}

func hasKind(entries []journal.Entry, kind journal.Kind) bool {
	for _, e := range entries {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// shimOf is the container's journal's opening entry, which names the shim.
func shimOf(entries []journal.Entry) journal.Entry {
	for _, e := range entries {
		if e.Kind == journal.KindJournal && !e.Shared {
			return e
		}
	}
	return journal.Entry{}
}

// sortByTime orders entries by the monotonic clock; entries recorded out of
// order (a Create's request, written once its journal existed) take their
// place. The sort is stable: entries of the same instant keep the file's
// order.
func sortByTime(entries []journal.Entry) {
	sort.SliceStable(entries, func(a, b int) bool { return entries[a].Mono < entries[b].Mono })
}

// follow draws entries as they are written, until the container is deleted
// or its shim is gone, and returns the story with them. A grouped shim's
// shim-wide journal is followed too, for the lines that concern the
// container.
func follow(t *timeline, story journal.Story, shared *sharedJournal) (journal.Story, error) {
	f, err := journal.Follow(story.Dir, story.Offset)
	if err != nil {
		return story, err
	}
	defer f.Close()
	dirs := []string{story.Dir}
	var sf *journal.Follower
	if shared != nil {
		if sf, err = journal.Follow(shared.dir, shared.offset); err == nil {
			defer sf.Close()
			dirs = append(dirs, shared.dir)
		}
	}
	watch := watchFolders(dirs...)
	defer watch.Close()
	shim := shimOf(story.Entries)
	for {
		// The shim-wide lines first: a request that arrived before the
		// container had a journal comes before what it led to.
		drawn := followShared(t, &story, shared, sf)
		lines, err := f.Next()
		if err != nil {
			return story, err
		}
		for _, line := range lines {
			e, err := journal.ParseLine(line)
			if err != nil {
				story.Skipped++
				continue
			}
			story.Entries = append(story.Entries, e)
			t.entry(e)
			if e.Kind == journal.KindClosed || e.Kind == journal.KindCleanup {
				followShared(t, &story, shared, sf)
				return story, nil
			}
		}
		if len(lines) == 0 && drawn == 0 && shim.Kind == journal.KindJournal && !journal.ShimRunning(shim.Pid, shim.Name) {
			return story, nil
		}
		watch.wait()
	}
}

// followShared draws the lines of the shim-wide journal, written since it
// last looked, that concern the container; it returns how many it drew.
func followShared(t *timeline, story *journal.Story, shared *sharedJournal, f *journal.Follower) int {
	if f == nil {
		return 0
	}
	lines, _ := f.Next()
	drawn := 0
	for _, line := range lines {
		if e, ok := shared.accept(line); ok {
			story.Entries = append(story.Entries, e)
			t.entry(e)
			drawn++
		}
	}
	return drawn
}

// printRaw prints the journal's lines as they are, and with follow goes on
// printing the lines written after, until the container is deleted.
func printRaw(dir string, story journal.Story, follow bool, stdout, stderr io.Writer) int {
	files := story.Files()
	for i, name := range files {
		data, err := os.ReadFile(name)
		if err != nil && !os.IsNotExist(err) {
			printable.Fprintf(stderr, "trace: %v\n", err)
			return exitFailed
		}
		if i == len(files)-1 { // the current file, as far as Read got
			data = data[:min(int64(len(data)), story.Offset)]
		}
		stdout.Write(data)
	}
	if !follow {
		return exitOK
	}
	f, err := journal.Follow(dir, story.Offset)
	if err != nil {
		printable.Fprintf(stderr, "trace: follow %s: %v\n", dir, err)
		return exitFailed
	}
	defer f.Close()
	watch := watchFolders(dir)
	defer watch.Close()
	for {
		ended := f.Ended()
		lines, err := f.Next()
		if err != nil {
			printable.Fprintf(stderr, "trace: follow %s: %v\n", dir, err)
			return exitFailed
		}
		for _, line := range lines {
			fmt.Fprintf(stdout, "%s\n", line)
		}
		if ended {
			return exitOK
		}
		watch.wait()
	}
}

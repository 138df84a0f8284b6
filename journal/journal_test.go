package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T, limit int64) *Journal {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "key", "ns", "c1")
	j, err := Open(dir, Options{ID: "c1", Level: Info, FileLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestEntriesComeBackInTheOrderRecorded(t *testing.T) {
	j := openTest(t, 0)
	for i := range 50 {
		j.Process("e1").Record(Entry{Kind: KindRPCIn, Name: fmt.Sprintf("call-%d", i)})
	}
	story, err := Read(j.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(story.Entries) != 50 || story.Rotated || story.Skipped != 0 {
		t.Fatalf("read %d entries (rotated %v, skipped %d), want 50", len(story.Entries), story.Rotated, story.Skipped)
	}
	for i, e := range story.Entries {
		if e.Name != fmt.Sprintf("call-%d", i) || e.ID != "c1" || e.Exec != "e1" || e.Mono == 0 || e.Time.IsZero() {
			t.Fatalf("entry %d: %+v", i, e)
		}
		if i > 0 && e.Mono < story.Entries[i-1].Mono {
			t.Fatalf("entry %d is older than the one before it", i)
		}
	}
}

// Past the limit the file is rotated: the newest entries are kept, the
// oldest go, and the reader says the start is missing.
func TestRotationKeepsTheNewestEntries(t *testing.T) {
	j := openTest(t, 2048)
	j.Record(Entry{Kind: KindJournal, Msg: "info"})
	for i := range 200 {
		j.Record(Entry{Kind: KindEvent, Name: fmt.Sprintf("/tasks/n%03d", i)})
	}
	story, err := Read(j.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if !story.Rotated {
		t.Fatal("the first entry was rotated out, but the story does not say so")
	}
	last := story.Entries[len(story.Entries)-1]
	if last.Name != "/tasks/n199" {
		t.Fatalf("last entry %q, want the last recorded", last.Name)
	}
	total := int64(0)
	for _, name := range []string{currentFile, rotatedFile} {
		info, err := os.Stat(filepath.Join(j.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		total += info.Size()
	}
	if total > 2*2048 {
		t.Fatalf("journal takes %d bytes, limit is twice 2048", total)
	}
	for i := 1; i < len(story.Entries); i++ {
		if story.Entries[i].Name <= story.Entries[i-1].Name {
			t.Fatalf("entries out of order across the rotation: %q after %q", story.Entries[i].Name, story.Entries[i-1].Name)
		}
	}
}

// Many goroutines record at once (the RPCs, the exit handler, the stdio
// copies): every line arrives whole, and each goroutine's lines in its
// order.
func TestConcurrentRecordersKeepLinesWholeAndOrdered(t *testing.T) {
	j := openTest(t, 16<<10)
	const writers, each = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				j.Process(fmt.Sprintf("w%d", w)).Record(Entry{Kind: KindRPCIn, Pid: i, Msg: strings.Repeat("x", 40)})
			}
		}()
	}
	wg.Wait()
	story, err := Read(j.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if story.Skipped != 0 {
		t.Fatalf("%d damaged lines", story.Skipped)
	}
	// Rotation dropped the oldest lines; from each writer's first kept
	// line on, its lines follow one another without a gap.
	next := make(map[string]int)
	for _, e := range story.Entries {
		if want, seen := next[e.Exec]; seen && e.Pid != want {
			t.Fatalf("writer %s: entry %d after %d", e.Exec, e.Pid, want-1)
		}
		next[e.Exec] = e.Pid + 1
	}
	for w, n := range next {
		if n != each {
			t.Fatalf("writer %s ended at %d, want %d", w, n, each)
		}
	}
}

func TestOpenStartsANewStoryAndOffLeavesNone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c1")
	old, _ := Open(dir, Options{ID: "c1", Level: Info})
	old.Record(Entry{Kind: KindRPCIn, Name: "Create"})
	old.Close()
	j, err := Open(dir, Options{ID: "c1", Level: Debug})
	if err != nil {
		t.Fatal(err)
	}
	j.Record(Entry{Kind: KindJournal})
	j.Close()
	story, _ := Read(dir)
	if len(story.Entries) != 1 || story.Entries[0].Kind != KindJournal || !story.Ended {
		t.Fatalf("a reused id reads %+v", story)
	}
	off, err := Open(dir, Options{ID: "c1", Level: Off})
	if off != nil || err != nil {
		t.Fatalf("level off opened %v, %v", off, err)
	}
	if _, err := Find(filepath.Dir(dir), "", "", "c1"); err == nil {
		t.Fatal("a container with level off still has a journal")
	}
	// A nil journal, and its recorders, take every call.
	off.Record(Entry{Kind: KindRPCIn})
	off.Process("e").Record(Entry{Kind: KindRPCIn})
	if off.Process("e").On() || off.Process("e").Debug() || off.Close() != nil {
		t.Fatal("a nil journal claims to record")
	}
}

func TestFindChoosesTheContainerdByState(t *testing.T) {
	root := t.TempDir()
	for _, state := range []string{"/run/containerd", "/tmp/ctd-1/state", "/tmp/ctd-2/state"} {
		j, err := Open(ContainerDir(root, state, "default", "web"), Options{ID: "web", Level: Info, State: state})
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
	}
	only, _ := Open(ContainerDir(root, "/tmp/ctd-2/state", "default", "db"), Options{ID: "db", Level: Info, State: "/tmp/ctd-2/state"})
	only.Close()

	if f, err := Find(root, "", "default", "web"); err != nil || f.State != DefaultContainerdState {
		t.Fatalf("default containerd first: %+v, %v", f, err)
	}
	if f, err := Find(root, "/tmp/ctd-1/state", "default", "web"); err != nil || f.Dir != ContainerDir(root, "/tmp/ctd-1/state", "default", "web") {
		t.Fatalf("by state: %+v, %v", f, err)
	}
	if f, err := Find(root, "", "default", "db"); err != nil || f.State != "/tmp/ctd-2/state" {
		t.Fatalf("the only one: %+v, %v", f, err)
	}
	if _, err := Find(root, "", "default", "nosuch"); err == nil || !strings.Contains(err.Error(), `container "nosuch" in namespace "default"`) {
		t.Fatalf("unknown: %v", err)
	}
	os.RemoveAll(filepath.Join(root, stateKey("/run/containerd")))
	_, err := Find(root, "", "default", "web")
	if err == nil || !strings.Contains(err.Error(), "--state") || !strings.Contains(err.Error(), "/tmp/ctd-1/state") {
		t.Fatalf("two daemons: %v", err)
	}
}

func TestStateOfBundle(t *testing.T) {
	if got := StateOfBundle("/run/containerd/io.containerd.runtime.v2.task/default/web/"); got != "/run/containerd" {
		t.Fatalf("got %s", got)
	}
}

// Only the oldest ended journals go; running containers' stay.
func TestPruneKeepsRunningAndRecentJournals(t *testing.T) {
	ns := t.TempDir()
	for i := range keepEnded + 5 {
		j, _ := Open(filepath.Join(ns, fmt.Sprintf("c%03d", i)), Options{ID: fmt.Sprintf("c%03d", i), Level: Info})
		if i >= 3 {
			j.Close()
		}
	}
	left, _ := os.ReadDir(ns)
	if len(left) != keepEnded+3 {
		t.Fatalf("%d journals left, want %d", len(left), keepEnded+3)
	}
	for _, running := range []string{"c000", "c001", "c002"} {
		if _, err := os.Stat(filepath.Join(ns, running, currentFile)); err != nil {
			t.Fatalf("running container's journal was pruned: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(ns, "c003")); !os.IsNotExist(err) {
		t.Fatal("the oldest ended journal was kept")
	}
}

func TestFollowerReadsAcrossRotation(t *testing.T) {
	j := openTest(t, 1024)
	j.Record(Entry{Kind: KindJournal})
	story, _ := Read(j.Dir())
	f, err := Follow(j.Dir(), story.Offset)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	for i := range 60 {
		j.Record(Entry{Kind: KindEvent, Name: fmt.Sprintf("n%02d", i)})
		if i%7 == 0 {
			lines, err := f.Next()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				e, _ := ParseLine(l)
				got = append(got, e.Name)
			}
		}
	}
	lines, _ := f.Next()
	for _, l := range lines {
		e, _ := ParseLine(l)
		got = append(got, e.Name)
	}
	if len(got) != 60 || got[0] != "n00" || got[59] != "n59" {
		t.Fatalf("followed %d entries: %v", len(got), got)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"": Info, "off": Off, "info": Info, "debug": Debug} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("verbose"); err == nil || !strings.Contains(err.Error(), "off, info or debug") {
		t.Errorf("verbose: %v", err)
	}
}

// BenchmarkRecord is the cost of one line on the request path.
func BenchmarkRecord(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "c1")
	j, err := Open(dir, Options{ID: "c1", Level: Info})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	argv := []string{"runc", "--root", "/run/containerd/runc/default", "--log", "/run/containerd/io.containerd.runtime.v2.task/default/c1/log.json", "--log-format", "json", "start", "c1"}
	for b.Loop() {
		j.Record(Entry{Kind: KindRunc, Name: "start", Argv: argv, Pid: 1234, Code: Code(0), Took: 8_000_000})
	}
}

// BenchmarkRecordOff is the cost of a line when the journal is off.
func BenchmarkRecordOff(b *testing.B) {
	var j *Journal
	for b.Loop() {
		j.Process("").Record(Entry{Kind: KindRunc, Name: "start", Pid: 1234})
	}
}

// A logging program's URI carries its arguments in its query, secrets
// among them: the journal keeps the keys, not the values, in a path or
// quoted in a message.
func TestJournalKeepsOnlyAURIsQueryKeys(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{ID: "web", Level: Info})
	if err != nil {
		t.Fatal(err)
	}
	j.Record(Entry{Kind: KindOpen, Name: "stdout+stderr", Msg: "logging program", Path: "binary:///usr/bin/logger?token=s3cret&level=debug"})
	j.Record(Entry{Kind: KindRPCOut, Name: "Create", Err: "InvalidArgument", Msg: `stdio "file:///var/log/x?key=s3cret#frag" is not supported; see binary:///bin/l?a=s3cret`})
	j.Record(Entry{Kind: KindOpen, Name: "stdout", Msg: "fifo", Path: "/run/containerd/fifo/1/web-stdout"})
	j.Close()
	data, err := os.ReadFile(filepath.Join(dir, currentFile))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{`"path":"binary:///usr/bin/logger?token\u0026level"`, `file:///var/log/x?key\" is not supported; see binary:///bin/l?a"`, "/run/containerd/fifo/1/web-stdout"} {
		if !strings.Contains(text, want) {
			t.Errorf("the journal has no %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "s3cret") {
		t.Errorf("the journal keeps a query's value:\n%s", text)
	}
}

// An OOM loop: 1000 OOM kills and their events over 10 seconds. Each
// second's are one line as they begin and one that counts the rest; the
// counts add up to every kill.
func TestAFloodIsCountedNotWritten(t *testing.T) {
	j := openTest(t, 0)
	start := Now()
	for i := range 1000 {
		at := start + int64(i)*int64(10*time.Millisecond)
		j.Record(Entry{Kind: KindOOM, Mono: at, Msg: "the kernel's OOM killer killed a process"})
		j.Record(Entry{Kind: KindEvent, Mono: at, Name: "/tasks/oom"})
	}
	j.Record(Entry{Kind: KindRPCIn, Name: "Kill"})
	j.Close()
	story, err := Read(j.Dir())
	if err != nil {
		t.Fatal(err)
	}
	counted := map[Kind]int{}
	for _, e := range story.Entries {
		counted[e.Kind] += max(1, e.Repeats) // a count stands for its entries
		if e.Repeats > 0 && (e.Since <= start || e.Since > e.Mono) {
			t.Errorf("a count from %d to %d, the flood began at %d", e.Since, e.Mono, start)
		}
	}
	if counted[KindOOM] != 1000 || counted[KindEvent] != 1000 || counted[KindRPCIn] != 1 {
		t.Errorf("counted %v; want 1000 OOM kills, 1000 events and the request", counted)
	}
	if len(story.Entries) > 50 {
		t.Errorf("%d lines for 10 seconds of a flood; want about 4 a second", len(story.Entries))
	}
}

// However much rotates out, the story's first lines stay: the reader puts
// them first, and says where the lost ones were.
func TestTheFirstLinesStayThroughRotations(t *testing.T) {
	j := openTest(t, 4096)
	j.Record(Entry{Kind: KindJournal, Msg: "info"})
	j.Record(Entry{Kind: KindRPCIn, Name: "Create"})
	j.Record(Entry{Kind: KindRPCIn, Name: "Start"})
	for i := range 500 {
		j.Record(Entry{Kind: KindRPCIn, Name: fmt.Sprintf("State-%03d", i)})
	}
	story, err := Read(j.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if !story.Rotated || story.LostAfter == 0 {
		t.Fatalf("rotated %v, lost after %d: the story does not say lines were lost after its first ones", story.Rotated, story.LostAfter)
	}
	if story.Entries[0].Kind != KindJournal || story.Entries[1].Name != "Create" || story.Entries[2].Name != "Start" {
		t.Fatalf("the story starts with %+v", story.Entries[:3])
	}
	if last := story.Entries[len(story.Entries)-1]; last.Name != "State-499" {
		t.Fatalf("the story ends with %q", last.Name)
	}
	for i := 1; i < len(story.Entries); i++ {
		if story.Entries[i].Mono < story.Entries[i-1].Mono || story.Entries[i].Name != "" && story.Entries[i].Name == story.Entries[i-1].Name {
			t.Fatalf("entries out of order or twice at %d: %q after %q", i, story.Entries[i].Name, story.Entries[i-1].Name)
		}
	}
	if files := story.Files(); filepath.Base(files[0]) != headFile {
		t.Errorf("the story's files %q do not start with the first lines", files)
	}
}

// What nobody can ask about any more goes: the journals of a containerd
// whose state folder is gone; a journal that never ended, of a container
// its containerd no longer has, an hour after its last line; a grouped
// shim's own journal an hour after its last line once the shim is gone.
// What may still be asked about stays.
func TestPruneRemovesWhatNobodyCanAskAbout(t *testing.T) {
	root, live := t.TempDir(), t.TempDir()
	gone := filepath.Join(t.TempDir(), "removed-state")
	open := func(dir, state string) *Journal {
		j, err := Open(dir, Options{ID: filepath.Base(dir), Level: Info, State: state})
		if err != nil {
			t.Fatal(err)
		}
		j.Record(Entry{Kind: KindJournal, Pid: 999999999, Name: filepath.Base(dir)})
		return j
	}
	age := func(dir string) {
		old := time.Now().Add(-2 * abandonedAfter)
		if err := os.Chtimes(filepath.Join(dir, currentFile), old, old); err != nil {
			t.Fatal(err)
		}
	}
	open(ContainerDir(root, gone, "ns", "of-a-removed-containerd"), gone)
	for _, id := range []string{"running", "abandoned", "recent"} {
		open(ContainerDir(root, live, "ns", id), live)
	}
	os.MkdirAll(filepath.Join(live, TaskFolder, "ns", "running"), 0o700)
	age(ContainerDir(root, live, "ns", "running"))
	age(ContainerDir(root, live, "ns", "abandoned"))
	open(ShimDir(root, live, "ns", "gone-shim"), live)
	age(ShimDir(root, live, "ns", "gone-shim"))
	open(ShimDir(root, live, "ns", "quiet-shim"), live)

	rootPruned.at = time.Time{}
	open(ContainerDir(root, live, "ns", "deleted"), live).Close()

	for dir, wantKept := range map[string]bool{
		StateDir(root, gone):                        false,
		ContainerDir(root, live, "ns", "running"):   true,
		ContainerDir(root, live, "ns", "abandoned"): false,
		ContainerDir(root, live, "ns", "recent"):    true,
		ContainerDir(root, live, "ns", "deleted"):   true,
		ShimDir(root, live, "ns", "gone-shim"):      false,
		ShimDir(root, live, "ns", "quiet-shim"):     true,
	} {
		if _, err := os.Stat(dir); (err == nil) != wantKept {
			t.Errorf("%s: kept %v, want %v", dir, err == nil, wantKept)
		}
	}
}

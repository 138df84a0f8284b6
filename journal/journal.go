package journal

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultFileLimit is the size at which the journal file is rotated: the
// current file becomes journal.1.jsonl (replacing the one before), and a new
// one starts. A container's journal thus takes at most about twice this.
// A whole lifecycle with an exec takes about 10 KiB.
const DefaultFileLimit = 512 << 10

// Journal is one container's journal file (or a shim's shim-wide one). A nil
// *Journal records nothing, which is what level off gives: callers need no
// checks of their own.
//
// Each entry is one write(2) of one line under mu: the order in the file is
// the order Record was called in, and a line is in the kernel's hands (and
// survives the shim being killed) as soon as Record returns. A line costs a
// few microseconds; the steps it records cost milliseconds.
type Journal struct {
	dir   string
	id    string
	level Level
	limit int64

	mu   sync.Mutex
	file *os.File // guarded by mu; nil once closed
	size int64    // guarded by mu
	// repeats are the open windows of entries that come in floods
	// (flood.go); flushTimer writes their counts when they end. Both are
	// guarded by mu.
	repeats    map[repeatKey]*repeats
	flushTimer *time.Timer
}

// Options are what Open needs besides the folder.
type Options struct {
	ID    string // the container; empty for a shim-wide journal
	Level Level
	// State is the containerd state folder, recorded beside the key the
	// folder is named by; empty to skip.
	State string
	// FileLimit rotates the file past this size; 0 is DefaultFileLimit.
	FileLimit int64

	truncate bool // start the current file empty
}

// Open starts a new journal in dir: what an earlier container of the same id
// left there is removed, since a new task is a new story. Level off removes
// it and returns nil.
func Open(dir string, opts Options) (*Journal, error) {
	// Each file operation here is on the Create request's path: the
	// current file is truncated rather than removed and made anew.
	remove := []string{headFile, rotatedFile, endedFile}
	if opts.Level == Off {
		remove = append(remove, currentFile)
	}
	for _, name := range remove {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	if opts.Level == Off {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if opts.State != "" {
		noteState(dir, opts.State)
	}
	opts.truncate = true
	return openFile(dir, opts)
}

// Continue goes on writing a journal a shim before this one kept, in the
// same process: an in-place upgrade of the shim hands its containers over,
// and their stories go on. Level off gives nil.
func Continue(dir string, opts Options) (*Journal, error) {
	if opts.Level == Off {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return openFile(dir, opts)
}

// Reopen continues the journal of a container that was not deleted (the
// `delete` action after a shim died adds to what the shim wrote); no
// journal there, or one that has ended, gives nil.
func Reopen(dir, id string) *Journal {
	if ok, _ := exists(dir); !ok {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, endedFile)); err == nil {
		return nil
	}
	j, err := openFile(dir, Options{ID: id, Level: Info})
	if err != nil {
		return nil
	}
	return j
}

// openFile opens the journal's current file in dir, for appending; emptied
// first when opts.truncate is set.
func openFile(dir string, opts Options) (*Journal, error) {
	limit := opts.FileLimit
	if limit <= 0 {
		limit = DefaultFileLimit
	}
	j := &Journal{dir: dir, id: opts.ID, level: opts.Level, limit: limit}
	if err := j.openCurrent(opts.truncate); err != nil {
		return nil, err
	}
	return j, nil
}

// noteState writes which containerd state folder the key folder stands for,
// the first time a journal is made under it.
func noteState(dir, state string) {
	keyDir := filepath.Dir(filepath.Dir(dir))
	if filepath.Base(filepath.Dir(dir)) == shimFolder {
		keyDir = filepath.Dir(keyDir)
	}
	path := filepath.Join(keyDir, stateFile)
	if _, err := os.Stat(path); err == nil {
		return
	}
	os.WriteFile(path, []byte(filepath.Clean(state)), 0o600)
}

// openCurrent opens journal.jsonl for appending; O_NOFOLLOW: the shim runs
// as root and must not write through a link someone left there.
func (j *Journal) openCurrent(truncate bool) error {
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE | unix.O_NOFOLLOW
	if truncate {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(filepath.Join(j.dir, currentFile), flags, 0o600)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	j.file, j.size = f, info.Size()
	return nil
}

// Level is the journal's level; a nil journal's is Off.
func (j *Journal) Level() Level {
	if j == nil {
		return Off
	}
	return j.level
}

// Dir is the journal's folder.
func (j *Journal) Dir() string {
	if j == nil {
		return ""
	}
	return j.dir
}

// Record writes one entry; one like it already written a moment ago is
// counted instead (flood.go). Mono and Time are set when zero, ID always.
// Failing to write is not the container's problem: the entry is dropped.
func (j *Journal) Record(e Entry) {
	if j == nil {
		return
	}
	if e.Mono == 0 {
		e.Mono = Now()
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.ID == "" {
		e.ID = j.id
	}
	e.Path, e.Msg = withoutQueryValues(e.Path), withoutQueryValues(e.Msg)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.file == nil {
		return
	}
	if comesInFloods(e) && j.countRepeat(e) {
		return
	}
	j.write(e)
}

// write writes one line, rotating the file first when it is full. mu is
// held.
func (j *Journal) write(e Entry) {
	buf := lineBuffers.Get().(*[]byte)
	defer lineBuffers.Put(buf)
	line, err := appendLine((*buf)[:0], &e)
	if err != nil {
		return
	}
	line = append(line, '\n')
	*buf = line
	if j.size+int64(len(line)) > j.limit && j.size > 0 {
		j.rotate()
		if j.file == nil {
			return
		}
	}
	n, _ := j.file.Write(line)
	j.size += int64(n)
}

// lineBuffers hold the lines being written, shared by every journal of the
// shim: a line left as garbage stays resident in a shim that never collects
// (encode.go).
var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// rotate moves the full file aside and starts a new one; mu is held. The
// file moved aside replaces the one before it: the first time that happens,
// the story's first lines would go, and keepHead keeps them.
func (j *Journal) rotate() {
	j.file.Close()
	j.file = nil
	keepHead(j.dir, j.limit/8)
	os.Rename(filepath.Join(j.dir, currentFile), filepath.Join(j.dir, rotatedFile))
	j.openCurrent(false)
}

// keepHead copies the first lines of the story, up to limit bytes, into
// headFile, once: when the current file starts the story (its first line
// is the journal's opening) and no head was kept yet. They say how the
// container was created and started, which no later line repeats.
func keepHead(dir string, limit int64) {
	headPath := filepath.Join(dir, headFile)
	if _, err := os.Lstat(headPath); err == nil {
		return
	}
	f, err := os.Open(filepath.Join(dir, currentFile))
	if err != nil {
		return
	}
	defer f.Close()
	data := make([]byte, limit)
	n, _ := io.ReadFull(f, data)
	data = data[:bytes.LastIndexByte(data[:n], '\n')+1]
	firstLine, _, _ := bytes.Cut(data, []byte{'\n'})
	if e, err := ParseLine(firstLine); err != nil || e.Kind != KindJournal {
		return
	}
	head, err := os.OpenFile(headPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	head.Write(data)
	head.Close()
}

// Close ends the journal of a deleted container: it stays for trace, marked
// ended, and the journals nobody needs any more are pruned (prune.go).
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	if j.file == nil {
		j.mu.Unlock()
		return nil
	}
	j.flushAll()
	err := j.file.Close()
	j.file = nil
	j.mu.Unlock()
	if j.id != "" {
		os.WriteFile(filepath.Join(j.dir, endedFile), nil, 0o600)
		prune(j.dir)
	}
	return err
}

// Recorder records the entries of one process of a container: the same
// journal, with the exec id filled in. Its zero value records nothing.
type Recorder struct {
	j    *Journal
	exec string
}

// Process returns the Recorder of a process: exec "" is the init process.
func (j *Journal) Process(exec string) Recorder { return Recorder{j: j, exec: exec} }

// Record writes one entry about the process.
func (r Recorder) Record(e Entry) {
	if r.j == nil {
		return
	}
	e.Exec = r.exec
	r.j.Record(e)
}

// Exec is the exec id of the process; "" for the init process.
func (r Recorder) Exec() string { return r.exec }

// On is true when entries are recorded at all.
func (r Recorder) On() bool { return r.j != nil }

// Debug is true when the journal wants debug detail.
func (r Recorder) Debug() bool { return r.j.Level() >= Debug }

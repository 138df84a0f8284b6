package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// How long journals stay. They outlive their containers on purpose (the
// end of a container's life is what one most wants to read afterwards), but
// /run is memory, and what nobody can ask about any more goes:
//
//   - a deleted container's journal, and a failed Create's (both end with
//     Close): the keepEnded most recent of a namespace stay, older ones go;
//   - a journal that never ended, of a container its containerd no longer
//     has (its bundle is gone: its shim was killed, or died during Create):
//     abandonedAfter its last line;
//   - a grouped shim's own journal: abandonedAfter its last line, once that
//     shim no longer runs;
//   - every journal of a containerd whose state folder is gone (a daemon
//     that was removed, with all its containers).
//
// Close prunes its container's namespace, and the whole root at most every
// rootPruneInterval per shim process: a grouped shim closes many journals.
const (
	keepEnded         = 100
	abandonedAfter    = time.Hour
	rootPruneInterval = 10 * time.Minute
)

// TaskFolder is where containerd (1.7 and 2.x) makes each task's bundle, in
// its state folder: <state>/io.containerd.runtime.v2.task/<namespace>/<id>.
const TaskFolder = "io.containerd.runtime.v2.task"

// rootPruned is when this process last pruned the whole root.
var rootPruned struct {
	sync.Mutex
	at time.Time
}

// prune is Close's pruning, from the folder of the journal it closed.
func prune(containerDir string) {
	now := time.Now()
	namespaceDir := filepath.Dir(containerDir)
	keyDir := filepath.Dir(namespaceDir)
	state, _ := os.ReadFile(filepath.Join(keyDir, stateFile))
	pruneNamespace(namespaceDir, string(state), now)
	if len(state) == 0 {
		return // not a key folder of the root: a journal opened elsewhere
	}
	rootPruned.Lock()
	due := now.Sub(rootPruned.at) >= rootPruneInterval
	if due {
		rootPruned.at = now
	}
	rootPruned.Unlock()
	if due {
		pruneGoneStates(filepath.Dir(keyDir))
	}
}

// pruneNamespace applies the rules to the journals of one namespace of the
// containerd whose state folder is state ("" when unknown: then only ended
// journals are pruned).
func pruneNamespace(namespaceDir, state string, now time.Time) {
	entries, err := os.ReadDir(namespaceDir)
	if err != nil {
		return
	}
	type ended struct {
		dir string
		at  time.Time
	}
	var all []ended
	for _, e := range entries {
		dir := filepath.Join(namespaceDir, e.Name())
		if e.Name() == shimFolder {
			pruneShimJournals(dir, now)
			continue
		}
		if info, err := os.Stat(filepath.Join(dir, endedFile)); err == nil {
			all = append(all, ended{dir, info.ModTime()})
			continue
		}
		bundle := filepath.Join(state, TaskFolder, filepath.Base(namespaceDir), e.Name())
		if state != "" && idleSince(dir, now) >= abandonedAfter && !pathExists(bundle) {
			os.RemoveAll(dir)
		}
	}
	if len(all) <= keepEnded {
		return
	}
	sort.Slice(all, func(a, b int) bool { return all[a].at.Before(all[b].at) })
	for _, e := range all[:len(all)-keepEnded] {
		os.RemoveAll(e.dir)
	}
}

// pruneShimJournals removes the shim-wide journals of grouped shims that
// are gone and wrote nothing for abandonedAfter.
func pruneShimJournals(shimDir string, now time.Time) {
	groups, err := os.ReadDir(shimDir)
	if err != nil {
		return
	}
	for _, g := range groups {
		dir := filepath.Join(shimDir, g.Name())
		if idleSince(dir, now) < abandonedAfter {
			continue
		}
		if opened := firstEntry(dir); opened.Kind == KindJournal && ShimRunning(opened.Pid, opened.Name) {
			continue
		}
		os.RemoveAll(dir)
	}
}

// pruneGoneStates removes the journals of every containerd whose state
// folder no longer exists. A key folder that does not say which containerd
// it is for is left alone.
func pruneGoneStates(root string) {
	keys, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, key := range keys {
		keyDir := filepath.Join(root, key.Name())
		state, err := os.ReadFile(filepath.Join(keyDir, stateFile))
		if err != nil || len(state) == 0 || pathExists(string(state)) {
			continue
		}
		os.RemoveAll(keyDir)
	}
}

// idleSince is how long ago a journal's current file was last written;
// zero when that cannot be told.
func idleSince(dir string, now time.Time) time.Duration {
	info, err := os.Stat(filepath.Join(dir, currentFile))
	if err != nil {
		return 0
	}
	return now.Sub(info.ModTime())
}

// firstEntry is a journal's first line, read: its opening names the shim.
// A journal that rotated keeps its first lines in its head.
func firstEntry(dir string) Entry {
	for _, name := range []string{headFile, rotatedFile, currentFile} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		buf := make([]byte, 4096)
		n, _ := f.Read(buf)
		f.Close()
		line, _, _ := bytes.Cut(buf[:n], []byte{'\n'})
		e, _ := ParseLine(line)
		return e
	}
	return Entry{}
}

func pathExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// ShimRunning tells whether pid is still the shim server of group: the
// server's command line carries `-id <group>`, so a pid the kernel gave to
// another process since does not pass.
func ShimRunning(pid int, group string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(cmdline), "\x00-id\x00"+group+"\x00")
}

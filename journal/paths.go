package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Where journals live:
//
//	/run/containerd-shim-teach-v2/<key>/containerd-state     the containerd state folder <key> stands for
//	/run/containerd-shim-teach-v2/<key>/<namespace>/<id>/journal.jsonl (and journal.1.jsonl, journal.head.jsonl)
//	/run/containerd-shim-teach-v2/<key>/<namespace>/.shim/<group>/journal.jsonl   shim-wide entries
//
// Not in the bundle: containerd removes the bundle as soon as the task is
// deleted, and the end of a container's life is what one most wants to read
// afterwards. Under /run (tmpfs): it survives the shim, and a reboot, which
// ends every container anyway, clears it. <key> keeps the containers of two
// containerd daemons apart (each has its own state folder, and both may use
// the same namespace and id); trace finds it from the state folder alone.

// DefaultRoot is the folder all journals live under.
const DefaultRoot = "/run/containerd-shim-teach-v2"

// DefaultContainerdState is containerd's state folder unless its config
// says otherwise (`state = ...`).
const DefaultContainerdState = "/run/containerd"

// stateFile, in a key's folder, names the containerd state folder the key
// was made from, so that trace can say which daemon a journal belongs to.
const stateFile = "containerd-state"

// shimFolder holds the shim-wide journals of a namespace. Container ids
// start with a letter or digit, so it never names a container.
const shimFolder = ".shim"

const (
	currentFile = "journal.jsonl"
	rotatedFile = "journal.1.jsonl"
	headFile    = "journal.head.jsonl" // the story's first lines, kept once they would rotate out
	endedFile   = "ended"              // present once the container was deleted
)

// StateOfBundle is containerd's state folder, learnt from a bundle path:
// containerd (1.7 and 2.x) makes bundles at
// <state>/io.containerd.runtime.v2.task/<namespace>/<id>.
func StateOfBundle(bundle string) string {
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Clean(bundle))))
}

// stateKey names a containerd state folder by a hash: state paths may be
// long, and a folder name must not contain slashes.
func stateKey(state string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(state)))
	return hex.EncodeToString(sum[:8])
}

// StateDir is the folder of every journal of one containerd.
func StateDir(root, state string) string {
	return filepath.Join(root, stateKey(state))
}

// ContainerDir is the folder of a container's journal.
func ContainerDir(root, state, namespace, id string) string {
	return filepath.Join(root, stateKey(state), namespace, id)
}

// ShimDir is the folder of a shim's shim-wide journal.
func ShimDir(root, state, namespace, group string) string {
	return filepath.Join(root, stateKey(state), namespace, shimFolder, group)
}

// SharedDir is the folder of the shim-wide journal of the grouped shim
// that serves the container whose journal is in containerDir: a sibling,
// under .shim. group is the shim's group, as the container's journal names
// it (its first entry); a shim whose group is the container's own id is
// ungrouped, has no shim-wide journal, and gives "".
func SharedDir(containerDir, group string) string {
	if group == "" || group == "." || group == ".." || group == filepath.Base(containerDir) || group != filepath.Base(group) {
		return ""
	}
	return filepath.Join(filepath.Dir(containerDir), shimFolder, group)
}

// ErrNoJournal: no journal exists for the container asked for.
var ErrNoJournal = errors.New("no journal")

// Found is where a container's journal was found.
type Found struct {
	Dir   string // the container's journal folder
	State string // the containerd state folder it belongs to
}

// Find looks for a container's journal. With state, only that containerd's
// journals are looked at. Without, the default containerd's are looked at
// first, then every other containerd's; a container found under more than
// one is an error that names them, so the caller can choose with state.
// Journals are root's alone: for another user Find says so, rather than
// that there is none.
func Find(root, state, namespace, id string) (Found, error) {
	if state != "" {
		dir := ContainerDir(root, state, namespace, id)
		if ok, err := exists(dir); !ok {
			if err != nil {
				return Found{}, notReadable(root, err)
			}
			return Found{}, fmt.Errorf("container %q in namespace %q under containerd state %s: %w", id, namespace, state, ErrNoJournal)
		}
		return Found{Dir: dir, State: state}, nil
	}
	dir := ContainerDir(root, DefaultContainerdState, namespace, id)
	if ok, err := exists(dir); ok {
		return Found{Dir: dir, State: DefaultContainerdState}, nil
	} else if err != nil {
		return Found{}, notReadable(root, err)
	}
	keys, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Found{}, notReadable(root, err)
	}
	var found []Found
	for _, key := range keys {
		dir := filepath.Join(root, key.Name(), namespace, id)
		if ok, _ := exists(dir); ok {
			state, _ := os.ReadFile(filepath.Join(root, key.Name(), stateFile))
			found = append(found, Found{Dir: dir, State: string(state)})
		}
	}
	switch len(found) {
	case 0:
		return Found{}, fmt.Errorf("container %q in namespace %q: %w", id, namespace, ErrNoJournal)
	case 1:
		return found[0], nil
	}
	var states []string
	for _, f := range found {
		states = append(states, f.State)
	}
	return Found{}, fmt.Errorf("container %q in namespace %q exists under several containerd daemons (state folders %q); choose one with --state", id, namespace, states)
}

// exists tells whether dir holds a journal. Whether it does cannot be told
// when the user may not look (err): a folder that cannot be searched hides
// what it holds.
func exists(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, currentFile))
	if errors.Is(err, fs.ErrPermission) {
		return false, err
	}
	return err == nil, nil
}

func notReadable(root string, err error) error {
	return fmt.Errorf("the journals under %s are root's alone, and this user may not read them (%w): run it as root", root, err)
}

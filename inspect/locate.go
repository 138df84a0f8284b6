package inspect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// taskFolder is where containerd (1.7 and 2.x) makes a bundle for each task:
// <state>/io.containerd.runtime.v2.task/<namespace>/<id>.
const taskFolder = journal.TaskFolder

// container is what locate found: the bundle, the container's init process
// and the shim that serves it.
type container struct {
	stateDir, namespace, id string
	bundle                  string
	initPID                 int
	shimPID                 int
	socket                  string // the shim's socket file, from the bundle's "address"
	socketInode             uint64 // the listening socket's inode
}

// locate finds a running container from its namespace and id alone. The
// bundle names its init process (init.pid, written by runc create) and the
// shim's socket (address, written by the shim's start); the shim is the
// process that listens on that socket.
func locate(stateDir, ns, id string) (*container, error) {
	if err := checkName("namespace", ns); err != nil {
		return nil, err
	}
	if err := checkName("container id", id); err != nil {
		return nil, err
	}
	c := &container{stateDir: stateDir, namespace: ns, id: id, bundle: filepath.Join(stateDir, taskFolder, ns, id)}
	if _, err := os.Stat(c.bundle); err != nil {
		return nil, notFound(c, err)
	}
	if err := c.readBundle(); err != nil {
		return nil, err
	}
	if err := c.findShim(); err != nil {
		return nil, err
	}
	return c, c.checkRunning()
}

// notFound explains a missing bundle and lists what does exist, since the
// usual mistake is the namespace (Docker's is "moby") or the state folder.
func notFound(c *container, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read the bundle of %s: %w", c.id, err)
	}
	msg := fmt.Sprintf("no task %q in namespace %q: %s does not exist", c.id, c.namespace, c.bundle)
	if ids := folderNames(filepath.Dir(c.bundle)); len(ids) > 0 {
		msg += fmt.Sprintf("; tasks in %q: %s", c.namespace, strings.Join(ids, ", "))
	} else if nss := folderNames(filepath.Join(c.stateDir, taskFolder)); len(nss) > 0 {
		msg += fmt.Sprintf("; namespaces with tasks: %s (choose one with -n)", strings.Join(nss, ", "))
	} else {
		msg += fmt.Sprintf("; no tasks at all under %s: is that containerd's state folder (--state)?", c.stateDir)
	}
	return fmt.Errorf("%s: %w", msg, errdefs.ErrNotFound)
}

// folderNames lists the folders in dir, at most a few.
func folderNames(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) > 10 {
		names = append(names[:10], "...")
	}
	return names
}

func (c *container) readBundle() error {
	data, err := os.ReadFile(filepath.Join(c.bundle, "init.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("task %s has no init.pid in %s: runc has not created it yet, or its create failed: %w",
			c.id, c.bundle, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return err
	}
	if c.initPID, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil || c.initPID <= 0 {
		return fmt.Errorf("init.pid of %s holds %q, not a pid: %w", c.id, data, errdefs.ErrDataLoss)
	}
	address, err := shimAddress(c.bundle)
	if err != nil {
		return fmt.Errorf("read the shim's address of %s: %w", c.id, err)
	}
	c.socket = strings.TrimPrefix(address, "unix://")
	return nil
}

// shimAddress reads where the shim listens. containerd 2.x records what the
// shim's start answered in bootstrap.json; a shim writes it into the file
// "address" too (ours always, pkg/shim's at containerd 1.7).
func shimAddress(bundle string) (string, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json"))
	if err == nil {
		var bootstrap struct {
			Address string `json:"address"`
		}
		if json.Unmarshal(data, &bootstrap) == nil && bootstrap.Address != "" {
			return bootstrap.Address, nil
		}
	}
	data, err = os.ReadFile(filepath.Join(bundle, "address"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// findShim finds the process listening on the shim's socket. The init
// process's parent is tried first: it is the shim, unless the shim died.
func (c *container) findShim() error {
	table, err := os.ReadFile(filepath.Join(procRoot, "net", "unix"))
	if err != nil {
		return err
	}
	sockets, err := parseUnixSockets(table)
	if err != nil {
		return err
	}
	for _, s := range sockets {
		if s.listening && s.path == c.socket {
			c.socketInode = s.inode
		}
	}
	if c.socketInode == 0 {
		return c.shimGone()
	}
	candidates := []int{}
	if st, err := readStatus(c.initPID); err == nil {
		candidates = append(candidates, st.PPID)
	}
	all, err := allPIDs()
	if err != nil {
		return err
	}
	for _, pid := range append(candidates, all...) {
		if holdsSocket(pid, c.socketInode) {
			c.shimPID = pid
			return nil
		}
	}
	return c.shimGone()
}

// shimGone is the error for a dead shim, with what became of the container.
func (c *container) shimGone() error {
	msg := fmt.Sprintf("the shim of %s is not running: nothing listens on its socket %s",
		c.id, c.socket)
	if st, err := readStatus(c.initPID); err == nil && !st.zombie() {
		msg += fmt.Sprintf("; the container's init process %d still runs, re-parented to pid %d, with nobody to reap it or relay its output", c.initPID, st.PPID)
	} else {
		msg += fmt.Sprintf("; the container's init process %d is gone too", c.initPID)
	}
	msg += "; containerd cleans up (runc delete, unmount) when it next reaches for the task or restarts"
	return fmt.Errorf("%s: %w", msg, errdefs.ErrUnavailable)
}

// holdsSocket reports whether pid has the socket with this inode open.
func holdsSocket(pid int, inode uint64) bool {
	want := fmt.Sprintf("socket:[%d]", inode)
	for _, fd := range openDescriptors(pid) {
		if fd.Target == want {
			return true
		}
	}
	return false
}

// checkRunning refuses a container whose init process has exited: a
// stopped task keeps its bundle and shim until containerd deletes it, and
// a recycled pid may by then belong to an unrelated process.
func (c *container) checkRunning() error {
	st, err := readStatus(c.initPID)
	switch {
	case err == nil && !st.zombie() && st.PPID == c.shimPID:
		return nil
	case err == nil && !st.zombie():
		return fmt.Errorf("container %s is stopped: pid %d (%s) is not the shim's child, so its init process exited and the pid was reused: %w",
			c.id, c.initPID, st.Name, errdefs.ErrFailedPrecondition)
	default:
		return fmt.Errorf("container %s is stopped: its init process %d exited; the shim (pid %d) keeps its exit status until the task is deleted (ctr task delete, docker rm): %w",
			c.id, c.initPID, c.shimPID, errdefs.ErrFailedPrecondition)
	}
}

// unixSocket is one line of /proc/net/unix.
type unixSocket struct {
	inode     uint64
	listening bool
	path      string // empty for an unnamed socket, "@..." for an abstract one
}

// soAcceptCon is the __SO_ACCEPTCON flag of /proc/net/unix: the socket
// listens.
const soAcceptCon = 0x10000

// parseUnixSockets reads /proc/net/unix:
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	0000...: 00000002 00000000 00010000 0001 01 10609774 /run/containerd/s/083a...
func parseUnixSockets(data []byte) ([]unixSocket, error) {
	var sockets []unixSocket
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 0, 4096), 1<<20)
	for first := true; scanner.Scan(); first = false {
		if first {
			continue // the header
		}
		fields := strings.Fields(scanner.Text())
		if len(fields) < 7 {
			continue
		}
		flags, err := strconv.ParseUint(fields[3], 16, 32)
		if err != nil {
			return nil, fmt.Errorf("/proc/net/unix flags %q: %w", fields[3], err)
		}
		inode, err := strconv.ParseUint(fields[6], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/net/unix inode %q: %w", fields[6], err)
		}
		s := unixSocket{inode: inode, listening: flags&soAcceptCon != 0}
		if len(fields) > 7 {
			s.path = strings.Join(fields[7:], " ")
		}
		sockets = append(sockets, s)
	}
	return sockets, scanner.Err()
}

// ShimAddress is where the shim serving the task of bundle listens, for the
// other commands that talk to a shim (upgrade).
func ShimAddress(bundle string) (string, error) { return shimAddress(bundle) }

// StateDir is the state folder of the containerd that runs task id of ns,
// as inspect finds it without --state.
func StateDir(ns, id string) string { return findStateDir(ns, id) }

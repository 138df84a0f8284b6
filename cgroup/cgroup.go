// Package cgroup reads a container's cgroup: the metrics `ctr task metrics`,
// `docker stats` and the kubelet show, and the OOM kills of its memory
// controller. runc creates the cgroup; the shim only finds it, from the
// container's init pid, and reads it.
//
// Linux has two cgroup layouts. v1 (this package's Mode "legacy"/"hybrid")
// mounts each controller as its own tree: memory, cpu, pids…; v2 ("unified")
// has one tree. cgroupfs reads both; the shim returns the metrics type of the
// layout in use, as the stock runc shim does.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/teach/containerd-shim-teach-v2/cgroup/cgroupfs"
)

// Cgroup is the cgroup of one container.
type Cgroup interface {
	// Metrics returns the cgroup's metrics, as the v1 or v2 Metrics type.
	Metrics() (*anypb.Any, error)
	// WatchOOM calls onOOM each time the kernel's OOM killer kills a
	// process in the cgroup, until the cgroup is removed.
	WatchOOM(onOOM func()) error
	// OOMKills is how many processes the OOM killer has killed in the
	// cgroup so far (oom_kill in memory.oom_control or memory.events).
	OOMKills() (uint64, error)
	// OOMKillsFile is the file OOMKills reads.
	OOMKillsFile() string
	// Freezer reads what the kernel says of the cgroup's freezer.
	Freezer() (FreezerState, error)
}

// FreezerState is the freezer of a cgroup as the kernel reports it, in the
// file and words of the cgroup version in use.
//
// v1 has a freezer controller: freezer.state says THAWED, FREEZING or
// FROZEN. v2 has no controller for it: every cgroup has cgroup.freeze, where
// runc writes 1 to ask, and cgroup.events, whose "frozen" line the kernel
// sets to 1 only once every process in the cgroup has stopped.
type FreezerState struct {
	File   string // the file read
	Says   string // its line or word: "frozen 1", "FROZEN"
	Frozen bool
}

// Of finds the cgroup a process is in.
func Of(pid int) (Cgroup, error) {
	if cgroupfs.Unified() {
		folder, err := cgroupfs.V2FolderOf(pid)
		if err != nil {
			return nil, fmt.Errorf("find cgroup of pid %d: %w", pid, err)
		}
		return &unified{dir: folder}, nil
	}
	folders, err := cgroupfs.V1FoldersOf(pid)
	if err != nil {
		return nil, fmt.Errorf("find cgroups of pid %d: %w", pid, err)
	}
	memory, ok := folders["memory"]
	if !ok {
		return nil, fmt.Errorf("pid %d is in no memory cgroup: %w", pid, errdefs.ErrNotFound)
	}
	return &legacy{folders: folders, memory: memory}, nil
}

// legacy is a cgroup v1 container cgroup: one folder per hierarchy.
type legacy struct {
	folders cgroupfs.V1Folders
	memory  string // the memory controller's folder
}

func (l *legacy) OOMKills() (uint64, error) { return readCounter(l.OOMKillsFile(), "oom_kill") }

func (l *legacy) OOMKillsFile() string { return filepath.Join(l.memory, "memory.oom_control") }

func (l *legacy) Freezer() (FreezerState, error) {
	freezer, ok := l.folders["freezer"]
	if !ok {
		return FreezerState{}, fmt.Errorf("the container is in no freezer cgroup: %w", errdefs.ErrNotFound)
	}
	file := filepath.Join(freezer, "freezer.state")
	data, err := os.ReadFile(file)
	if err != nil {
		return FreezerState{}, err
	}
	state := strings.TrimSpace(string(data))
	return FreezerState{File: file, Says: state, Frozen: state == "FROZEN"}, nil
}

func (l *legacy) Metrics() (*anypb.Any, error) {
	metrics, err := cgroupfs.V1Metrics(l.folders)
	if err != nil {
		return nil, metricsError("v1", err)
	}
	return typeurl.MarshalAnyToProto(metrics)
}

// unified is a cgroup v2 container cgroup.
type unified struct {
	dir string // the cgroup's folder
}

func (u *unified) OOMKills() (uint64, error) { return readCounter(u.OOMKillsFile(), "oom_kill") }

func (u *unified) OOMKillsFile() string { return filepath.Join(u.dir, "memory.events") }

func (u *unified) Freezer() (FreezerState, error) {
	file := filepath.Join(u.dir, "cgroup.events")
	frozen, err := readCounter(file, "frozen")
	if err != nil {
		return FreezerState{}, err
	}
	return FreezerState{File: file, Says: fmt.Sprintf("frozen %d", frozen), Frozen: frozen == 1}, nil
}

func (u *unified) Metrics() (*anypb.Any, error) {
	metrics, err := cgroupfs.V2Metrics(u.dir)
	if err != nil {
		return nil, metricsError("v2", err)
	}
	return typeurl.MarshalAnyToProto(metrics)
}

// metricsError says why the metrics could not be read; a cgroup that is gone
// means the container's processes are.
func metricsError(version string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (%v)", ErrNoCgroup, err)
	}
	return fmt.Errorf("read cgroup %s metrics: %w", version, err)
}

// ErrNoCgroup is returned while a container has no process to find its
// cgroup from.
var ErrNoCgroup = fmt.Errorf("the container has no running process, so no cgroup: %w", errdefs.ErrFailedPrecondition)

// readCounter reads "name value" from a cgroup file of such lines.
func readCounter(path, name string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, " ")
		if ok && key == name {
			return strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		}
	}
	return 0, nil
}

// MoveProcess puts pid into the cgroup at path (relative to the cgroup
// mount), creating nothing: the runtime option ShimCgroup names a cgroup the
// operator made, to account the shim's own memory and CPU there. On cgroup v1
// the process joins the path in every hierarchy where it exists.
func MoveProcess(path string, pid int) error {
	return cgroupfs.AddProcess(path, pid)
}

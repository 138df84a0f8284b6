// Package cgroup reads a container's cgroup: the metrics `ctr task metrics`,
// `docker stats` and the kubelet show, and the OOM kills of its memory
// controller. runc creates the cgroup; the shim only finds it, from the
// container's init pid, and reads it.
//
// Linux has two cgroup layouts. v1 (this package's Mode "legacy"/"hybrid")
// mounts each controller as its own tree: memory, cpu, pids…; v2 ("unified")
// has one tree. containerd/cgroups/v3 reads both; the shim returns the
// metrics type of the layout in use, as the stock runc shim does.
package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"
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
	if cgroups.Mode() == cgroups.Unified {
		path, err := cgroup2.PidGroupPath(pid)
		if err != nil {
			return nil, fmt.Errorf("find cgroup of pid %d: %w", pid, err)
		}
		manager, err := cgroup2.Load(path)
		if err != nil {
			return nil, fmt.Errorf("load cgroup %s: %w", path, err)
		}
		return &unified{manager: manager, dir: filepath.Join(unifiedMountpoint, path)}, nil
	}
	// The paths are read from /proc/<pid>/cgroup now, while the process
	// lives; the controllers are loaded when metrics are first asked for.
	paths := cgroup1.PidPath(pid)
	memory, err := paths(cgroup1.Memory)
	if err != nil {
		return nil, fmt.Errorf("find memory cgroup of pid %d: %w", pid, err)
	}
	return &legacy{paths: paths, memory: filepath.Join(legacyMountpoint, "memory", memory)}, nil
}

const (
	legacyMountpoint  = "/sys/fs/cgroup"
	unifiedMountpoint = "/sys/fs/cgroup"
)

// legacy is a cgroup v1 container cgroup: one directory per controller.
type legacy struct {
	paths  cgroup1.Path // each controller's folder of the container
	memory string       // the memory controller's folder

	// cgroup is loaded by the first Metrics: loading checks every
	// controller's folder, work (and memory, the shim's heap holds what it
	// allocates until its first collection) that a container nobody asks
	// for stats does not need. The OOM watch needs only the memory folder.
	load    sync.Once
	cgroup  cgroup1.Cgroup
	loadErr error
}

func (l *legacy) OOMKills() (uint64, error) { return readCounter(l.OOMKillsFile(), "oom_kill") }

func (l *legacy) OOMKillsFile() string { return filepath.Join(l.memory, "memory.oom_control") }

func (l *legacy) Freezer() (FreezerState, error) {
	freezer, err := l.paths(cgroup1.Freezer)
	if err != nil {
		return FreezerState{}, fmt.Errorf("find the freezer cgroup: %w", err)
	}
	file := filepath.Join(legacyMountpoint, string(cgroup1.Freezer), freezer, "freezer.state")
	data, err := os.ReadFile(file)
	if err != nil {
		return FreezerState{}, err
	}
	state := strings.TrimSpace(string(data))
	return FreezerState{File: file, Says: state, Frozen: state == "FROZEN"}, nil
}

func (l *legacy) Metrics() (*anypb.Any, error) {
	l.load.Do(func() { l.cgroup, l.loadErr = cgroup1.Load(l.paths) })
	if l.loadErr != nil {
		return nil, fmt.Errorf("load cgroup v1: %w", l.loadErr)
	}
	metrics, err := l.cgroup.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("read cgroup v1 metrics: %w", err)
	}
	return typeurl.MarshalAnyToProto(metrics)
}

// unified is a cgroup v2 container cgroup.
type unified struct {
	manager *cgroup2.Manager
	dir     string // the cgroup's folder
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
	metrics, err := u.manager.Stat()
	if err != nil {
		return nil, fmt.Errorf("read cgroup v2 metrics: %w", err)
	}
	return typeurl.MarshalAnyToProto(metrics)
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
	if cgroups.Mode() == cgroups.Unified {
		manager, err := cgroup2.Load(path)
		if err != nil {
			return fmt.Errorf("load cgroup %s: %w", path, err)
		}
		return manager.AddProc(uint64(pid))
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		return fmt.Errorf("load cgroup %s: %w", path, err)
	}
	return cg.AddProc(uint64(pid))
}

package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// What a long-lived process holds, read from /proc: the figures a leak shows
// up in first. A shim that forgets to close a FIFO gains a descriptor per
// container; one that forgets a goroutine gains a thread now and then and
// memory always.

// OpenFD is one open descriptor of a process and what it points at, as
// `ls -l /proc/<pid>/fd` shows it: a path, pipe:[inode], socket:[inode],
// anon_inode:[eventpoll]...
type OpenFD struct {
	FD     int
	Target string
}

func (f OpenFD) String() string { return fmt.Sprintf("%d -> %s", f.FD, f.Target) }

// OpenFDs lists the descriptors pid has open, in descriptor order.
// Descriptors closed while the folder is read are skipped.
func OpenFDs(pid int) ([]OpenFD, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fds []OpenFD
	for _, entry := range entries {
		n, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, entry.Name()))
		if err != nil {
			continue
		}
		fds = append(fds, OpenFD{FD: n, Target: target})
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].FD < fds[j].FD })
	return fds, nil
}

// WithoutPidfds drops the pidfds from a descriptor list. Go's os/exec holds a
// pidfd for each process it starts until the process is waited for through
// it, or until the garbage collector finalizes the os.Process: a shim whose
// reaper collects runc with wait4(-1) keeps one per runc command for a while.
// They are counted apart from the rest, which must not grow at all.
func WithoutPidfds(fds []OpenFD) (others []OpenFD, pidfds int) {
	for _, fd := range fds {
		if fd.Target == "anon_inode:[pidfd]" {
			pidfds++
			continue
		}
		others = append(others, fd)
	}
	return others, pidfds
}

// PidfdTargets returns, for each pidfd pid holds, the pid it names: the
// "Pid:" line of /proc/<pid>/fdinfo/<fd>, -1 once the named process has been
// reaped. A shim holds one for each live process it tracks by pidfd.
func PidfdTargets(pid int) ([]int, error) {
	var targets []int
	err := fdinfoLines(pid, "anon_inode:[pidfd]", func(line string) {
		if value, ok := strings.CutPrefix(line, "Pid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(value)); err == nil {
				targets = append(targets, n)
			}
		}
	})
	return targets, err
}

// fdinfoLines calls each with every line of /proc/<pid>/fdinfo/<fd>, for
// each descriptor of pid that points at target ("anon_inode:[pidfd]",
// "anon_inode:inotify"). A descriptor closed meanwhile is skipped.
func fdinfoLines(pid int, target string, each func(line string)) error {
	fds, err := OpenFDs(pid)
	if err != nil {
		return err
	}
	for _, fd := range fds {
		if fd.Target != target {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd.FD))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			each(line)
		}
	}
	return nil
}

// FDKinds counts a process's descriptors by kind (pipe, socket, anon_inode,
// or "file"), the summary a leak report needs: 40 more pipes says more than
// 40 more descriptors.
func FDKinds(fds []OpenFD) map[string]int {
	kinds := map[string]int{}
	for _, fd := range fds {
		kind := "file"
		if i := strings.IndexByte(fd.Target, ':'); i > 0 && !strings.HasPrefix(fd.Target, "/") {
			kind = fd.Target[:i]
		}
		kinds[kind]++
	}
	return kinds
}

// ProcessStatus is what /proc/<pid>/status says about a process's memory and
// threads.
type ProcessStatus struct {
	RSS     int64 // VmRSS, bytes resident now
	PeakRSS int64 // VmHWM, the most that was ever resident
	Threads int
}

// ReadProcessStatus parses /proc/<pid>/status.
func ReadProcessStatus(pid int) (ProcessStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcessStatus{}, err
	}
	defer f.Close()
	var status ProcessStatus
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			status.RSS = n << 10 // the kernel reports kB
		case "VmHWM":
			status.PeakRSS = n << 10
		case "Threads":
			status.Threads = int(n)
		}
	}
	return status, scanner.Err()
}

// ZombieChildren lists the children of pid that have exited and wait to be
// reaped. A shim's zombie children are its own fault: it is their reaper.
func ZombieChildren(pid int) ([]int, error) {
	procs, err := AllProcesses()
	if err != nil {
		return nil, err
	}
	var zombies []int
	for _, p := range procs {
		if p.PPID == pid && p.IsZombie() {
			zombies = append(zombies, p.PID)
		}
	}
	return zombies, nil
}

// MiB formats a byte count for a failure message or a report.
func MiB(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

// ListeningSockets returns the paths of the unix sockets pid listens on: its
// socket descriptors, matched by inode against /proc/net/unix, where a bound
// socket shows its path. For a shim, that is the socket containerd dials;
// reading it from the process works for every shim, whatever it wrote into
// the bundle.
func ListeningSockets(pid int) ([]string, error) {
	fds, err := OpenFDs(pid)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if inode, ok := strings.CutPrefix(fd.Target, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return nil, err
	}
	const listening = 0x10000 // __SO_ACCEPTCON in the Flags column
	var paths []string
	for _, line := range strings.Split(string(data), "\n")[1:] {
		// Num RefCount Protocol Flags Type St Inode Path
		fields := strings.Fields(line)
		if len(fields) < 8 || !inodes[fields[6]] {
			continue
		}
		flags, err := strconv.ParseUint(fields[3], 16, 32)
		if err != nil || flags&listening == 0 {
			continue
		}
		paths = append(paths, fields[7])
	}
	return paths, nil
}

// InotifyWatch is one file an inotify descriptor watches: its inode and the
// device of its filesystem.
type InotifyWatch struct {
	Inode        uint64
	Major, Minor uint32
}

func (w InotifyWatch) String() string {
	return fmt.Sprintf("inode %d on %d:%d", w.Inode, w.Major, w.Minor)
}

// InotifyWatches lists what pid's inotify descriptors watch, from their
// fdinfo: one "inotify wd:1 ino:1f sdev:1c ..." line per watch, the inode
// and the kernel's device number in hex.
func InotifyWatches(pid int) ([]InotifyWatch, error) {
	var watches []InotifyWatch
	err := fdinfoLines(pid, "anon_inode:inotify", func(line string) {
		if w, ok := parseInotifyLine(line); ok {
			watches = append(watches, w)
		}
	})
	return watches, err
}

// parseInotifyLine reads one watch of an inotify fdinfo. sdev is the
// kernel's own dev_t: the major number above the low 20 bits, the minor in
// them.
func parseInotifyLine(line string) (InotifyWatch, bool) {
	if !strings.HasPrefix(line, "inotify ") {
		return InotifyWatch{}, false
	}
	fields := map[string]uint64{}
	for _, field := range strings.Fields(line)[1:] {
		name, value, ok := strings.Cut(field, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(value, 16, 64); err == nil {
			fields[name] = n
		}
	}
	ino, hasIno := fields["ino"]
	sdev, hasDev := fields["sdev"]
	if !hasIno || !hasDev {
		return InotifyWatch{}, false
	}
	return InotifyWatch{Inode: ino, Major: uint32(sdev >> 20), Minor: uint32(sdev & 0xfffff)}, true
}

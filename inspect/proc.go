package inspect

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// procRoot is where the kernel shows its processes.
const procRoot = "/proc"

// hostPID is the process whose namespaces count as the host's.
const hostPID = 1

// procStatus is what inspect reads from /proc/<pid>/status.
type procStatus struct {
	Name  string
	State string // "S (sleeping)", "Z (zombie)", ...
	PPID  int
	// NSPID lists the process's pid in each pid namespace it is in, from
	// the host's down to its own: [24628 1] is pid 1 of a container.
	NSPID  []int
	RSSKiB int64
}

func (s procStatus) zombie() bool {
	return strings.HasPrefix(s.State, "Z") || strings.HasPrefix(s.State, "X")
}

// parseStatus reads the "Key:\tvalue" lines of /proc/<pid>/status that
// inspect needs. Name and PPid must be there; the others are optional
// (NSpid is missing before Linux 4.1, VmRSS in a zombie).
func parseStatus(data []byte) (procStatus, error) {
	var s procStatus
	seen := map[string]bool{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		var err error
		switch key {
		case "Name":
			s.Name = value
		case "State":
			s.State = value
		case "PPid":
			s.PPID, err = strconv.Atoi(value)
		case "NSpid":
			s.NSPID, err = parseInts(value)
		case "VmRSS":
			s.RSSKiB, err = strconv.ParseInt(strings.TrimSuffix(value, " kB"), 10, 64)
		default:
			continue
		}
		if err != nil {
			return procStatus{}, fmt.Errorf("status line %s: %w", key, err)
		}
		seen[key] = true
	}
	if err := scanner.Err(); err != nil {
		return procStatus{}, err
	}
	if !seen["Name"] || !seen["PPid"] {
		return procStatus{}, fmt.Errorf("status has no Name or PPid line")
	}
	return s, nil
}

func parseInts(s string) ([]int, error) {
	var ints []int
	for _, field := range strings.Fields(s) {
		n, err := strconv.Atoi(field)
		if err != nil {
			return nil, err
		}
		ints = append(ints, n)
	}
	return ints, nil
}

func procPath(pid int, name string) string { return fmt.Sprintf("%s/%d/%s", procRoot, pid, name) }

func readStatus(pid int) (procStatus, error) {
	data, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return procStatus{}, err
	}
	s, err := parseStatus(data)
	if err != nil {
		return procStatus{}, fmt.Errorf("/proc/%d/%w", pid, err)
	}
	return s, nil
}

// cmdline is a process's arguments; a zombie or kernel thread has none.
func cmdline(pid int) []string {
	data, err := os.ReadFile(procPath(pid, "cmdline"))
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// allPIDs lists the processes in /proc, in order.
func allPIDs() ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// processTable reads the status of every process, skipping those that exit
// while it reads.
func processTable() (map[int]procStatus, error) {
	pids, err := allPIDs()
	if err != nil {
		return nil, err
	}
	table := make(map[int]procStatus, len(pids))
	for _, pid := range pids {
		if s, err := readStatus(pid); err == nil {
			table[pid] = s
		}
	}
	return table, nil
}

// containerProcesses lists the container's processes as a tree. The roots
// are the shim's children that live in the container's cgroup: its init
// process and the exec processes (runc exec starts them as the shim's
// children, next to init, not under it). Below them, all their descendants.
// With the shim gone, only init and its descendants are found.
func containerProcesses(c *container) ([]Process, error) {
	table, err := processTable()
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for pid, s := range table {
		children[s.PPID] = append(children[s.PPID], pid)
	}
	for _, kids := range children {
		sort.Ints(kids)
	}
	roots := []int{c.initPID}
	initCgroup, _ := os.ReadFile(procPath(c.initPID, "cgroup"))
	for _, pid := range children[c.shimPID] {
		if pid == c.initPID || c.shimPID == 0 {
			continue
		}
		if cg, err := os.ReadFile(procPath(pid, "cgroup")); err == nil && bytes.Equal(cg, initCgroup) {
			roots = append(roots, pid)
		}
	}
	var procs []Process
	var walk func(pid, depth int, role string)
	walk = func(pid, depth int, role string) {
		s := table[pid]
		p := Process{PID: pid, PPID: s.PPID, Depth: depth, Role: role, Name: s.Name, State: s.State, Args: cmdline(pid)}
		if len(s.NSPID) > 0 {
			p.NSPID = s.NSPID[len(s.NSPID)-1]
		}
		procs = append(procs, p)
		for _, child := range children[pid] {
			walk(child, depth+1, "")
		}
	}
	for _, pid := range roots {
		role := "exec"
		if pid == c.initPID {
			role = "init"
		}
		if _, ok := table[pid]; ok {
			walk(pid, 1, role)
		}
	}
	return procs, nil
}

// describeShim is the shim's place in the process tree.
func describeShim(c *container) Shim {
	s := Shim{PID: c.shimPID, Socket: c.socket, Args: cmdline(c.shimPID)}
	if st, err := readStatus(c.shimPID); err == nil {
		s.PPID, s.RSSKiB = st.PPID, st.RSSKiB
		if parent, err := readStatus(st.PPID); err == nil {
			s.ParentName = parent.Name
		}
	}
	if stat, err := os.ReadFile(procPath(c.shimPID, "stat")); err == nil {
		s.SessionLeader = sessionID(stat) == c.shimPID
	}
	return s
}

// sessionID is field 6 of /proc/<pid>/stat. The command name (field 2) may
// hold spaces and parentheses, so fields are counted from the last ')'.
func sessionID(stat []byte) int {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return -1
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 4 {
		return -1
	}
	sid, err := strconv.Atoi(fields[3])
	if err != nil {
		return -1
	}
	return sid
}

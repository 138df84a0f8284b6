package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ProcessInfo is what /proc/<pid>/stat says about a process's place in the
// tree: who its parent is, which session it leads, and whether it is a zombie.
type ProcessInfo struct {
	PID     int
	Command string // the kernel's short name (comm), at most 15 bytes
	State   byte   // R, S, D, Z (zombie), ...
	PPID    int
	PGID    int
	SID     int // session id; a process that called setsid has SID == PID
	// Started is when the process started, in clock ticks after boot
	// (stat field 22): with the pid, it names one process, where a pid
	// alone may since have been given to another.
	Started uint64
}

// IsZombie reports whether the process has exited and waits to be reaped.
// On this machine PID 1 reaps orphans seconds late, so a killed shim stays a
// zombie for a while: it is dead, but still listed.
func (p ProcessInfo) IsZombie() bool { return p.State == 'Z' }

// ReadProcess parses /proc/<pid>/stat.
func ReadProcess(pid int) (ProcessInfo, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcessInfo{}, err
	}
	return parseStat(pid, data)
}

// parseStat reads "pid (comm) state ppid pgrp session ...". comm can hold
// spaces and parentheses, so the fields after it are found from the last ')'.
func parseStat(pid int, data []byte) (ProcessInfo, error) {
	openParen, closeParen := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if openParen < 0 || closeParen < openParen {
		return ProcessInfo{}, fmt.Errorf("/proc/%d/stat: unexpected format %q", pid, data)
	}
	fields := strings.Fields(string(data[closeParen+1:]))
	if len(fields) < 4 {
		return ProcessInfo{}, fmt.Errorf("/proc/%d/stat: too few fields %q", pid, data)
	}
	info := ProcessInfo{PID: pid, Command: string(data[openParen+1 : closeParen]), State: fields[0][0]}
	for i, dst := range []*int{&info.PPID, &info.PGID, &info.SID} {
		n, err := strconv.Atoi(fields[i+1])
		if err != nil {
			return ProcessInfo{}, fmt.Errorf("/proc/%d/stat field %d: %w", pid, i+4, err)
		}
		*dst = n
	}
	if len(fields) > 19 {
		info.Started, _ = strconv.ParseUint(fields[19], 10, 64)
	}
	return info, nil
}

// StillRunning reports whether the process seen as then still runs: its pid
// is alive, not a zombie, and started when then did. Over thousands of
// cycles the kernel hands the same pids out again, to processes that are
// none of the test's.
func StillRunning(then ProcessInfo) bool {
	now, err := ReadProcess(then.PID)
	return err == nil && !now.IsZombie() && now.Started == then.Started
}

// ParentPID returns the parent of pid.
func ParentPID(pid int) (int, error) {
	info, err := ReadProcess(pid)
	return info.PPID, err
}

// Cmdline returns the arguments a process was started with.
func Cmdline(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), nil
}

// Executable returns the path of the binary a process runs. It names the
// shim reliably where comm would be cut to 15 bytes ("containerd-shim").
func Executable(pid int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
}

// AllProcesses lists every process visible in /proc. Processes that exit
// while the list is read are skipped.
func AllProcesses() ([]ProcessInfo, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var procs []ProcessInfo
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		if info, err := ReadProcess(pid); err == nil {
			procs = append(procs, info)
		}
	}
	return procs, nil
}

// Children lists the pids whose parent is pid.
func Children(pid int) ([]int, error) {
	procs, err := AllProcesses()
	if err != nil {
		return nil, err
	}
	var children []int
	for _, p := range procs {
		if p.PPID == pid {
			children = append(children, p.PID)
		}
	}
	return children, nil
}

// IsAlive reports whether pid runs. A zombie counts as exited: it has been
// killed, only its reaping (by a late PID 1) is pending.
func IsAlive(pid int) bool {
	info, err := ReadProcess(pid)
	return err == nil && !info.IsZombie()
}

// ShimsOf lists the live shim processes a daemon started: every shim gets
// the daemon's socket as `-address <path>` on its command line, which is how
// a shim left behind by one daemon is told apart from another daemon's.
func ShimsOf(address string) ([]int, error) {
	procs, err := AllProcesses()
	if err != nil {
		return nil, err
	}
	var shims []int
	for _, p := range procs {
		if p.IsZombie() {
			continue
		}
		args, err := Cmdline(p.PID)
		if err == nil && hasFlag(args, "-address", address) {
			shims = append(shims, p.PID)
		}
	}
	return shims, nil
}

func hasFlag(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// DescribeProcess is a one-line summary for failure messages.
func DescribeProcess(pid int) string {
	info, err := ReadProcess(pid)
	if err != nil {
		return fmt.Sprintf("pid %d: %v", pid, err)
	}
	exe, _ := Executable(pid)
	args, _ := Cmdline(pid)
	return fmt.Sprintf("pid %d ppid %d sid %d state %c exe %s args %q",
		pid, info.PPID, info.SID, info.State, filepath.Base(exe), args)
}

// LogProcessForest logs `ps -ef --forest`, the picture a person would look at
// to see which shim holds which container.
func LogProcessForest(t testing.TB) {
	t.Helper()
	out, err := exec.Command("ps", "-ef", "--forest").CombinedOutput()
	if err != nil {
		t.Logf("ps -ef --forest: %v", err)
	}
	t.Logf("ps -ef --forest:\n%s", out)
}

// ShimsServing lists the live shims a daemon started that serve container
// id: containerd starts a shim with `-id <id>` for the first container it
// serves (a pod's shim is named after its sandbox).
func ShimsServing(address, id string) ([]int, error) {
	shims, err := ShimsOf(address)
	if err != nil {
		return nil, err
	}
	var serving []int
	for _, pid := range shims {
		if args, err := Cmdline(pid); err == nil && hasFlag(args, "-id", id) {
			serving = append(serving, pid)
		}
	}
	return serving, nil
}

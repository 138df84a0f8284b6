package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// What a run can leave behind once the suite has exited, and how it is
// found. Shims and daemons are in the run's mount namespace: any process
// still in it was started by the run. A container has a mount namespace of
// its own, but its cgroup is named after the containerd namespace it is
// in, /NAMESPACE/<container id>, and the suite's namespaces are "testing"
// (its testNamespace) and "testing-<test>". The two runtimes' runs use the
// same names, so a container left by the first, or its cgroup, would be in
// the way of the second.

// suiteCgroup is the name of the suite's namespaces, and of the cgroups of
// their containers: /testing/ID, /testing-TEST/ID. A run starts only when
// no process is in one, so whatever is in one after the run, the run
// started.
const suiteCgroup = "testing"

// isSuiteCgroup says whether a cgroup path is one of the suite's namespaces
// or below one.
func isSuiteCgroup(path string) bool {
	top, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return top == suiteCgroup || strings.HasPrefix(top, suiteCgroup+"-")
}

// killLeftovers SIGKILLs, by pid, every process still in the run's mount
// namespace and every process in a cgroup of the suite, then removes the
// suite's cgroups, and says what it killed.
func killLeftovers(namespace string) []string {
	var killed []string
	for _, pid := range allPids() {
		why := ""
		if namespace != "" {
			if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns == namespace {
				why = "in the run's mount namespace"
			}
		}
		if cgroup := suiteCgroupOf(pid); cgroup != "" {
			why = "in the cgroup " + cgroup
		}
		if why == "" {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		syscall.Kill(pid, syscall.SIGKILL)
		killed = append(killed, fmt.Sprintf("pid %d %s: %s", pid, why, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
	}
	removeSuiteCgroups()
	return killed
}

func allPids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, entry := range entries {
		if pid, err := strconv.Atoi(entry.Name()); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// checkNoSuiteContainers refuses to start while a process is in a cgroup
// of the suite: a container this run did not start, whose names the run's
// containers would take. It is left alone, and named.
func checkNoSuiteContainers() error {
	var found []string
	for _, pid := range allPids() {
		if cgroup := suiteCgroupOf(pid); cgroup != "" {
			found = append(found, fmt.Sprintf("pid %d in %s", pid, cgroup))
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("processes are in the cgroups of the suite's containers (/%s, /%s-*): %s; "+
			"containers of another run of containerd's suite? Stop them first", suiteCgroup, suiteCgroup, strings.Join(found, ", "))
	}
	return nil
}

// suiteCgroupOf returns the process's cgroup if it is one of the suite's.
// /proc/PID/cgroup has one line per hierarchy, "ID:CONTROLLERS:PATH".
func suiteCgroupOf(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.SplitN(line, ":", 3)
		if len(fields) == 3 && isSuiteCgroup(fields[2]) {
			return fields[2]
		}
	}
	return ""
}

// removeSuiteCgroups removes the suite's cgroup folders, deepest first, in
// each hierarchy (cgroup v1 has one per controller; v2 one). A folder that
// still holds a process stays.
func removeSuiteCgroups() {
	var roots []string
	for _, pattern := range []string{"/sys/fs/cgroup/" + suiteCgroup + "*", "/sys/fs/cgroup/*/" + suiteCgroup + "*"} {
		found, _ := filepath.Glob(pattern)
		roots = append(roots, found...)
	}
	for _, root := range roots {
		if !isSuiteCgroup(root[strings.LastIndex(root, "/"):]) {
			continue // testingfoo: not one of the suite's names
		}
		var folders []string
		filepath.WalkDir(root, func(path string, entry os.DirEntry, err error) error {
			if err == nil && entry.IsDir() {
				folders = append(folders, path)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(folders))) // children before parents
		for _, folder := range folders {
			syscall.Rmdir(folder)
		}
	}
}

// lockPath serializes runs on a machine: two at once would share the
// suite's cgroup names.
const lockPath = "/tmp/containerd-shim-teach-v2-conformance.lock"

// machineLock holds the lock's descriptor open until the process ends: a
// collected *os.File would close it, and unlock.
var machineLock *os.File

// lockMachine waits for any other run to end. The lock goes with the
// process, whichever way it ends.
func lockMachine() error {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	machineLock = f
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return nil
	}
	fmt.Printf("waiting for another conformance run on this machine to end (%s)\n", lockPath)
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
}

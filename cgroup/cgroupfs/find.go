package cgroupfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// V1Folders are a process's cgroup v1 folders, one per hierarchy it is in,
// by the hierarchy's folder name under Root: "memory", "cpu", "systemd"…
type V1Folders map[string]string

// V1FoldersOf finds the cgroup v1 folders of a process, from its
// /proc/<pid>/cgroup ("4:memory:/default/demo", one line per hierarchy).
//
// The paths there are relative to the root of each hierarchy as the process
// sees it, and a hierarchy mounted from a subfolder (a cgroup filesystem
// bound into a container) shows only that subfolder at Root: the mount's
// root, in /proc/self/mountinfo, is taken off the path. A controller that
// is not mounted here has no folder.
func V1FoldersOf(pid int) (V1Folders, error) {
	paths, _, err := procCgroup(pid)
	if err != nil {
		return nil, err
	}
	roots, err := v1MountRootsOfThisHost()
	if err != nil {
		return nil, fmt.Errorf("find the cgroup mounts in /proc/self/mountinfo: %w", err)
	}
	return v1Folders(paths, roots), nil
}

// v1MountRootsOfThisHost reads the roots of the v1 hierarchies once: the
// cgroup filesystems stay where they are while the shim runs, and
// mountinfo grows with every container's rootfs on the host (an overlay
// line can be kilobytes), so reading it for each container would make a
// grouped shim's garbage grow with the square of its containers.
var v1MountRootsOfThisHost = sync.OnceValues(func() (map[string]string, error) {
	mountinfo, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer mountinfo.Close()
	return v1MountRoots(mountinfo)
})

// v1Folders joins each controller's path to its hierarchy's folder, less
// the root of the hierarchy's mount.
func v1Folders(paths, mountRoots map[string]string) V1Folders {
	folders := V1Folders{}
	for controller, path := range paths {
		root, mounted := mountRoots[controller]
		if !mounted {
			continue
		}
		if rel, err := filepath.Rel(root, path); err == nil {
			path = rel
		}
		hierarchy := strings.TrimPrefix(controller, "name=")
		folders[hierarchy] = under(filepath.Join(Root, hierarchy), path)
	}
	return folders
}

// V2FolderOf finds the cgroup v2 folder of a process: the "0::/path" line
// of its /proc/<pid>/cgroup.
func V2FolderOf(pid int) (string, error) {
	_, path, err := procCgroup(pid)
	if err != nil {
		return "", err
	}
	if path == "" {
		return "", fmt.Errorf("/proc/%d/cgroup has no cgroup v2 line (0::/path)", pid)
	}
	return under(Root, path), nil
}

// procCgroup reads /proc/<pid>/cgroup: the path in each v1 hierarchy, by
// controller ("cpu" and "cpuacct" of "2:cpu,cpuacct:/a" both), and the v2
// path (the line whose controllers are empty).
func procCgroup(pid int) (v1 map[string]string, v2 string, err error) {
	file := "/proc/" + strconv.Itoa(pid) + "/cgroup"
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	v1 = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		fields := strings.SplitN(line, ":", 3)
		if len(fields) != 3 {
			return nil, "", fmt.Errorf("%s: line %q is not id:controllers:path", file, line)
		}
		if fields[1] == "" {
			v2 = fields[2]
			continue
		}
		for _, controller := range strings.Split(fields[1], ",") {
			v1[controller] = fields[2]
		}
	}
	return v1, v2, nil
}

// v1MountRoots reads, from mountinfo, the root of each mounted v1 hierarchy
// by controller: the fourth field of a line whose filesystem type is
// "cgroup", for each controller among its super options ("rw,memory",
// "rw,name=systemd"). Usually "/". It reads a line at a time and looks
// only at cgroup lines; a line longer than its buffer (a rootfs with many
// layers) is no cgroup mount, and is skipped.
func v1MountRoots(mountinfo io.Reader) (map[string]string, error) {
	roots := map[string]string{}
	reader := bufio.NewReaderSize(mountinfo, 4096)
	for {
		line, err := reader.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			line = nil
			_, err = reader.ReadSlice('\n')
		}
		// 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
		if bytes.Contains(line, []byte(" - cgroup ")) {
			fields := strings.Fields(string(line))
			if len(fields) >= 10 && fields[len(fields)-3] == "cgroup" {
				for _, option := range strings.Split(fields[len(fields)-1], ",") {
					roots[option] = fields[3]
				}
			}
		}
		if err == io.EOF {
			return roots, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// v1Hierarchies are the folders under Root a v1 host may mount hierarchies
// at, each named after its controller ("systemd" holds no controller: it is
// systemd's own named hierarchy).
var v1Hierarchies = []string{
	"systemd", "freezer", "pids", "net_cls", "net_prio", "perf_event", "cpuset",
	"cpu", "cpuacct", "memory", "blkio", "rdma", "devices", "hugetlb",
}

// AddProcess moves process pid into the cgroup at path (relative to Root,
// as /proc/<pid>/cgroup shows paths), creating nothing. On v1 the process
// joins the path in every hierarchy where it exists.
func AddProcess(path string, pid int) error {
	procs := []byte(strconv.Itoa(pid))
	if Unified() {
		return os.WriteFile(filepath.Join(under(Root, path), "cgroup.procs"), procs, 0)
	}
	joined := 0
	for _, hierarchy := range v1Hierarchies {
		folder := under(filepath.Join(Root, hierarchy), path)
		if _, err := os.Lstat(folder); err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(folder, "cgroup.procs"), procs, 0); err != nil {
			return err
		}
		joined++
	}
	if joined == 0 {
		return fmt.Errorf("cgroup %s exists in no cgroup v1 hierarchy under %s: %w", path, Root, os.ErrNotExist)
	}
	return nil
}

package inspect

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupRoot is where the cgroup filesystems are mounted: the v2 hierarchy
// itself, or one folder per v1 controller.
const cgroupRoot = "/sys/fs/cgroup"

// parseProcCgroup reads /proc/<pid>/cgroup, one "id:controllers:path" line
// per hierarchy: "4:memory:/default/demo" on v1, "0::/default/demo" for v2.
func parseProcCgroup(data []byte) ([]CgroupPath, error) {
	var paths []CgroupPath
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" {
			continue
		}
		fields := strings.SplitN(line, ":", 3)
		if len(fields) != 3 {
			return nil, fmt.Errorf("cgroup line %q is not id:controllers:path", line)
		}
		if _, err := strconv.Atoi(fields[0]); err != nil {
			return nil, fmt.Errorf("cgroup line %q: hierarchy id: %w", line, err)
		}
		paths = append(paths, CgroupPath{Controllers: fields[1], Path: fields[2]})
	}
	return paths, scanner.Err()
}

// cgroupFiles names the files holding memory usage, memory limit and the
// process count. Version 2 keeps them all in the container's one folder;
// version 1 in the folder of each controller's hierarchy.
func cgroupFiles(version int, paths []CgroupPath) (memory, limit, pids string) {
	if version == 2 {
		for _, p := range paths {
			if p.Controllers == "" {
				dir := cgroupDir("", p.Path)
				return filepath.Join(dir, "memory.current"), filepath.Join(dir, "memory.max"), filepath.Join(dir, "pids.current")
			}
		}
		return "", "", ""
	}
	for _, p := range paths {
		for _, controller := range strings.Split(p.Controllers, ",") {
			switch controller {
			case "memory":
				dir := cgroupDir("memory", p.Path)
				memory, limit = filepath.Join(dir, "memory.usage_in_bytes"), filepath.Join(dir, "memory.limit_in_bytes")
			case "pids":
				pids = filepath.Join(cgroupDir("pids", p.Path), "pids.current")
			}
		}
	}
	return memory, limit, pids
}

// cgroupDir is the folder of a cgroup path in a hierarchy (empty for v2).
// The path is cleaned as an absolute one first, so that no ".." in it leads
// out of the cgroup filesystem.
func cgroupDir(hierarchy, path string) string {
	return filepath.Join(cgroupRoot, hierarchy, filepath.Join("/", path))
}

// cgroupVersion is 2 on a host with only the unified hierarchy, 1 when the
// controllers are in v1 hierarchies (even if a unified one is mounted too).
func cgroupVersion() int {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return 2
	}
	return 1
}

// readCgroup reads where pid is accounted and what it uses now.
func readCgroup(pid int) Cgroup {
	cg := Cgroup{Version: cgroupVersion()}
	data, err := os.ReadFile(procPath(pid, "cgroup"))
	if err == nil {
		cg.Paths, err = parseProcCgroup(data)
	}
	if err != nil {
		cg.Errors = append(cg.Errors, err.Error())
		return cg
	}
	memory, limit, pids := cgroupFiles(cg.Version, cg.Paths)
	for _, f := range []struct {
		path string
		dst  *int64
	}{{memory, &cg.MemoryBytes}, {limit, &cg.MemoryLimitBytes}, {pids, &cg.Pids}} {
		if f.path == "" {
			continue
		}
		n, err := readCgroupNumber(f.path)
		if err != nil {
			cg.Errors = append(cg.Errors, err.Error())
			continue
		}
		*f.dst = n
		cg.Files = append(cg.Files, f.path)
	}
	return cg
}

// readCgroupNumber reads a one-number cgroup file. "max" (v2) and the huge
// page-rounded maximum of v1 both mean no limit, reported as 0.
func readCgroupNumber(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseCgroupNumber(string(data))
}

func parseCgroupNumber(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup value %q is not a number: %w", s, err)
	}
	if n >= 1<<62 { // v1's "unlimited": 9223372036854771712
		return 0, nil
	}
	return int64(n), nil
}

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

// cgroupFileSet names the file each figure of the report is read from; a
// name is empty where no hierarchy holds it (a v1 controller not mounted).
type cgroupFileSet struct {
	memory, memoryLimit string
	pids, pidsLimit     string
	cpuMax              string // v2: "<quota> <period>" in one file, quota "max" for none
	cpuQuota, cpuPeriod string // v1: a number each, quota -1 for none
	oomKills            string // a file with an "oom_kill <n>" line
	freezer             string // v2: cgroup.events, a "frozen 0|1" line; v1: freezer.state
}

// all lists the files named.
func (f cgroupFileSet) all() []string {
	return []string{f.memory, f.memoryLimit, f.pids, f.pidsLimit, f.cpuMax, f.cpuQuota, f.cpuPeriod, f.oomKills, f.freezer}
}

// cgroupFiles names the files of a container's cgroup. Version 2 keeps them
// all in the container's one folder; version 1 in the folder of each
// controller's hierarchy.
func cgroupFiles(version int, paths []CgroupPath) cgroupFileSet {
	if version == 2 {
		for _, p := range paths {
			if p.Controllers == "" {
				in := func(name string) string { return filepath.Join(cgroupDir("", p.Path), name) }
				return cgroupFileSet{
					memory: in("memory.current"), memoryLimit: in("memory.max"),
					pids: in("pids.current"), pidsLimit: in("pids.max"),
					cpuMax: in("cpu.max"), oomKills: in("memory.events"), freezer: in("cgroup.events"),
				}
			}
		}
		return cgroupFileSet{}
	}
	var files cgroupFileSet
	for _, p := range paths {
		for _, controller := range strings.Split(p.Controllers, ",") {
			in := func(name string) string { return filepath.Join(cgroupDir(controller, p.Path), name) }
			switch controller {
			case "memory":
				files.memory, files.memoryLimit = in("memory.usage_in_bytes"), in("memory.limit_in_bytes")
				files.oomKills = in("memory.oom_control")
			case "pids":
				files.pids, files.pidsLimit = in("pids.current"), in("pids.max")
			case "cpu":
				files.cpuQuota, files.cpuPeriod = in("cpu.cfs_quota_us"), in("cpu.cfs_period_us")
			case "freezer":
				files.freezer = in("freezer.state")
			}
		}
	}
	return files
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

// readCgroup reads where pid is accounted, what it uses now and its limits.
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
	files := cgroupFiles(cg.Version, cg.Paths)
	r := cgroupReader{cg: &cg}
	r.number(files.memory, &cg.MemoryBytes)
	r.number(files.memoryLimit, &cg.MemoryLimitBytes)
	r.number(files.pids, &cg.Pids)
	r.number(files.pidsLimit, &cg.PidsLimit)
	r.read(files.cpuMax, func(s string) (err error) { cg.CPUQuotaMicros, cg.CPUPeriodMicros, err = parseCPUMax(s); return })
	r.read(files.cpuQuota, func(s string) (err error) { cg.CPUQuotaMicros, err = parseCPUQuota(s); return })
	r.number(files.cpuPeriod, &cg.CPUPeriodMicros)
	r.read(files.oomKills, func(s string) (err error) { cg.OOMKills, err = parseKeyedNumber(s, "oom_kill"); return })
	parseFreezer := parseFreezerState
	if cg.Version == 2 {
		parseFreezer = parseCgroupEventsFrozen
	}
	r.read(files.freezer, func(s string) (err error) { cg.Freezer, err = parseFreezer(s); return })
	if cg.CPUQuotaMicros == 0 {
		cg.CPUPeriodMicros = 0 // a period means nothing without a quota
	}
	return cg
}

// cgroupReader reads the files of one report, noting each file read and
// each that could not be.
type cgroupReader struct{ cg *Cgroup }

// number reads a one-number file into dst.
func (r cgroupReader) number(path string, dst *int64) {
	r.read(path, func(s string) (err error) { *dst, err = parseCgroupNumber(s); return })
}

// read reads the file at path, if the container has it, and parses it.
func (r cgroupReader) read(path string, parse func(string) error) {
	if path == "" {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		r.cg.Errors = append(r.cg.Errors, err.Error())
		return
	}
	if err := parse(string(data)); err != nil {
		r.cg.Errors = append(r.cg.Errors, fmt.Sprintf("%s: %v", path, err))
		return
	}
	r.cg.Files = append(r.cg.Files, path)
}

// parseCgroupNumber reads a one-number cgroup file. "max" (v2) and the
// huge page-rounded maximum of v1 both mean no limit, reported as 0.
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

// parseCPUMax reads v2's cpu.max: the microseconds the cgroup may run in each
// period, and the period; "max 100000" is no limit (quota 0).
func parseCPUMax(s string) (quota, period int64, err error) {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("cpu.max %q is not \"<quota> <period>\"", strings.TrimSpace(s))
	}
	if quota, err = parseCgroupNumber(fields[0]); err != nil {
		return 0, 0, err
	}
	period, err = parseCgroupNumber(fields[1])
	return quota, period, err
}

// parseCPUQuota reads v1's cpu.cfs_quota_us, where -1 is no limit.
func parseCPUQuota(s string) (int64, error) {
	if strings.TrimSpace(s) == "-1" {
		return 0, nil
	}
	return parseCgroupNumber(s)
}

// parseKeyedNumber finds "<key> <n>" among the lines of a flat-keyed cgroup
// file (memory.events, memory.oom_control, cgroup.events).
func parseKeyedNumber(s, key string) (int64, error) {
	for _, line := range strings.Split(s, "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && name == key {
			return parseCgroupNumber(value)
		}
	}
	return 0, fmt.Errorf("no %s line", key)
}

// parseFreezerState reads v1's freezer.state, THAWED, FREEZING or FROZEN,
// as the report's word for it.
func parseFreezerState(s string) (string, error) {
	switch state := strings.TrimSpace(s); state {
	case "THAWED", "FREEZING", "FROZEN":
		return strings.ToLower(state), nil
	default:
		return "", fmt.Errorf("freezer state %q is none of THAWED, FREEZING, FROZEN", state)
	}
}

// parseCgroupEventsFrozen reads v2's cgroup.events, whose "frozen 1" the
// kernel writes once every process of the cgroup has stopped.
func parseCgroupEventsFrozen(s string) (string, error) {
	frozen, err := parseKeyedNumber(s, "frozen")
	if err != nil {
		return "", err
	}
	if frozen == 1 {
		return "frozen", nil
	}
	return "thawed", nil
}

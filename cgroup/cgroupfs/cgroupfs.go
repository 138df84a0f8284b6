// Package cgroupfs reads a container's cgroup from the files the kernel shows
// under /sys/fs/cgroup, into containerd's metrics types (the cgroup v1 and v2
// Metrics of containerd/cgroups/v3, what `ctr task metrics`, the CRI plugin
// and `docker stats` decode), and moves a process into a cgroup.
//
// Why not containerd/cgroups/v3 itself: its cgroup1 and cgroup2 packages
// are managers that also create cgroups, set limits, install eBPF device
// filters and talk to systemd over D-Bus, and linking them links
// cilium/ebpf, debug/elf, zstd and godbus: about 0.9 MB of code the shim
// never runs (runc sets the limits; the shim only reads). An idle shim has
// nearly every page of its binary resident, so that code cost each shim
// about 0.8 MiB of RSS. The stats types are plain protobuf messages and stay
// imported. The tests compare this package's metrics with the library's, on
// real cgroups and on folders of files copied from real cgroups.
//
// Every file read here is documented in the kernel's cgroup-v1 and
// cgroup-v2 documentation; the shape of the result (which files fill which
// fields, what a missing file leaves) follows the library, so that a client
// sees the same metrics from this shim as from the stock one.
package cgroupfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Root is where the cgroup filesystems are mounted: the v2 hierarchy itself,
// or one folder per v1 hierarchy (memory, cpu…).
const Root = "/sys/fs/cgroup"

// Unified reports whether the host has cgroup v2 alone: Root is then a
// cgroup2 filesystem. A hybrid host (v1 controllers, and a v2 hierarchy
// without them at Root/unified) counts as v1: its controllers are there.
func Unified() bool {
	var fs unix.Statfs_t
	return unix.Statfs(Root, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC
}

// errInvalidLine is a line of a cgroup file that is not in the file's
// format: the kernel and the reader disagree, and a metric read from it
// would be wrong.
var errInvalidLine = errors.New("line is not in the cgroup file's format")

// readFlatKeyed reads a file of "key value" lines (memory.stat, cpu.stat,
// memory.events…), as the kernel's documentation calls a "flat keyed" file.
func readFlatKeyed(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	values := make(map[string]uint64, 64)
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		key, value, err := parseKeyValue(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		values[key] = value
	}
	return values, nil
}

func parseKeyValue(line string) (string, uint64, error) {
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return "", 0, errInvalidLine
	}
	value, err := parseCounter(fields[1])
	return fields[0], value, err
}

// parseCounter parses a counter, taking a negative value as 0: some kernels
// let a counter such as memory.stat's dirty go below zero for a moment.
func parseCounter(s string) (uint64, error) {
	value, err := strconv.ParseUint(s, 10, 64)
	if err == nil {
		return value, nil
	}
	if strings.HasPrefix(s, "-") {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			return 0, nil
		}
	}
	return 0, err
}

// readSingleValue reads a file holding one number, or "max" for no limit,
// which becomes noLimit: v1 reports it as 0, v2 as the largest uint64.
func readSingleValue(path string, noLimit uint64) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	text := string(bytes.TrimSpace(data))
	if text == "max" {
		return noLimit, nil
	}
	return parseCounter(text)
}

// hugePageSizes are the huge page sizes of the host, as the hugetlb
// controller names them in its files: "1GB", "2MB", in the order of the
// folders of /sys/kernel/mm/hugepages. They are read once: they do not
// change while the system runs.
var hugePageSizes = sync.OnceValue(func() []string {
	entries, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		return nil
	}
	var sizes []string
	for _, entry := range entries {
		// hugepages-2048kB
		kB, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(entry.Name(), "hugepages-"), "kB"), 10, 64)
		if err != nil {
			continue
		}
		switch {
		case kB >= 1<<20:
			sizes = append(sizes, strconv.FormatUint(kB>>20, 10)+"GB")
		case kB >= 1<<10:
			sizes = append(sizes, strconv.FormatUint(kB>>10, 10)+"MB")
		default:
			sizes = append(sizes, strconv.FormatUint(kB, 10)+"KB")
		}
	}
	return sizes
})

// noLimitV2 is how a v2 "max" reads in the metrics.
const noLimitV2 = math.MaxUint64

// rdmaEntries reads rdma.current or rdma.max: one line per device,
// "mlx4_0 hca_handle=2 hca_object=2000"; "max" is the largest uint32.
func rdmaEntries(data []byte) []rdmaEntry {
	var entries []rdmaEntry
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 3 {
			continue
		}
		entry := rdmaEntry{device: fields[0]}
		for _, field := range fields[1:] {
			key, text, _ := strings.Cut(field, "=")
			value := uint64(math.MaxUint32)
			if text != "max" {
				v, err := parseCounter(text)
				if err != nil || v > math.MaxUint32 {
					continue
				}
				value = v
			}
			switch key {
			case "hca_handle":
				entry.handles = uint32(value)
			case "hca_object":
				entry.objects = uint32(value)
			}
		}
		entries = append(entries, entry)
	}
	return entries
}

// rdmaEntry is one device's line of an rdma file, before it becomes the
// v1 or v2 type (the two are the same message in two packages).
type rdmaEntry struct {
	device           string
	handles, objects uint32
}

// under joins a cgroup path, as /proc/<pid>/cgroup or an operator gives it,
// to a hierarchy's folder; the path is cleaned as an absolute one first, so
// that no ".." in it leads out of the cgroup filesystem.
func under(hierarchy, path string) string {
	return filepath.Join(hierarchy, filepath.Join("/", path))
}

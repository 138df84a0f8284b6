package cgroupfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
)

// V2Metrics reads the metrics of a cgroup v2 cgroup from its folder. A
// controller not enabled for the cgroup has no files there: its part of
// the metrics stays zero (hugetlb: zero for each page size), or is left out
// (memory events, pressure stall information).
func V2Metrics(folder string) (*v2.Metrics, error) {
	if _, err := os.Lstat(folder); err != nil {
		return nil, fmt.Errorf("the cgroup's folder is gone (the container's cgroup was removed): %w", err)
	}
	metrics := &v2.Metrics{
		Pids: &v2.PidsStat{
			Current: readV2Value(folder, "pids.current"),
			Limit:   readV2Value(folder, "pids.max"),
		},
		Io: &v2.IOStat{Usage: readV2IO(folder), PSI: readPressure(filepath.Join(folder, "io.pressure"))},
		Rdma: &v2.RdmaStat{
			Current: readV2Rdma(filepath.Join(folder, "rdma.current")),
			Limit:   readV2Rdma(filepath.Join(folder, "rdma.max")),
		},
		Hugetlb: readV2Hugetlb(folder),
	}
	var err error
	if metrics.CPU, err = readV2CPU(folder); err != nil {
		return nil, err
	}
	if metrics.Memory, err = readV2Memory(folder); err != nil {
		return nil, err
	}
	if metrics.MemoryEvents, err = readV2MemoryEvents(folder); err != nil {
		return nil, err
	}
	return metrics, nil
}

// readV2Value reads a file of one value; a missing or unreadable one counts
// as 0, as it does for the stock shim.
func readV2Value(folder, file string) uint64 {
	value, _ := readSingleValue(filepath.Join(folder, file), noLimitV2)
	return value
}

// readV2FlatKeyed reads a flat keyed file of the cgroup; a missing one is
// no values.
func readV2FlatKeyed(folder, file string) (map[string]uint64, error) {
	values, err := readFlatKeyed(filepath.Join(folder, file))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return values, err
}

func readV2CPU(folder string) (*v2.CPUStat, error) {
	stat, err := readV2FlatKeyed(folder, "cpu.stat")
	if stat == nil {
		return &v2.CPUStat{}, err
	}
	return &v2.CPUStat{
		UsageUsec:     stat["usage_usec"],
		UserUsec:      stat["user_usec"],
		SystemUsec:    stat["system_usec"],
		NrPeriods:     stat["nr_periods"],
		NrThrottled:   stat["nr_throttled"],
		ThrottledUsec: stat["throttled_usec"],
		NrBursts:      stat["nr_bursts"],
		BurstUsec:     stat["burst_usec"],
		PSI:           readPressure(filepath.Join(folder, "cpu.pressure")),
	}, nil
}

func readV2Memory(folder string) (*v2.MemoryStat, error) {
	stat, err := readV2FlatKeyed(folder, "memory.stat")
	if stat == nil {
		return &v2.MemoryStat{}, err
	}
	return &v2.MemoryStat{
		Anon:                  stat["anon"],
		File:                  stat["file"],
		KernelStack:           stat["kernel_stack"],
		Slab:                  stat["slab"],
		Sock:                  stat["sock"],
		Shmem:                 stat["shmem"],
		FileMapped:            stat["file_mapped"],
		FileDirty:             stat["file_dirty"],
		FileWriteback:         stat["file_writeback"],
		AnonThp:               stat["anon_thp"],
		InactiveAnon:          stat["inactive_anon"],
		ActiveAnon:            stat["active_anon"],
		InactiveFile:          stat["inactive_file"],
		ActiveFile:            stat["active_file"],
		Unevictable:           stat["unevictable"],
		SlabReclaimable:       stat["slab_reclaimable"],
		SlabUnreclaimable:     stat["slab_unreclaimable"],
		Pgfault:               stat["pgfault"],
		Pgmajfault:            stat["pgmajfault"],
		WorkingsetRefault:     stat["workingset_refault"],
		WorkingsetActivate:    stat["workingset_activate"],
		WorkingsetNodereclaim: stat["workingset_nodereclaim"],
		Pgrefill:              stat["pgrefill"],
		Pgscan:                stat["pgscan"],
		Pgsteal:               stat["pgsteal"],
		Pgactivate:            stat["pgactivate"],
		Pgdeactivate:          stat["pgdeactivate"],
		Pglazyfree:            stat["pglazyfree"],
		Pglazyfreed:           stat["pglazyfreed"],
		ThpFaultAlloc:         stat["thp_fault_alloc"],
		ThpCollapseAlloc:      stat["thp_collapse_alloc"],
		Usage:                 readV2Value(folder, "memory.current"),
		UsageLimit:            readV2Value(folder, "memory.max"),
		MaxUsage:              readV2Value(folder, "memory.peak"),
		SwapUsage:             readV2Value(folder, "memory.swap.current"),
		SwapLimit:             readV2Value(folder, "memory.swap.max"),
		SwapMaxUsage:          readV2Value(folder, "memory.swap.peak"),
		PSI:                   readPressure(filepath.Join(folder, "memory.pressure")),
	}, nil
}

// readV2MemoryEvents reads memory.events: how often the cgroup reached
// memory.high and memory.max, and the OOM killer's work in it.
func readV2MemoryEvents(folder string) (*v2.MemoryEvents, error) {
	events, err := readV2FlatKeyed(folder, "memory.events")
	if len(events) == 0 {
		return nil, err
	}
	return &v2.MemoryEvents{
		Low:          events["low"],
		High:         events["high"],
		Max:          events["max"],
		Oom:          events["oom"],
		OomKill:      events["oom_kill"],
		OomGroupKill: events["oom_group_kill"],
	}, nil
}

// readV2IO reads io.stat, one line per device:
// "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0".
func readV2IO(folder string) []*v2.IOEntry {
	data, err := os.ReadFile(filepath.Join(folder, "io.stat"))
	if err != nil {
		return nil
	}
	var entries []*v2.IOEntry
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(line, " ")
		majorText, minorText, ok := strings.Cut(fields[0], ":")
		if len(fields) < 2 || !ok {
			continue
		}
		major, errMajor := strconv.ParseUint(majorText, 10, 64)
		minor, errMinor := strconv.ParseUint(minorText, 10, 64)
		if errMajor != nil || errMinor != nil {
			break
		}
		entry := &v2.IOEntry{Major: major, Minor: minor}
		for _, field := range fields[1:] {
			key, text, _ := strings.Cut(field, "=")
			value, err := strconv.ParseUint(text, 10, 64)
			if err != nil {
				continue
			}
			switch key {
			case "rbytes":
				entry.Rbytes = value
			case "wbytes":
				entry.Wbytes = value
			case "rios":
				entry.Rios = value
			case "wios":
				entry.Wios = value
			}
		}
		entries = append(entries, entry)
	}
	return entries
}

func readV2Rdma(path string) []*v2.RdmaEntry {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var entries []*v2.RdmaEntry
	for _, entry := range rdmaEntries(data) {
		entries = append(entries, &v2.RdmaEntry{Device: entry.device, HcaHandles: entry.handles, HcaObjects: entry.objects})
	}
	return entries
}

// readV2Hugetlb reads, for each huge page size, its usage, limit and how
// often the limit refused a page (the "max" line of hugetlb.<size>.events).
func readV2Hugetlb(folder string) []*v2.HugeTlbStat {
	var stats []*v2.HugeTlbStat
	for _, size := range hugePageSizes() {
		events, _ := readFlatKeyed(filepath.Join(folder, "hugetlb."+size+".events"))
		stats = append(stats, &v2.HugeTlbStat{
			Current:  readV2Value(folder, "hugetlb."+size+".current"),
			Max:      readV2Value(folder, "hugetlb."+size+".max"),
			Pagesize: size,
			Failcnt:  events["max"],
		})
	}
	return stats
}

// readPressure reads a pressure stall information file (cpu.pressure…):
// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0", and a "full" line. A
// kernel without PSI has no file, or fails its read: no PSI then.
func readPressure(path string) *v2.PSIStats {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	psi := &v2.PSIStats{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var stall *v2.PSIData
		switch fields[0] {
		case "some":
			psi.Some = &v2.PSIData{}
			stall = psi.Some
		case "full":
			psi.Full = &v2.PSIData{}
			stall = psi.Full
		default:
			continue
		}
		if !parsePressure(fields[1:], stall) {
			return nil
		}
	}
	return psi
}

func parsePressure(fields []string, stall *v2.PSIData) bool {
	for _, field := range fields {
		key, text, ok := strings.Cut(field, "=")
		if !ok {
			return false
		}
		var err error
		switch key {
		case "avg10":
			stall.Avg10, err = strconv.ParseFloat(text, 64)
		case "avg60":
			stall.Avg60, err = strconv.ParseFloat(text, 64)
		case "avg300":
			stall.Avg300, err = strconv.ParseFloat(text, 64)
		case "total":
			stall.Total, err = strconv.ParseUint(text, 10, 64)
		}
		if err != nil {
			return false
		}
	}
	return true
}

package cgroupfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
)

// v1Readers fill the metrics from each v1 hierarchy's folder.
var v1Readers = []struct {
	hierarchy string
	read      func(folder string, metrics *v1.Metrics) error
}{
	{"memory", readV1Memory},
	{"cpu", readV1Throttling},
	{"cpuacct", readV1CPUUsage},
	{"pids", readV1Pids},
	{"blkio", readV1Blkio},
	{"hugetlb", readV1Hugetlb},
	{"rdma", readV1Rdma},
}

// V1Metrics reads the metrics of a cgroup v1 cgroup from its folders. A
// hierarchy the cgroup is not in leaves its part of the metrics out; a file
// this kernel does not have (memory.memsw.* without swap accounting) ends
// that hierarchy's part where it is, with what was read before it.
func V1Metrics(folders V1Folders) (*v1.Metrics, error) {
	metrics := &v1.Metrics{CPU: &v1.CPUStat{Throttling: &v1.Throttle{}, Usage: &v1.CPUUsage{}}}
	found := false
	for _, reader := range v1Readers {
		folder, ok := folders[reader.hierarchy]
		if !ok {
			continue
		}
		if _, err := os.Lstat(folder); err != nil {
			continue
		}
		found = true
		if err := reader.read(folder, metrics); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read the %s cgroup %s: %w", reader.hierarchy, folder, err)
		}
	}
	if !found {
		return nil, fmt.Errorf("the cgroup's folders are gone (the container's cgroup was removed): %w", fs.ErrNotExist)
	}
	return metrics, nil
}

func readV1Memory(folder string, metrics *v1.Metrics) error {
	stat, err := readFlatKeyed(filepath.Join(folder, "memory.stat"))
	if err != nil {
		return err
	}
	memory := &v1.MemoryStat{
		Cache:                   stat["cache"],
		RSS:                     stat["rss"],
		RSSHuge:                 stat["rss_huge"],
		MappedFile:              stat["mapped_file"],
		Dirty:                   stat["dirty"],
		Writeback:               stat["writeback"],
		PgPgIn:                  stat["pgpgin"],
		PgPgOut:                 stat["pgpgout"],
		PgFault:                 stat["pgfault"],
		PgMajFault:              stat["pgmajfault"],
		InactiveAnon:            stat["inactive_anon"],
		ActiveAnon:              stat["active_anon"],
		InactiveFile:            stat["inactive_file"],
		ActiveFile:              stat["active_file"],
		Unevictable:             stat["unevictable"],
		HierarchicalMemoryLimit: stat["hierarchical_memory_limit"],
		HierarchicalSwapLimit:   stat["hierarchical_memsw_limit"],
		TotalCache:              stat["total_cache"],
		TotalRSS:                stat["total_rss"],
		TotalRSSHuge:            stat["total_rss_huge"],
		TotalMappedFile:         stat["total_mapped_file"],
		TotalDirty:              stat["total_dirty"],
		TotalWriteback:          stat["total_writeback"],
		TotalPgPgIn:             stat["total_pgpgin"],
		TotalPgPgOut:            stat["total_pgpgout"],
		TotalPgFault:            stat["total_pgfault"],
		TotalPgMajFault:         stat["total_pgmajfault"],
		TotalInactiveAnon:       stat["total_inactive_anon"],
		TotalActiveAnon:         stat["total_active_anon"],
		TotalInactiveFile:       stat["total_inactive_file"],
		TotalActiveFile:         stat["total_active_file"],
		TotalUnevictable:        stat["total_unevictable"],
		Usage:                   &v1.MemoryEntry{},
		Swap:                    &v1.MemoryEntry{},
		Kernel:                  &v1.MemoryEntry{},
		KernelTCP:               &v1.MemoryEntry{},
	}
	metrics.Memory = memory
	oom, err := readFlatKeyed(filepath.Join(folder, "memory.oom_control"))
	if err != nil {
		return err
	}
	metrics.MemoryOomControl = &v1.MemoryOomControl{
		OomKillDisable: oom["oom_kill_disable"],
		UnderOom:       oom["under_oom"],
		OomKill:        oom["oom_kill"],
	}
	// The same four files for the memory the cgroup uses, with swap
	// (memsw), in the kernel (kmem) and in TCP buffers (kmem.tcp).
	for _, counter := range []struct {
		prefix string
		entry  *v1.MemoryEntry
	}{
		{"memory.", memory.Usage},
		{"memory.memsw.", memory.Swap},
		{"memory.kmem.", memory.Kernel},
		{"memory.kmem.tcp.", memory.KernelTCP},
	} {
		for _, file := range []struct {
			name  string
			value *uint64
		}{
			{"usage_in_bytes", &counter.entry.Usage},
			{"max_usage_in_bytes", &counter.entry.Max},
			{"failcnt", &counter.entry.Failcnt},
			{"limit_in_bytes", &counter.entry.Limit},
		} {
			value, err := readSingleValue(filepath.Join(folder, counter.prefix+file.name), 0)
			if err != nil {
				return err
			}
			*file.value = value
		}
	}
	return nil
}

// readV1Throttling reads the cpu controller's cpu.stat: how often the CFS
// quota throttled the cgroup.
func readV1Throttling(folder string, metrics *v1.Metrics) error {
	stat, err := readFlatKeyed(filepath.Join(folder, "cpu.stat"))
	if err != nil {
		return err
	}
	metrics.CPU.Throttling.Periods = stat["nr_periods"]
	metrics.CPU.Throttling.ThrottledPeriods = stat["nr_throttled"]
	metrics.CPU.Throttling.ThrottledTime = stat["throttled_time"]
	return nil
}

// clockTicksPerSecond is USER_HZ, the unit of cpuacct.stat: 100 on every
// Linux architecture (sysconf(_SC_CLK_TCK), which would need cgo).
const clockTicksPerSecond = 100

// readV1CPUUsage reads the cpuacct controller: CPU time in nanoseconds, in
// all, per CPU, and split into user and kernel time (which cpuacct.stat
// counts in clock ticks).
func readV1CPUUsage(folder string, metrics *v1.Metrics) error {
	file := filepath.Join(folder, "cpuacct.stat")
	ticks, err := readFlatKeyed(file)
	if err != nil {
		return err
	}
	user, hasUser := ticks["user"]
	system, hasSystem := ticks["system"]
	if !hasUser || !hasSystem {
		return fmt.Errorf("%s has no user or no system line", file)
	}
	total, err := readSingleValue(filepath.Join(folder, "cpuacct.usage"), 0)
	if err != nil {
		return err
	}
	perCPUText, err := os.ReadFile(filepath.Join(folder, "cpuacct.usage_percpu"))
	if err != nil {
		return err
	}
	var perCPU []uint64
	for _, field := range strings.Fields(string(perCPUText)) {
		value, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			return fmt.Errorf("cpuacct.usage_percpu: %w", err)
		}
		perCPU = append(perCPU, value)
	}
	const nanosecondsPerTick = 1e9 / clockTicksPerSecond
	metrics.CPU.Usage = &v1.CPUUsage{
		Total:  total,
		User:   user * nanosecondsPerTick,
		Kernel: system * nanosecondsPerTick,
		PerCPU: perCPU,
	}
	return nil
}

func readV1Pids(folder string, metrics *v1.Metrics) error {
	current, err := readSingleValue(filepath.Join(folder, "pids.current"), 0)
	if err != nil {
		return err
	}
	limit, err := readSingleValue(filepath.Join(folder, "pids.max"), 0)
	if err != nil {
		return err
	}
	metrics.Pids = &v1.PidsStat{Current: current, Limit: limit}
	return nil
}

// readV1Blkio reads the blkio controller. The I/O schedulers that keep
// statistics per cgroup (CFQ, BFQ) have the *_recursive files; without them,
// or when they counted nothing, the throttling layer's counters
// (throttle.io_serviced, throttle.io_service_bytes) are what the kernel has.
func readV1Blkio(folder string, metrics *v1.Metrics) error {
	blkio := &v1.BlkIOStat{}
	metrics.Blkio = blkio
	devices, err := blockDeviceNames()
	if err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(folder, "blkio.io_serviced_recursive")); err == nil {
		counted := 0
		for _, file := range []struct {
			name    string
			entries *[]*v1.BlkIOEntry
		}{
			{"blkio.sectors_recursive", &blkio.SectorsRecursive},
			{"blkio.io_service_bytes_recursive", &blkio.IoServiceBytesRecursive},
			{"blkio.io_serviced_recursive", &blkio.IoServicedRecursive},
			{"blkio.io_queued_recursive", &blkio.IoQueuedRecursive},
			{"blkio.io_service_time_recursive", &blkio.IoServiceTimeRecursive},
			{"blkio.io_wait_time_recursive", &blkio.IoWaitTimeRecursive},
			{"blkio.io_merged_recursive", &blkio.IoMergedRecursive},
			{"blkio.time_recursive", &blkio.IoTimeRecursive},
		} {
			if *file.entries, err = readBlkioEntries(filepath.Join(folder, file.name), devices); err != nil {
				return err
			}
			counted += len(*file.entries)
		}
		if counted > 0 {
			return nil
		}
	}
	if blkio.IoServicedRecursive, err = readBlkioEntries(filepath.Join(folder, "blkio.throttle.io_serviced"), devices); err != nil {
		return err
	}
	blkio.IoServiceBytesRecursive, err = readBlkioEntries(filepath.Join(folder, "blkio.throttle.io_service_bytes"), devices)
	return err
}

// readBlkioEntries reads a blkio file of "major:minor [op] value" lines
// ("8:0 Read 4096", "8:0 4096"), and the "Total value" line it skips.
func readBlkioEntries(path string, devices map[[2]uint64]string) ([]*v1.BlkIOEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var entries []*v1.BlkIOEntry
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ':' })
		if len(fields) == 2 && fields[0] == "Total" || line == "" {
			continue
		}
		if len(fields) != 3 && len(fields) != 4 {
			return nil, fmt.Errorf("%s: %q: %w", path, line, errInvalidLine)
		}
		var numbers [3]uint64
		for i, field := range []string{fields[0], fields[1], fields[len(fields)-1]} {
			if numbers[i], err = strconv.ParseUint(field, 10, 64); err != nil {
				return nil, fmt.Errorf("%s: %q: %w", path, line, err)
			}
		}
		entry := &v1.BlkIOEntry{Major: numbers[0], Minor: numbers[1], Value: numbers[2], Device: devices[[2]uint64{numbers[0], numbers[1]}]}
		if len(fields) == 4 {
			entry.Op = fields[2]
		}
		entries = append(entries, entry)
	}
	return entries, nil
}

// blockDeviceNames names each block device by its major and minor numbers,
// "/dev/sda" for 8:0, from /proc/partitions ("major minor #blocks name"
// after a heading and an empty line).
func blockDeviceNames() (map[[2]uint64]string, error) {
	data, err := os.ReadFile("/proc/partitions")
	if err != nil {
		return nil, err
	}
	names := map[[2]uint64]string{}
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[min(2, len(lines)):] {
		fields := strings.Fields(line)
		if len(fields) < 4 {
			continue
		}
		major, errMajor := strconv.ParseUint(fields[0], 10, 64)
		minor, errMinor := strconv.ParseUint(fields[1], 10, 64)
		if errMajor != nil || errMinor != nil {
			return nil, fmt.Errorf("/proc/partitions: %q: %w", line, errInvalidLine)
		}
		if _, seen := names[[2]uint64{major, minor}]; !seen {
			names[[2]uint64{major, minor}] = filepath.Join("/dev", fields[3])
		}
	}
	return names, nil
}

func readV1Hugetlb(folder string, metrics *v1.Metrics) error {
	for _, size := range hugePageSizes() {
		stat := &v1.HugetlbStat{Pagesize: size}
		for _, file := range []struct {
			name  string
			value *uint64
		}{
			{"usage_in_bytes", &stat.Usage},
			{"max_usage_in_bytes", &stat.Max},
			{"failcnt", &stat.Failcnt},
		} {
			value, err := readSingleValue(filepath.Join(folder, "hugetlb."+size+"."+file.name), 0)
			if err != nil {
				return err
			}
			*file.value = value
		}
		metrics.Hugetlb = append(metrics.Hugetlb, stat)
	}
	return nil
}

func readV1Rdma(folder string, metrics *v1.Metrics) error {
	current, err := os.ReadFile(filepath.Join(folder, "rdma.current"))
	if err != nil {
		return err
	}
	limit, err := os.ReadFile(filepath.Join(folder, "rdma.max"))
	if err != nil {
		return err
	}
	// A device removed between the two reads leaves them unmatched.
	if strings.Count(string(current), "\n") != strings.Count(string(limit), "\n") {
		return nil
	}
	metrics.Rdma = &v1.RdmaStat{Current: v1RdmaEntries(current), Limit: v1RdmaEntries(limit)}
	return nil
}

func v1RdmaEntries(data []byte) []*v1.RdmaEntry {
	var entries []*v1.RdmaEntry
	for _, entry := range rdmaEntries(data) {
		entries = append(entries, &v1.RdmaEntry{Device: entry.device, HcaHandles: entry.handles, HcaObjects: entry.objects})
	}
	return entries
}

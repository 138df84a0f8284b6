package cgroupfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// libraryV2Metrics reads the cgroup at path under mount with the library.
func libraryV2Metrics(mount, path string) func() (proto.Message, error) {
	return func() (proto.Message, error) {
		manager, err := cgroup2.Load(path, cgroup2.WithMountpoint(mount))
		if err != nil {
			return nil, err
		}
		metrics, err := manager.Stat()
		return bySize(metrics), err
	}
}

// ourV2Metrics reads the cgroup's folder with cgroupfs.
func ourV2Metrics(folder string) func() (proto.Message, error) {
	return func() (proto.Message, error) {
		metrics, err := V2Metrics(folder)
		return bySize(metrics), err
	}
}

// bySize sorts the metrics' hugetlb entries by page size. The library lists
// the sizes in the order sysfs lists /sys/kernel/mm/hugepages, cgroupfs in
// the order of their names there: the order means nothing, and is the one
// difference allowed.
func bySize(metrics *v2.Metrics) *v2.Metrics {
	if metrics != nil {
		slices.SortFunc(metrics.Hugetlb, func(a, b *v2.HugeTlbStat) int { return strings.Compare(a.Pagesize, b.Pagesize) })
	}
	return metrics
}

func TestV2MetricsOfTheFixtureAreTheLibrarys(t *testing.T) {
	folder, err := filepath.Abs(filepath.Join("testdata", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	read, err := ourV2Metrics(folder)()
	if err != nil {
		t.Fatalf("V2Metrics: %v", err)
	}
	library, err := libraryV2Metrics(folder, "/")()
	if err != nil {
		t.Fatal(err)
	}
	sameMetrics(t, "testdata/v2", read, library)
	ours := read.(*v2.Metrics)
	if ours.GetMemory().GetUsage() == 0 || ours.GetCPU().GetUsageUsec() == 0 || ours.GetMemoryEvents() == nil || ours.GetCPU().GetPSI() == nil {
		t.Errorf("the fixture's memory, CPU, memory events or pressure read as nothing:\n%v", ours)
	}
}

// A real v2 cgroup: under /sys/fs/cgroup on a host with v2 alone, under
// the v2 hierarchy a hybrid host mounts at /sys/fs/cgroup/unified (which
// has only the controllers v1 does not hold: the files of the others are
// missing there, which both readers must take alike).
func TestV2MetricsOfARealCgroupAreTheLibrarys(t *testing.T) {
	needRoot(t)
	mount := Root
	if !Unified() {
		mount = filepath.Join(Root, "unified")
		if !isCgroupMount(mount, unix.CGROUP2_SUPER_MAGIC) {
			t.Skip("no cgroup v2 hierarchy at " + Root + " or " + mount)
		}
	}
	path := "/" + testCgroupName(t)
	folder := filepath.Join(mount, path)
	makeCgroup(t, folder)
	w := startWorker(t)
	if err := os.WriteFile(filepath.Join(folder, "cgroup.procs"), []byte(strconv.Itoa(w.pid())), 0); err != nil {
		t.Fatal(err)
	}
	w.work()

	if Unified() {
		found, err := V2FolderOf(w.pid())
		if err != nil || found != folder {
			t.Errorf("V2FolderOf = %q, %v; want %q", found, err, folder)
		}
	}
	ours, library := stableReads(t,
		ourV2Metrics(folder), libraryV2Metrics(mount, path))
	sameMetrics(t, "the worker's cgroup", ours, library)
	if ours.(*v2.Metrics).GetCPU().GetUsageUsec() == 0 {
		t.Errorf("the worker's CPU time read as 0:\n%v", ours)
	}
}

func TestV2MetricsOfAGoneCgroupIsNotExist(t *testing.T) {
	if _, err := V2Metrics(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("V2Metrics of a removed folder: %v, want fs.ErrNotExist", err)
	}
}

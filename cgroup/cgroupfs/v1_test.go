package cgroupfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// v1Controllers are the hierarchies a v1 cgroup's metrics come from.
var v1Controllers = []string{"memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb", "rdma"}

// libraryV1Hierarchy is the library's hierarchy of those controllers with
// their folders under root (a fixture folder).
func libraryV1Hierarchy(root string) cgroup1.Hierarchy {
	return func() ([]cgroup1.Subsystem, error) {
		subsystems := []cgroup1.Subsystem{
			cgroup1.NewMemory(root), cgroup1.NewCpu(root), cgroup1.NewCpuacct(root),
			cgroup1.NewPids(root), cgroup1.NewBlkio(root), cgroup1.NewRdma(root),
		}
		if hugetlb, err := cgroup1.NewHugetlb(root); err == nil {
			subsystems = append(subsystems, hugetlb)
		}
		return subsystems, nil
	}
}

func TestV1MetricsOfFixturesAreTheLibrarys(t *testing.T) {
	for _, fixture := range []string{"v1", "v1-without-swap"} {
		t.Run(fixture, func(t *testing.T) {
			root, err := filepath.Abs(filepath.Join("testdata", fixture))
			if err != nil {
				t.Fatal(err)
			}
			folders := V1Folders{}
			for _, controller := range v1Controllers {
				folders[controller] = filepath.Join(root, controller)
			}
			ours, err := V1Metrics(folders)
			if err != nil {
				t.Fatalf("V1Metrics: %v", err)
			}
			cg, err := cgroup1.Load(cgroup1.StaticPath("/"), cgroup1.WithHierarchy(libraryV1Hierarchy(root)))
			if err != nil {
				t.Fatal(err)
			}
			library, err := cg.Stat(cgroup1.IgnoreNotExist)
			if err != nil {
				t.Fatal(err)
			}
			sameMetrics(t, fixture, ours, library)
			if ours.GetMemory().GetUsage().GetUsage() == 0 {
				t.Errorf("the fixture's memory usage read as 0:\n%v", ours)
			}
		})
	}
}

// A real v1 cgroup on this host: a process moved in by AddProcess works,
// stops, and its folders and metrics read as the library reads them.
func TestV1MetricsOfARealCgroupAreTheLibrarys(t *testing.T) {
	needRoot(t)
	if Unified() || !isCgroupMount(filepath.Join(Root, "memory"), unix.CGROUP_SUPER_MAGIC) {
		t.Skip("no cgroup v1 memory hierarchy at " + Root)
	}
	name := testCgroupName(t)
	made := map[string]string{}
	for _, hierarchy := range []string{"memory", "cpu", "cpuacct", "pids", "blkio"} {
		if !isCgroupMount(filepath.Join(Root, hierarchy), unix.CGROUP_SUPER_MAGIC) {
			continue
		}
		folder := filepath.Join(Root, hierarchy, name)
		// cpu and cpuacct may be one hierarchy ("cpu,cpuacct"), one folder.
		if _, err := os.Stat(folder); err != nil {
			makeCgroup(t, folder)
		}
		made[hierarchy] = folder
	}
	w := startWorker(t)
	countDiskIO(t, made["blkio"], t.TempDir())
	if err := AddProcess("/"+name, w.pid()); err != nil {
		t.Fatalf("AddProcess: %v", err)
	}
	w.work()

	folders, err := V1FoldersOf(w.pid())
	if err != nil {
		t.Fatal(err)
	}
	for hierarchy, folder := range made {
		if folders[hierarchy] != folder {
			t.Errorf("V1FoldersOf: %s folder %q, want %q (the worker's cgroup)", hierarchy, folders[hierarchy], folder)
		}
	}
	libraryPaths := cgroup1.PidPath(w.pid())
	for hierarchy, folder := range folders {
		path, err := libraryPaths(cgroup1.Name(hierarchy))
		if err != nil {
			t.Errorf("containerd/cgroups/v3 finds no %s cgroup: %v", hierarchy, err)
			continue
		}
		if want := filepath.Join(Root, hierarchy, path); folder != want {
			t.Errorf("V1FoldersOf: %s folder %q, containerd/cgroups/v3 %q", hierarchy, folder, want)
		}
	}

	cg, err := cgroup1.Load(libraryPaths)
	if err != nil {
		t.Fatal(err)
	}
	ours, library := stableReads(t,
		func() (proto.Message, error) { return V1Metrics(folders) },
		func() (proto.Message, error) { return cg.Stat(cgroup1.IgnoreNotExist) })
	sameMetrics(t, "the worker's cgroup", ours, library)
	metrics := ours.(*v1.Metrics)
	if metrics.GetCPU().GetUsage().GetTotal() == 0 || metrics.GetMemory().GetUsage().GetMax() == 0 {
		t.Errorf("the worker's CPU time or memory read as 0:\n%v", metrics)
	}
	t.Logf("blkio: %v", metrics.GetBlkio())
}

// countDiskIO sets a blkio throttling rule, far above any real rate, for
// the disk under dir: this kernel's blkio.throttle.* files count only the
// I/O of a cgroup with a rule for that disk. A disk the rule cannot name
// leaves the counts empty, which both readers then read alike.
func countDiskIO(t *testing.T, blkio, dir string) {
	if blkio == "" {
		return
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	device := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	for _, file := range []string{"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"} {
		_ = os.WriteFile(filepath.Join(blkio, file), []byte(device+" 100000000000"), 0)
	}
}

func TestV1MetricsOfAGoneCgroupIsNotExist(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "gone")
	if _, err := V1Metrics(V1Folders{"memory": gone, "cpu": gone}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("V1Metrics of removed folders: %v, want fs.ErrNotExist", err)
	}
}

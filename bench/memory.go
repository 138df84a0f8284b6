package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// groupAnnotation is the annotation the CRI plugin puts on every container
// of a pod. The stock runc shim starts one shim per distinct value and runs
// every container carrying it in that shim; both shims get it, and the
// number of shim processes observed tells whether a shim grouped.
const groupAnnotation = "io.kubernetes.cri.sandbox-id"

// memory is one process's memory from /proc/<pid>/smaps_rollup, in bytes.
type memory struct {
	rss, pss, private int64
}

func (m memory) add(o memory) memory {
	return memory{m.rss + o.rss, m.pss + o.pss, m.private + o.private}
}

// readMemory reads smaps_rollup (harness.ReadMemory).
func readMemory(pid int) (memory, error) {
	m, err := harness.ReadMemory(pid)
	return memory{m.Rss, m.Pss, m.Private}, err
}

func parseSmapsRollup(data []byte) (memory, error) {
	m, err := harness.ParseSmapsRollup(data)
	return memory{m.Rss, m.Pss, m.Private}, err
}

// fleet is a set of running containers of one shim, and the shim processes
// that hold them.
type fleet struct {
	shim       shimUnderTest
	containers []client.Container
	shimPids   []int // distinct, in the order first seen
}

// startFleets starts count containers running `sleep` for each shim,
// alternating between the shims, optionally all with one group annotation
// per shim. It learns each container's shim as the parent of its process:
// the shim, not containerd, is the container's parent.
func (s *session) startFleets(name string, count int, grouped bool) []*fleet {
	var fleets []*fleet
	for _, shim := range s.shims {
		fleets = append(fleets, &fleet{shim: shim})
	}
	for i := range count {
		for _, f := range fleets {
			var opts []oci.SpecOpts
			if grouped {
				opts = append(opts, oci.WithAnnotations(map[string]string{groupAnnotation: name + "-" + f.shim.label}))
			}
			id := fmt.Sprintf("%s-%s-%d", name, f.shim.label, i)
			container := s.newContainer(f.shim, id, []string{"sleep", "1000000"}, opts...)
			ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
			task, _, err := s.startTask(ctx, container, s.discardIO(nil))
			cancel()
			if err != nil {
				s.tb.Fatal(err)
			}
			shimPid, err := harness.ParentPID(int(task.Pid()))
			if err != nil {
				s.tb.Fatalf("shim of %s: %v", id, err)
			}
			s.checkShimBinary(f.shim, shimPid)
			f.containers = append(f.containers, container)
			if !containsPid(f.shimPids, shimPid) {
				f.shimPids = append(f.shimPids, shimPid)
			}
		}
		progress(name, i+1, count)
	}
	return fleets
}

// checkShimBinary makes sure the process is the binary under test: a run
// that measured the runc shim of the containerd release folder instead of
// the release-style build would compare the wrong thing.
func (s *session) checkShimBinary(shim shimUnderTest, pid int) {
	exe, err := harness.Executable(pid)
	if err != nil {
		s.tb.Fatalf("executable of shim %d: %v", pid, err)
	}
	want, err := filepath.EvalSymlinks(shim.binary)
	if err != nil {
		s.tb.Fatal(err)
	}
	if exe != want {
		s.tb.Fatalf("%s container is held by %s, want %s", shim.label, exe, want)
	}
}

func containsPid(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// stop removes every container of the fleets.
func (s *session) stopFleets(fleets []*fleet) {
	for _, f := range fleets {
		for _, c := range f.containers {
			if err := removeContainer(s.ctx, c); err != nil {
				s.tb.Fatal(err)
			}
		}
	}
}

// shimMemory reads the memory of each shim process of a fleet.
func (s *session) shimMemory(f *fleet) []memory {
	var all []memory
	for _, pid := range f.shimPids {
		m, err := readMemory(pid)
		if err != nil {
			s.tb.Fatalf("%s shim %d: %v", f.shim.label, pid, err)
		}
		all = append(all, m)
	}
	return all
}

// saveSmaps copies each shim's /proc/<pid>/smaps, every mapping with its
// own Rss and Private figures, into dir as <shim>-<pid>.smaps, and prints
// where the memory is (smaps.go).
func (s *session) saveSmaps(fleets []*fleet, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.tb.Fatal(err)
	}
	var labels []string
	byShim := map[string][]map[string]memory{}
	for _, f := range fleets {
		labels = append(labels, f.shim.label)
		for _, pid := range f.shimPids {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.smaps", f.shim.label, pid)), data, 0o644)
			}
			var binary string
			if err == nil {
				binary, err = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			}
			var regions map[string]memory
			if err == nil {
				regions, err = smapsByRegion(data, binary)
			}
			if err != nil {
				s.tb.Fatalf("smaps of %s shim %d: %v", f.shim.label, pid, err)
			}
			byShim[f.shim.label] = append(byShim[f.shim.label], regions)
		}
	}
	writeSmapsFigure(os.Stdout, labels, byShim)
}

// memoryResult is what the memory phases found for one shim.
type memoryResult struct {
	binarySize int64 // bytes of the shim's executable
	// idle: the median of each figure over the shims of 5 idle containers.
	idle memory
	// ungrouped, grouped: the sum over the shim processes of 50 containers.
	ungrouped, grouped         memory
	ungroupedShims, groupShims int
}

// measureMemory runs the three memory phases (only the idle one when
// fleetCount is 0). Each phase lets the shims
// settle (the Go runtime returns freed memory to the kernel in the
// background) before reading, and removes its containers before the next.
//
// The idle phase also runs as many copies of bench/librariesonly, which settle
// and are read with the idle shims.
func (s *session) measureMemory(idleCount, fleetCount int, settle time.Duration, smapsDir string) (map[string]*memoryResult, *librariesOnlyResult) {
	results := make(map[string]*memoryResult)
	for _, shim := range s.shims {
		results[shim.label] = &memoryResult{binarySize: fileSize(s.tb, shim.binary)}
	}

	floor := s.buildLibrariesOnly()
	fleets := s.startFleets("idle", idleCount, false)
	floor.start(s, idleCount)
	s.sleep(settle)
	floorResult := &librariesOnlyResult{binarySize: floor.size, idle: floor.memory(s)}
	floor.stop()
	if smapsDir != "" {
		s.saveSmaps(fleets, smapsDir)
	}
	for _, f := range fleets {
		results[f.shim.label].idle = medianMemory(s.shimMemory(f))
	}
	s.stopFleets(fleets)
	if fleetCount == 0 {
		return results, floorResult
	}

	for _, grouped := range []bool{false, true} {
		name := "ungrouped"
		if grouped {
			name = "grouped"
		}
		fleets := s.startFleets(name, fleetCount, grouped)
		s.sleep(settle)
		for _, f := range fleets {
			var total memory
			for _, m := range s.shimMemory(f) {
				total = total.add(m)
			}
			r := results[f.shim.label]
			if grouped {
				r.grouped, r.groupShims = total, len(f.shimPids)
			} else {
				r.ungrouped, r.ungroupedShims = total, len(f.shimPids)
			}
		}
		s.stopFleets(fleets)
	}
	return results, floorResult
}

// medianMemory is the median of each figure over processes.
func medianMemory(all []memory) memory {
	var rss, pss, private []float64
	for _, m := range all {
		rss = append(rss, float64(m.rss))
		pss = append(pss, float64(m.pss))
		private = append(private, float64(m.private))
	}
	return memory{int64(medianOf(rss)), int64(medianOf(pss)), int64(medianOf(private))}
}

// fileSize is the size of a file, through symbolic links.
func fileSize(tb *runTB, path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return info.Size()
}

func (s *session) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-s.ctx.Done():
		s.tb.Fatal(s.ctx.Err())
	}
}

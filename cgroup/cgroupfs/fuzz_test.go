package cgroupfs

import (
	"os"
	"path/filepath"
	"testing"
)

// Whatever a cgroup file holds, reading it gives metrics or an error, never
// a panic: the same text goes into every file the readers parse line by
// line.
func FuzzReadMetrics(f *testing.F) {
	for _, seed := range []string{
		"anon 4096\nfile 0\n",
		"254:0 Read 4198400\n254:0 Write 4194304\nTotal 8392704\n",
		"8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n",
		"some avg10=1.31 avg60=0.25 avg300=0.05 total=202544\nfull avg10=x\n",
		"mlx4_0 hca_handle=2 hca_object=max\n",
		"user 2\nsystem 8\n",
		"max\n", "-1\n", "", "\n\n", ":", "=", "some", "8:",
	} {
		f.Add(seed)
	}
	v1Files := map[string][]string{
		"memory":  {"memory.stat", "memory.oom_control", "memory.usage_in_bytes"},
		"cpu":     {"cpu.stat"},
		"cpuacct": {"cpuacct.stat", "cpuacct.usage", "cpuacct.usage_percpu"},
		"pids":    {"pids.current", "pids.max"},
		"blkio":   {"blkio.throttle.io_serviced", "blkio.throttle.io_service_bytes"},
		"rdma":    {"rdma.current", "rdma.max"},
	}
	v2Files := []string{"memory.stat", "memory.events", "memory.current", "cpu.stat", "cpu.pressure", "io.stat", "rdma.current", "pids.max"}
	f.Fuzz(func(t *testing.T, text string) {
		root := t.TempDir()
		write := func(folder, file string) {
			if err := os.MkdirAll(folder, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(folder, file), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		folders := V1Folders{}
		for hierarchy, files := range v1Files {
			folders[hierarchy] = filepath.Join(root, "v1", hierarchy)
			for _, file := range files {
				write(folders[hierarchy], file)
			}
		}
		for _, file := range v2Files {
			write(filepath.Join(root, "v2"), file)
		}
		_, _ = V1Metrics(folders)
		_, _ = V2Metrics(filepath.Join(root, "v2"))
	})
}

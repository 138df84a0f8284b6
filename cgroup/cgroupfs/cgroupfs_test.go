package cgroupfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// The tests hold this package to containerd/cgroups/v3, the library the
// stock runc shim reads cgroups with: the same metrics from the same
// folders, proto.Equal. The folders are of two kinds:
//
//   - real cgroups, made by the tests (they need root), with a process in
//     them that did some work (CPU, memory, direct disk I/O) and then
//     stopped, so that the files hold still while both read them;
//   - testdata: files copied from such cgroups. v1/ comes from a cgroup on
//     a host with cgroup v1, except hugetlb/ and rdma/, which that host did
//     not have for v1: their files (one number each; the device lines of
//     the kernel's rdma documentation) are written by hand. v1-without-swap/
//     is v1/memory less its memory.memsw.* files, as on a kernel without
//     swap accounting. v2/ comes from a cgroup on a kernel with cgroup v2
//     alone and every controller enabled, except io.stat (the example of
//     the kernel's cgroup-v2 documentation) and rdma.* (as in v1/): that
//     machine had no block or RDMA device.

// sameMetrics fails the test when the two metrics messages differ, showing
// both.
func sameMetrics(t *testing.T, what string, ours, library proto.Message) {
	t.Helper()
	if !proto.Equal(ours, library) {
		t.Errorf("%s: cgroupfs and containerd/cgroups/v3 differ\ncgroupfs:\n%s\ncontainerd/cgroups/v3:\n%s",
			what, prototext.Format(ours), prototext.Format(library))
	}
}

// stableReads reads the metrics with both readers until the library gives
// the same twice around cgroupfs's read: a stopped process's cgroup holds
// still, but the kernel may still reclaim a page in it.
func stableReads(t *testing.T, ours, library func() (proto.Message, error)) (proto.Message, proto.Message) {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		before, err := library()
		if err != nil {
			t.Fatalf("containerd/cgroups/v3: %v", err)
		}
		got, err := ours()
		if err != nil {
			t.Fatalf("cgroupfs: %v", err)
		}
		after, err := library()
		if err != nil {
			t.Fatalf("containerd/cgroups/v3: %v", err)
		}
		if proto.Equal(before, after) {
			return got, before
		}
	}
	t.Fatal("the cgroup's files changed between every two reads of 5")
	return nil, nil
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making cgroups needs root")
	}
}

// makeCgroup makes the folder of a new cgroup and removes it at the end of
// the test (after the worker's cleanup, which registered later, has
// killed it).
func makeCgroup(t *testing.T, folder string) {
	t.Helper()
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatalf("make cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(folder); err != nil {
			t.Errorf("remove cgroup: %v", err)
		}
	})
}

// worker is a shell that stops itself at once; each time the test lets it
// go on (resume), it does some work and stops again: CPU and memory, and
// disk I/O that bypasses the page cache, in a file of dir.
type worker struct {
	t   *testing.T
	cmd *exec.Cmd
}

const workerScript = `kill -STOP $$
dd if=/dev/zero of="$1/work" bs=64k count=64 oflag=direct 2>/dev/null
dd if="$1/work" of=/dev/null bs=64k iflag=direct 2>/dev/null
head -c 50000000 /dev/zero | cat >/dev/null
kill -STOP $$
`

func startWorker(t *testing.T) *worker {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", workerScript, "worker", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{t: t, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	w.waitStopped()
	return w
}

func (w *worker) pid() int { return w.cmd.Process.Pid }

// waitStopped waits for the worker's next stop (wait4 with WUNTRACED, which
// returns when a child stops).
func (w *worker) waitStopped() {
	w.t.Helper()
	var status unix.WaitStatus
	if _, err := unix.Wait4(w.pid(), &status, unix.WUNTRACED, nil); err != nil {
		w.t.Fatalf("wait for the worker: %v", err)
	}
	if !status.Stopped() {
		w.t.Fatalf("the worker ended instead of stopping: %v", status)
	}
}

// work lets the worker do its work, in the cgroups it is in by now, and
// waits until it has stopped again.
func (w *worker) work() {
	w.t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		w.t.Fatal(err)
	}
	w.waitStopped()
}

// testCgroupName is the name of the cgroups a test makes.
func testCgroupName(t *testing.T) string {
	return "cgroupfs-" + t.Name() + "-" + strconv.Itoa(os.Getpid())
}

// isCgroupMount reports whether folder is the root of a mounted cgroup
// filesystem of the given magic (v1 or v2).
func isCgroupMount(folder string, magic int64) bool {
	var fs unix.Statfs_t
	return unix.Statfs(folder, &fs) == nil && fs.Type == magic
}

func TestParseCounter(t *testing.T) {
	for _, tc := range []struct {
		text string
		want uint64
		err  bool
	}{
		{"0", 0, false},
		{"18446744073709551615", 1<<64 - 1, false},
		{"-4096", 0, false}, // a counter of pages below zero for a moment
		{"-99999999999999999999", 0, false},
		{"12a", 0, true},
		{"-x", 0, true},
	} {
		got, err := parseCounter(tc.text)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("parseCounter(%q) = %d, %v; want %d, error %v", tc.text, got, err, tc.want, tc.err)
		}
	}
}

func TestFlatKeyedFileWithABadLineIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "memory.stat")
	if err := os.WriteFile(file, []byte("anon 4096\nfile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readFlatKeyed(file); !errors.Is(err, errInvalidLine) {
		t.Errorf("readFlatKeyed = %v, want errInvalidLine", err)
	}
}

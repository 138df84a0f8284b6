package inspect

import (
	"strings"
	"testing"
)

// fixtureContext is the shim of container "demo" with state folder
// /run/containerd, whose init holds pipe 101 as stdout; descriptors 20 to
// 29 are FIFOs.
func fixtureContext() fdContext {
	return fdContext{
		id:          "demo",
		bundles:     "/run/containerd/io.containerd.runtime.v2.task",
		socketInode: 777,
		pipes:       map[string]string{"pipe:[101]": "stdout of init (pid 42)"},
		matePipes:   map[string]mateEnd{"pipe:[103]": {end: "stdout of init (pid 43)", id: "sidecar"}},
		mates:       []string{"sidecar"},
		fifos: map[string]fifoOwner{
			"/run/containerd/fifo/2/hello-stdout": {id: "demo", exec: "hello"},
			"/run/containerd/fifo/3/probe-stdout": {id: "sidecar", exec: "probe"},
		},
		isFIFO: func(fd int) bool { return fd >= 20 && fd < 30 },
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		fd      int
		target  string
		kind    string
		meaning string // a part of the meaning
	}{
		{11, "socket:[777]", kindSocket, "listening socket"},
		{12, "socket:[778]", kindSocket, "a connection"},
		{15, "pipe:[101]", kindPipe, "stdout of init (pid 42)"},
		{16, "pipe:[102]", kindPipe, "not on the container's stdio"},
		{17, "pipe:[103]", kindPipe, "stdout of init (pid 43) of another container of this shim: sidecar"},
		{20, "/run/containerd/fifo/553063929/demo-stdout", kindFIFO, "stdout FIFO of this container"},
		{21, "/run/docker/containerd/demo/init-stderr", kindFIFO, "stderr FIFO of this container"},
		{22, "/run/containerd/fifo/1/exec1-stdin", kindFIFO, "stdin FIFO of another process"},
		{23, "/run/containerd/fifo/1/demonstration-stdout", kindFIFO, "another process"},
		{24, "/run/containerd/io.containerd.runtime.v2.task/default/demo/log", kindFIFO, "the shim's log"},
		{25, "/run/containerd/fifo/1/other", kindFIFO, "a FIFO"},
		{26, "/run/containerd/fifo/4/sidecar-stderr", kindFIFO, "stderr FIFO of another container of this shim: sidecar"},
		{27, "/run/containerd/fifo/2/hello-stdout", kindFIFO, "stdout FIFO of this container's exec hello"},
		{28, "/run/containerd/fifo/3/probe-stdout", kindFIFO, "stdout FIFO of another container of this shim: sidecar (its exec probe)"},
		{3, "/run/containerd/io.containerd.runtime.v2.task/default/demo/journal", kindFile, "bundle default/demo"},
		{14, "/dev/pts/ptmx", kindConsole, "master side"},
		{14, "/dev/ptmx", kindConsole, "master side"},
		{0, "/dev/null", kindDevice, "/dev/null"},
		{5, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", kindFile, "cpu.cfs_quota_us"},
		{7, "anon_inode:[eventpoll]", kindKernelFD, "epoll"},
		{8, "anon_inode:[pidfd]", kindKernelFD, "pidfd"},
		{9, "anon_inode:inotify", kindKernelFD, "inotify"},
		{10, "anon_inode:[timerfd]", kindKernelFD, "[timerfd]"},
		{4, "/var/log/something", kindFile, "a file"},
		{5, "/run/containerd-shim-teach-v2/f37f4f2f69708c2e/default/web/journal.jsonl", kindFile, "the journal: the shim appends a line for each step it takes; `trace` draws it"},
	} {
		kind, meaning := classify(fixtureContext(), tc.fd, tc.target)
		if kind != tc.kind || !strings.Contains(meaning, tc.meaning) {
			t.Errorf("classify(%d, %s) = %s %q; want %s, a meaning with %q", tc.fd, tc.target, kind, meaning, tc.kind, tc.meaning)
		}
	}
}

func TestGroupDescriptors(t *testing.T) {
	fifo := "/run/containerd/fifo/1/demo-stdout"
	groups := groupDescriptors([]Descriptor{
		{FD: 0, Target: "/dev/null", Meaning: "null"},
		{FD: 1, Target: "/dev/null", Meaning: "null"},
		{FD: 21, Target: fifo, Meaning: "fifo"},
		{FD: 22, Target: fifo, Meaning: "fifo"},
		{FD: 23, Target: "/dev/null", Meaning: "null"},
	})
	var got []string
	for _, g := range groups {
		got = append(got, g.fds)
	}
	if strings.Join(got, ",") != "0 1,21 22,23" {
		t.Errorf("groups %q, want 0 1,21 22,23: only neighbours merge", got)
	}
}

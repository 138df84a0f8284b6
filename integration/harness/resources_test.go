package harness

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestResourcesOfThisProcess(t *testing.T) {
	status, err := ReadProcessStatus(os.Getpid())
	if err != nil || status.RSS <= 0 || status.PeakRSS < status.RSS || status.Threads < 1 {
		t.Fatalf("status %+v, %v", status, err)
	}
	fds, err := OpenFDs(os.Getpid())
	if err != nil || len(fds) < 3 || fds[0].FD != 0 {
		t.Fatalf("descriptors %v, %v", fds, err)
	}
}

func TestListeningSocketsOfThisProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sockets, err := ListeningSockets(os.Getpid())
	if err != nil || !slices.Contains(sockets, path) {
		t.Fatalf("listening on %v (%v), want %s among them", sockets, err, path)
	}
}

func TestWithoutPidfdsAndKinds(t *testing.T) {
	fds := []OpenFD{{0, "/dev/null"}, {1, "pipe:[12]"}, {2, "anon_inode:[pidfd]"}, {3, "socket:[9]"}}
	others, pidfds := WithoutPidfds(fds)
	if pidfds != 1 || len(others) != 3 {
		t.Fatalf("others %v, pidfds %d", others, pidfds)
	}
	kinds := FDKinds(fds)
	if kinds["file"] != 1 || kinds["pipe"] != 1 || kinds["anon_inode"] != 1 || kinds["socket"] != 1 {
		t.Fatalf("kinds %v", kinds)
	}
}

func TestParseInotifyLine(t *testing.T) {
	w, ok := parseInotifyLine("inotify wd:2 ino:3e sdev:1c mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:3e00000000000000")
	if !ok || w != (InotifyWatch{Inode: 0x3e, Major: 0, Minor: 0x1c}) {
		t.Errorf("parseInotifyLine = %+v, %v", w, ok)
	}
	if w, ok := parseInotifyLine("inotify wd:1 ino:4a sdev:800001 mask:2"); !ok || w.Major != 8 || w.Minor != 1 {
		t.Errorf("a device with a major number: %+v, %v", w, ok)
	}
	for _, line := range []string{"pos:\t0", "flags:\t02000000", "inotify wd:1 mask:2"} {
		if _, ok := parseInotifyLine(line); ok {
			t.Errorf("parseInotifyLine(%q) found a watch", line)
		}
	}
}

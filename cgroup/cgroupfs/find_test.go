package cgroupfs

import (
	"reflect"
	"strings"
	"testing"
)

// mountinfoOfAContainer is the cgroup part of /proc/self/mountinfo in a
// container without a cgroup namespace, which has the host's hierarchies
// bound from its own cgroup: the mounts' roots are that cgroup.
const mountinfoOfAContainer = `1273 1264 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:11 - cgroup cgroup rw,cpu,cpuacct
1274 1264 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:14 - cgroup cgroup rw,memory
1276 1264 0:37 /docker/abc /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime master:9 - cgroup cgroup rw,xattr,name=systemd
1277 1264 0:38 / /sys/fs/cgroup/unified ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
1278 1264 0:26 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
`

func TestV1FoldersLeaveOutTheMountsRoot(t *testing.T) {
	paths := map[string]string{
		"cpu":          "/docker/abc/child",
		"cpuacct":      "/docker/abc/child",
		"memory":       "/docker/abc/child",
		"name=systemd": "/docker/abc",
		"pids":         "/docker/abc/child", // not mounted here
	}
	roots, err := v1MountRoots(strings.NewReader(mountinfoOfAContainer))
	if err != nil {
		t.Fatal(err)
	}
	got := v1Folders(paths, roots)
	want := V1Folders{
		"cpu":     "/sys/fs/cgroup/cpu/child",
		"cpuacct": "/sys/fs/cgroup/cpuacct/child",
		"memory":  "/sys/fs/cgroup/memory/child",
		"systemd": "/sys/fs/cgroup/systemd",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("v1Folders = %v\nwant %v", got, want)
	}
}

// A path that climbs out of the hierarchy stays inside it.
func TestUnderKeepsAPathInsideTheHierarchy(t *testing.T) {
	if got := under("/sys/fs/cgroup/memory", "../../../etc"); got != "/sys/fs/cgroup/memory/etc" {
		t.Errorf("under = %q", got)
	}
}

// A line longer than the reader's buffer, as an overlay rootfs of many
// layers makes, is skipped whole; the cgroup lines around it are read.
func TestV1MountRootsSkipALongLine(t *testing.T) {
	long := "1300 1264 0:90 / /run/rootfs rw - overlay overlay rw,lowerdir=" + strings.Repeat("/var/lib/layer:", 1000) + "/x\n"
	mountinfo := "1274 1264 0:32 /a /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" + long +
		"1276 1264 0:37 /b /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids"
	roots, err := v1MountRoots(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if roots["memory"] != "/a" || roots["pids"] != "/b" || len(roots) != 3 { // and "rw", an option too
		t.Errorf("v1MountRoots = %v, want memory at /a, pids at /b", roots)
	}
}

package cgroupfs

import (
	"reflect"
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
	got := v1Folders(paths, v1MountRoots(mountinfoOfAContainer))
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

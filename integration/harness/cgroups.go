package harness

import (
	"os"
	"path/filepath"
	"strings"
)

// CgroupFile reads one file of a container's cgroup: the cgroup v1
// hierarchy of controller when it is mounted (/sys/fs/cgroup/<controller>/<path>),
// else the v2 tree (/sys/fs/cgroup/<path>). path is the container's
// cgroupsPath, as runc was given it.
func CgroupFile(controller, path, file string) (string, error) {
	dir := filepath.Join("/sys/fs/cgroup", controller)
	if _, err := os.Stat(dir); err != nil {
		dir = "/sys/fs/cgroup"
	}
	data, err := os.ReadFile(filepath.Join(dir, path, file))
	return strings.TrimSpace(string(data)), err
}

// CgroupExists reports whether a cgroup is left in any hierarchy.
func CgroupExists(path string) bool {
	matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
	return len(matches) > 0 || isDir(filepath.Join("/sys/fs/cgroup", path))
}

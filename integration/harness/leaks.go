package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// RuncRoot is where a shim asks runc to keep its state when the runtime
// options name no other root: one folder per containerd namespace.
const RuncRoot = "/run/containerd/runc"

// RuncStateDir is runc's state folder for one container: runc --root
// /run/containerd/runc/<namespace> keeps <id>/state.json there.
func RuncStateDir(namespace, id string) string {
	return filepath.Join(RuncRoot, namespace, id)
}

// BundleDir is the folder containerd makes for a task (config.json, the
// rootfs mount point, the shim's address): <state>/io.containerd.runtime.v2.task/<ns>/<id>.
func (d *Containerd) BundleDir(namespace, id string) string {
	return filepath.Join(d.StateDir, "io.containerd.runtime.v2.task", namespace, id)
}

// RootfsDir is where the container's root filesystem is mounted while its
// task exists.
func (d *Containerd) RootfsDir(namespace, id string) string {
	return filepath.Join(d.BundleDir(namespace, id), "rootfs")
}

// ContainerTraces returns what a task left on the host, or nil when nothing
// is left: mounts under its bundle, the bundle folder, runc's state folder.
func (d *Containerd) ContainerTraces(namespace, id string) error {
	bundle := d.BundleDir(namespace, id)
	mounts, err := MountsUnder(bundle)
	if err != nil {
		return err
	}
	var traces []error
	for _, m := range mounts {
		traces = append(traces, fmt.Errorf("still mounted: %s (%s)", m.MountPoint, m.FSType))
	}
	for _, dir := range []string{bundle, RuncStateDir(namespace, id)} {
		if exists, err := pathExists(dir); err != nil || exists {
			traces = append(traces, fmt.Errorf("still there: %s %v", dir, err))
		}
	}
	return errors.Join(traces...)
}

// AssertNoContainerTraces waits, up to a deadline, for a deleted task's
// mounts and folders to be gone, and fails the test if they stay.
func (d *Containerd) AssertNoContainerTraces(t testing.TB, namespace, id string) {
	t.Helper()
	// The shim removes them before it answers Delete: the wait is for a
	// busy machine, not for the normal case.
	Eventually(t, SettleTimeout, "traces of container "+id, func() error {
		return d.ContainerTraces(namespace, id)
	})
}

// AssertProcessGone waits for pid to exit; a zombie counts as gone, since
// only its reaping by PID 1 (late on this machine) is pending.
func AssertProcessGone(t testing.TB, pid int, what string) {
	t.Helper()
	Eventually(t, SettleTimeout, what+" still running", func() error {
		if IsAlive(pid) {
			return fmt.Errorf("%s", DescribeProcess(pid))
		}
		return nil
	})
}

func pathExists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// ShimSocket is the path of the socket the task's shim serves, read from the
// "address" file both shims leave in the bundle (unix:///run/containerd/s/<hash>).
func (d *Containerd) ShimSocket(namespace, id string) (string, error) {
	data, err := os.ReadFile(filepath.Join(d.BundleDir(namespace, id), "address"))
	if err != nil {
		return "", err
	}
	address := strings.TrimSpace(string(data))
	path, ok := strings.CutPrefix(address, "unix://")
	if !ok {
		return "", fmt.Errorf("shim address %q is not a unix socket path", address)
	}
	return path, nil
}

// PathGone is nil once path no longer exists, an error naming it until then.
func PathGone(path string) error {
	exists, err := pathExists(path)
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("still there: %s", path)
	}
	return nil
}

// FilesUnder lists the files (FIFOs and sockets included) at or below dir; a
// missing dir has none.
func FilesUnder(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !entry.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}

// checkpointFolderPattern names the folders containerd unpacks a checkpoint
// into when a task is restored from one (plugins/services/tasks, Create),
// and saves one into for `ctr task checkpoint`. It removes the second kind
// only.
const checkpointFolderPattern = "ctrd-checkpoint*"

// sharedTempDirs are the folders a containerd without a temp folder of its
// own makes them in: $XDG_RUNTIME_DIR, or $TMPDIR, or /tmp.
func sharedTempDirs() []string {
	dirs := []string{os.TempDir()}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		dirs = append(dirs, xdg)
	}
	if !slices.Contains(dirs, "/tmp") {
		dirs = append(dirs, "/tmp")
	}
	return dirs
}

// checkpointFolders lists the checkpoint folders now in the shared temp
// folders.
func checkpointFolders() map[string]bool {
	found := map[string]bool{}
	for _, dir := range sharedTempDirs() {
		matches, _ := filepath.Glob(filepath.Join(dir, checkpointFolderPattern))
		for _, m := range matches {
			found[m] = true
		}
	}
	return found
}

// assertNoCheckpointFoldersLeft fails t if a checkpoint folder appeared in a
// shared temp folder since before was listed. Each daemon the harness starts
// has a temp folder of its own, removed with it, so one appearing there came
// from a daemon, or a test, that bypassed it; a test binary running at the
// same time from elsewhere on the machine would be blamed too.
func assertNoCheckpointFoldersLeft(t testing.TB, before map[string]bool) {
	t.Helper()
	var left []string
	for folder := range checkpointFolders() {
		if !before[folder] {
			left = append(left, folder)
		}
	}
	if len(left) > 0 {
		slices.Sort(left)
		t.Errorf("checkpoint folders left in the machine's temp folder while this test's containerd ran: %s", strings.Join(left, ", "))
	}
}

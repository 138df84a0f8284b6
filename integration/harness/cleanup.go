package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// cleanupTimeout bounds the polite part of the cleanup (deleting tasks
// through the daemon); what is left after it is removed by force.
const cleanupTimeout = 30 * time.Second

// cleanup leaves the machine as it was before the daemon started. It goes
// from polite to forceful: tasks are deleted through containerd while it
// runs; the daemon is stopped; shims and containers that survive are killed
// by pid; mounts, runc state, cgroups and the folder are removed.
func (d *Containerd) cleanup(t testing.TB) {
	if t.Failed() {
		t.Logf("containerd %s log, last lines (%s):\n%s", d.Release.Version, d.LogPath, d.LogTail(80))
		d.keepForLater(t)
	}
	if d.Running() {
		d.deleteContainers(t)
	}
	if c := d.Client(); c != nil {
		c.Close()
	}
	if err := d.signalAndWait(syscall.SIGTERM, stopTimeout); err != nil {
		t.Logf("cleanup: %v; killing it", err)
		d.signalAndWait(syscall.SIGKILL, stopTimeout)
	}
	d.killLeftoverShims(t)
	for _, ns := range d.handedOutNamespaces() {
		removeRuncContainers(t, d.runcPath, filepath.Join(RuncRoot, ns))
		removeCgroups(ns)
	}
	if err := UnmountAllUnder(d.Dir); err != nil {
		t.Logf("cleanup: %v", err)
	}
	// The journals of this daemon's containers outlive their bundles.
	if err := os.RemoveAll(journal.StateDir(journal.DefaultRoot, d.StateDir)); err != nil {
		t.Logf("cleanup: %v", err)
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// keepForLater copies what explains a failed test before the cleanup
// removes it, into bin/failed/<test> of the repository: containerd's whole
// log (the shims' logs are in it) and the journals of the daemon's
// containers, which `containerd-shim-teach-v2 trace --journal-root` reads.
func (d *Containerd) keepForLater(t testing.TB) {
	dir := filepath.Join(RepoRoot(t), "bin", "failed", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keep the logs: %v", err)
		return
	}
	journals := journal.StateDir(journal.DefaultRoot, d.StateDir)
	for _, from := range []string{d.LogPath, journals} {
		if out, err := exec.Command("cp", "-a", from, dir).CombinedOutput(); err != nil && !os.IsNotExist(statErr(from)) {
			t.Logf("keep %s: %v: %s", from, err, out)
		}
	}
	t.Logf("containerd's log and the journals are kept in %s", dir)
}

func statErr(path string) error {
	_, err := os.Stat(path)
	return err
}

// deleteContainers kills and deletes every task and container in the
// namespaces this daemon handed out, the way a user would through the API.
func (d *Containerd) deleteContainers(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for _, ns := range d.handedOutNamespaces() {
		nsCtx := namespaces.WithNamespace(ctx, ns)
		containers, err := d.Client().Containers(nsCtx)
		if err != nil {
			t.Logf("cleanup: list containers in %s: %v", ns, err)
			continue
		}
		for _, c := range containers {
			if err := deleteContainer(nsCtx, c); err != nil {
				t.Logf("cleanup: container %s/%s: %v", ns, c.ID(), err)
			}
		}
	}
}

// deleteContainer kills the task (if any), waits for its exit, deletes it,
// then deletes the container and its snapshot.
func deleteContainer(ctx context.Context, c client.Container) error {
	task, err := c.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("load task: %w", err)
	default:
		// WithProcessKill kills the task first when it still runs.
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	}
	return c.Delete(ctx, client.WithSnapshotCleanup)
}

// killLeftoverShims kills, by pid, the shims this daemon started that are
// still alive after it stopped (a shim outlives its daemon by design).
func (d *Containerd) killLeftoverShims(t testing.TB) {
	shims, err := ShimsOf(d.Address)
	if err != nil {
		t.Logf("cleanup: find shims: %v", err)
		return
	}
	for _, pid := range shims {
		t.Logf("cleanup: killing leftover shim %s", DescribeProcess(pid))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range shims {
		if err := WaitFor(stopTimeout, func() error { return aliveError(pid) }); err != nil {
			t.Logf("cleanup: shim %d: %v", pid, err)
		}
	}
}

func aliveError(pid int) error {
	if IsAlive(pid) {
		return errors.New(DescribeProcess(pid))
	}
	return nil
}

// removeRuncContainers force-deletes, with runc itself, the containers a
// killed shim could not delete: runc delete --force kills their processes
// and removes their state and cgroups. It is what keeps a test that killed
// a shim from leaving a `sleep 1000` running on the machine.
func removeRuncContainers(t testing.TB, runc, root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return // no container ever got as far as runc
	}
	for _, entry := range entries {
		out, err := exec.Command(runc, "--root", root, "delete", "--force", entry.Name()).CombinedOutput()
		if err != nil {
			t.Logf("cleanup: runc delete --force %s/%s: %v %s", root, entry.Name(), err, out)
		} else {
			t.Logf("cleanup: removed leftover runc container %s/%s", root, entry.Name())
		}
	}
	os.RemoveAll(root)
}

// removeCgroups removes the per-namespace cgroup parents (/<ns> in each
// cgroup v1 hierarchy, or in the v2 tree) that runc creates and never
// removes. A cgroup folder is removed with rmdir, and only when empty.
func removeCgroups(namespace string) {
	matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", namespace))
	if unified := filepath.Join("/sys/fs/cgroup", namespace); isDir(unified) {
		matches = append(matches, unified)
	}
	for _, dir := range matches {
		children, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, child := range children {
			if isDir(child) {
				syscall.Rmdir(child)
			}
		}
		syscall.Rmdir(dir)
	}
}

func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

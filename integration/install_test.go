package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// TestMakeInstall is the install recipe of the README: `make install` with
// a DESTDIR and PREFIX puts containerd-shim-teach-v2 in <DESTDIR><PREFIX>/bin,
// and a containerd whose PATH has that folder (and no other copy of the
// shim) runs containers with --runtime io.containerd.teach.v2 through it.
// `make uninstall` takes it away again.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	repo := harness.RepoRoot(t)
	destdir := t.TempDir()
	const prefix = "/usr/local"
	// BIN points the build at the test's folder: the repository's
	// bin/containerd-shim-teach-v2 may be the binary other tests are running.
	make := func(target string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "-C", repo, target,
			"BIN="+filepath.Join(t.TempDir(), harness.TeachShimBinaryName), "DESTDIR="+destdir, "PREFIX="+prefix)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	make("install")

	binDir := filepath.Join(destdir, prefix, "bin")
	installed := filepath.Join(binDir, harness.TeachShimBinaryName)
	info, err := os.Stat(installed)
	if err != nil {
		t.Fatalf("make install: %v", err)
	}
	if info.Mode().Perm() != 0o755 {
		t.Errorf("installed shim has mode %v, want 0755", info.Mode().Perm())
	}
	out, err := exec.Command(installed, "-v").Output()
	if err != nil || !strings.Contains(string(out), "Version:") {
		t.Errorf("%s -v: %v\n%s", installed, err, out)
	}

	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			d := harness.StartContainerdWith(t, release.Version, harness.Options{ShimDir: binDir})
			ctx, ns := d.Namespace(t, "install")
			harness.ImportBusybox(t, ctx, d.Client())
			r := d.CtrRun(t, ns, harness.TeachRuntime, "installed", nil, "sh", "-c", "echo installed; exit 2")
			if r.ExitCode != 2 || string(r.Stdout) != "installed\n" {
				t.Errorf("ctr run through the installed shim: exit code %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
			}
			// The shim containerd ran is the installed file, not another
			// copy found further down its PATH.
			r = d.Ctr(t, ns, "run", "-d", "--runtime", harness.TeachRuntime, "--fifo-dir", d.FIFODir, harness.BusyboxImage, "running", "sleep", "1000")
			if r.ExitCode != 0 {
				t.Fatalf("ctr run -d: exit code %d: %s", r.ExitCode, r.Stderr)
			}
			shims, err := harness.ShimsServing(d.Address, "running")
			if err != nil || len(shims) != 1 {
				t.Fatalf("shims serving the container: %v (%v)", shims, err)
			}
			if exe, err := harness.Executable(shims[0]); err != nil || exe != installed {
				t.Errorf("containerd ran the shim %s (%v), want %s", exe, err, installed)
			}
		})
	}

	make("uninstall")
	if _, err := os.Stat(installed); !os.IsNotExist(err) {
		t.Errorf("make uninstall left %s (%v)", installed, err)
	}
}

package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

const (
	// TeachRuntime is the runtime name containerd turns into our binary's
	// name: io.containerd.teach.v2 → containerd-shim-teach-v2, looked up in PATH.
	TeachRuntime = "io.containerd.teach.v2"
	// RuncRuntime is the stock runc shim, the reference every test row of
	// ours is compared against.
	RuncRuntime = "io.containerd.runc.v2"

	// TeachShimBinaryName is the file name containerd looks for.
	TeachShimBinaryName = "containerd-shim-teach-v2"
	// RuncShimBinaryName is the stock shim's file name.
	RuncShimBinaryName = "containerd-shim-runc-v2"

	shimPackage = "./cmd/containerd-shim-teach-v2"
)

// ShimBuildEnv is the environment `make build` builds the shim in: static,
// no cgo, and Go's collector before Green Tea (SHIM_GOEXPERIMENT in the
// Makefile says why). A test that builds the shim itself builds it the same.
func ShimBuildEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOEXPERIMENT=nogreenteagc", "GOFLAGS=-buildvcs=false")
}

// ShimBinaryName is the file containerd runs for a runtime name.
func ShimBinaryName(runtime string) string {
	if runtime == TeachRuntime {
		return TeachShimBinaryName
	}
	return RuncShimBinaryName
}

// The shim folder exists from the first daemon on, empty, and is on every
// daemon's PATH. The binary lands in it only when a test asks for it: a run
// of the runc rows alone never builds the shim, and a shim that does not
// compile yet fails the teach rows only.
var (
	shimDirOnce sync.Once
	shimDirPath string
	shimDirErr  error

	shimBuildOnce sync.Once
	shimBuildErr  error
)

func shimDir() (string, error) {
	shimDirOnce.Do(func() {
		shimDirPath, shimDirErr = os.MkdirTemp("", "teach-shim-")
		if shimDirErr == nil {
			registerBuildArtifact(shimDirPath)
		}
	})
	return shimDirPath, shimDirErr
}

// ShimBinary returns the path of our shim, in the folder that is on the
// daemons' PATH. It is $TEACH_SHIM_BIN when set (linked under the name
// containerd looks for), else ./cmd/containerd-shim-teach-v2 built once per
// test binary.
func ShimBinary(t testing.TB) string {
	t.Helper()
	dir, err := shimDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, TeachShimBinaryName)
	shimBuildOnce.Do(func() { shimBuildErr = provideShim(RepoRoot(t), path) })
	if shimBuildErr != nil {
		t.Fatalf("no shim binary: %v", shimBuildErr)
	}
	return path
}

func provideShim(repoRoot, path string) error {
	if prebuilt := os.Getenv("TEACH_SHIM_BIN"); prebuilt != "" {
		abs, err := filepath.Abs(prebuilt)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("TEACH_SHIM_BIN: %w", err)
		}
		return os.Symlink(abs, path)
	}
	build := exec.Command("go", "build", "-o", path, shimPackage)
	build.Dir = repoRoot
	build.Env = ShimBuildEnv()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", shimPackage, err, out)
	}
	return nil
}

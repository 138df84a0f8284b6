package harness

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The tests' own programs (integration/cmd/...) that a shim or a daemon
// runs: a logging program, a runc stand-in. Each is built once per test
// binary, outside t.TempDir, since the daemons may run it after the test
// that asked for it has ended.

type builtProgram struct {
	once sync.Once
	path string
	err  error
}

var (
	programsMu sync.Mutex
	programs   = map[string]*builtProgram{}
)

// TestProgram builds the package integration/cmd/<name> once and returns
// the binary's path.
func TestProgram(t testing.TB, name string) string {
	t.Helper()
	return BuildOnce(t, "integration/cmd/"+name, func() (string, error) { return buildTestProgram(RepoRoot(t), name) })
}

// BuildOnce runs build once per key in the test binary, and returns the
// path it built; a build that failed fails every test that asks for it.
func BuildOnce(t testing.TB, key string, build func() (string, error)) string {
	t.Helper()
	programsMu.Lock()
	p, ok := programs[key]
	if !ok {
		p = &builtProgram{}
		programs[key] = p
	}
	programsMu.Unlock()
	p.once.Do(func() { p.path, p.err = build() })
	if p.err != nil {
		t.Fatal(p.err)
	}
	return p.path
}

func buildTestProgram(repoRoot, name string) (string, error) {
	dir, err := BuildFolder(name)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", path, "./integration/cmd/"+name)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v: %s", name, err, out)
	}
	return path, nil
}

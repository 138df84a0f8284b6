package harness

import (
	"os"
	"sync"
	"testing"
)

// Built once per test binary and shared by every test (the shim, the image),
// so no single test's cleanup can remove them: Main does, after the last test.
var buildArtifacts struct {
	sync.Mutex
	paths []string
}

// BuildFolder makes a temporary folder for a program built once and shared
// by the tests (BuildOnce); Main removes it after the last test.
func BuildFolder(name string) (string, error) {
	dir, err := os.MkdirTemp("", "teach-"+name+"-")
	if err == nil {
		registerBuildArtifact(dir)
	}
	return dir, err
}

func registerBuildArtifact(path string) {
	buildArtifacts.Lock()
	defer buildArtifacts.Unlock()
	buildArtifacts.paths = append(buildArtifacts.paths, path)
}

// Main runs the tests of a package and then removes what was built for them.
// Use it from TestMain: os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	RemoveBuildArtifacts()
	return code
}

// RemoveBuildArtifacts removes the shared builds. Main calls it after the
// last test; a program that uses the harness without go test (the
// benchmark) calls it before it exits.
func RemoveBuildArtifacts() {
	buildArtifacts.Lock()
	defer buildArtifacts.Unlock()
	for _, path := range buildArtifacts.paths {
		os.RemoveAll(path)
	}
	buildArtifacts.paths = nil
}

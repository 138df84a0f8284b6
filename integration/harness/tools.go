// This file finds the pinned tools the same way hack/tools.sh builds them,
// so the tests run exactly the binaries `make test` built.

package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// versionsFile is the one place every pinned version is written down.
const versionsFile = "tools/versions.env"

// ContainerdRelease is one containerd version the tests run against, and
// where hack/tools.sh put its binaries.
type ContainerdRelease struct {
	Version string // e.g. "v2.4.2"
	// Tool is the name hack/tools.sh gives the build ("containerd" for the
	// current release, "containerd17" for 1.7, "containerd20" and
	// "containerd22" for the releases between).
	Tool string
	// ConfigVersion is the config.toml schema the daemon reads natively:
	// 1.7 reads version 2, 2.x reads version 3 (2.4 migrates it to 4 itself).
	ConfigVersion int
}

var (
	repoRootOnce sync.Once
	repoRootPath string
	repoRootErr  error
)

// RepoRoot finds the repository from the working directory of the test
// (go test runs each package in its own folder) by walking up to the folder
// that holds tools/versions.env.
func RepoRoot(t testing.TB) string {
	t.Helper()
	repoRootOnce.Do(func() { repoRootPath, repoRootErr = findRepoRoot() })
	if repoRootErr != nil {
		t.Fatal(repoRootErr)
	}
	return repoRootPath
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, versionsFile)); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s above the test's working directory", versionsFile)
		}
		dir = parent
	}
}

// PinnedVersions reads tools/versions.env: KEY=value lines, # comments.
func PinnedVersions(t testing.TB) map[string]string {
	t.Helper()
	path := filepath.Join(RepoRoot(t), versionsFile)
	versions, err := parseEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return versions
}

func parseEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	values := map[string]string{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %q is not KEY=value", path, line)
		}
		values[strings.TrimSpace(key)] = strings.Trim(strings.TrimSpace(value), `"'`)
	}
	return values, scanner.Err()
}

// ContainerdVersionsEnv names the pinned releases a run is limited to,
// separated by commas ("v2.4.2"): the cgroup v2 lane (`make test-cgroup2`)
// packs only the newest containerd into its guest. Unset, every pinned
// release runs.
const ContainerdVersionsEnv = "TEACH_CONTAINERD_VERSIONS"

// ContainerdReleases lists the pinned daemons the run tests, newest first:
// every pinned one, or those $TEACH_CONTAINERD_VERSIONS names.
func ContainerdReleases(t testing.TB) []ContainerdRelease {
	t.Helper()
	versions := PinnedVersions(t)
	pinned := []ContainerdRelease{
		{Version: mustHave(t, versions, "CONTAINERD_VERSION"), Tool: "containerd", ConfigVersion: 3},
		{Version: mustHave(t, versions, "CONTAINERD17_VERSION"), Tool: "containerd17", ConfigVersion: 2},
	}
	chosen, err := chooseReleases(pinned, os.Getenv(ContainerdVersionsEnv))
	if err != nil {
		t.Fatal(err)
	}
	return chosen
}

// chooseReleases keeps the pinned releases a comma-separated list names, in
// pinned order; an empty list keeps them all. A name that is not pinned is an
// error, not an empty run: a typo must not pass as a run of nothing.
func chooseReleases(pinned []ContainerdRelease, list string) ([]ContainerdRelease, error) {
	if strings.TrimSpace(list) == "" {
		return pinned, nil
	}
	wanted := map[string]bool{}
	for _, version := range strings.Split(list, ",") {
		wanted[strings.TrimSpace(version)] = true
	}
	var chosen []ContainerdRelease
	for _, release := range pinned {
		if wanted[release.Version] {
			chosen = append(chosen, release)
			delete(wanted, release.Version)
		}
	}
	for version := range wanted {
		return nil, fmt.Errorf("%s names containerd %s, which %s does not pin", ContainerdVersionsEnv, version, versionsFile)
	}
	return chosen, nil
}

// IntermediateReleases lists the pinned 2.0 and 2.2 releases, newest first.
// They start shims as 1.7 does (flags in, an address out) but are 2.x
// inside; the whole suite runs on the releases of ContainerdReleases, a smoke
// set on these (generations_test.go).
func IntermediateReleases(t testing.TB) []ContainerdRelease {
	t.Helper()
	versions := PinnedVersions(t)
	return []ContainerdRelease{
		{Version: mustHave(t, versions, "CONTAINERD22_VERSION"), Tool: "containerd22", ConfigVersion: 3},
		{Version: mustHave(t, versions, "CONTAINERD20_VERSION"), Tool: "containerd20", ConfigVersion: 3},
	}
}

// FindContainerdRelease returns the pinned release with the given version.
func FindContainerdRelease(t testing.TB, version string) ContainerdRelease {
	t.Helper()
	for _, release := range append(ContainerdReleases(t), IntermediateReleases(t)...) {
		if release.Version == version {
			return release
		}
	}
	t.Fatalf("containerd %s is not pinned in %s", version, versionsFile)
	return ContainerdRelease{}
}

func mustHave(t testing.TB, versions map[string]string, key string) string {
	t.Helper()
	value := versions[key]
	if value == "" {
		t.Fatalf("%s has no %s", versionsFile, key)
	}
	return value
}

// toolsRoot is the cache folder hack/tools.sh builds into: $TEACH_TOOLS_DIR,
// else $XDG_CACHE_HOME/containerd-shim-teach-v2/tools, else under ~/.cache.
func toolsRoot() (string, error) {
	if dir := os.Getenv("TEACH_TOOLS_DIR"); dir != "" {
		return dir, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "containerd-shim-teach-v2", "tools"), nil
}

// ToolDir is `hack/tools.sh dir NAME`: the folder holding the binaries of one
// pinned tool, named after its version so that a new pin builds next to the old.
func ToolDir(t testing.TB, name string) string {
	t.Helper()
	versions := PinnedVersions(t)
	keys := map[string]string{
		"containerd":   "CONTAINERD_VERSION",
		"containerd17": "CONTAINERD17_VERSION",
		"containerd20": "CONTAINERD20_VERSION",
		"containerd22": "CONTAINERD22_VERSION",
		"runc":         "RUNC_VERSION",
		"dockerd":      "DOCKERD_VERSION",
		"crictl":       "CRITOOLS_VERSION",
		// The release-style build of the stock runc shim that `make bench`
		// compares against (hack/tools.sh bench).
		"runc-shim-release": "CONTAINERD_VERSION",
	}
	key, ok := keys[name]
	if !ok {
		t.Fatalf("unknown tool %q", name)
	}
	root, err := toolsRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Every containerd build goes into containerd-<version>: containerd17
	// into containerd-v1.7.x, and so on.
	tool := name
	if strings.HasPrefix(name, "containerd") {
		tool = "containerd"
	}
	folder := tool + "-" + mustHave(t, versions, key)
	return filepath.Join(root, folder)
}

// ToolBinary returns the path of binary in tool's folder, and stops the test
// with the way to get it when it is not there.
func ToolBinary(t testing.TB, tool, binary string) string {
	t.Helper()
	path := filepath.Join(ToolDir(t, tool), binary)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: run hack/tools.sh first (make test does it): %v", path, err)
	}
	return path
}

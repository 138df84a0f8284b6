package main

import (
	"errors"
	"os/exec"
	"regexp"
	"strings"
)

// skippedTest is a test (or subtest) of the suite left out by name
// (-test.skip), and why. Only two reasons leave a test out: it needs a
// public registry's image, or something of that image that the ones built
// here from Debian's packages cannot have (images.go); or it needs CRIU,
// and CRIU does not work on this machine.
type skippedTest struct {
	Name   string
	Reason string
}

var publicImageTests = []skippedTest{
	{"TestImagePullSomePlatforms", "needs a public registry: fetches registry.k8s.io/e2e-test-images/busybox:1.29-2, a name written in the test"},
	{"TestImagePullWithDistSourceLabel", "needs a public registry: pulls registry.k8s.io/pause:3.6 and checks the label naming that registry as the source"},
	{"TestImageSupportedBySnapshotter_Error", "needs a public registry: pulls ghcr.io/containerd/windows/nanoserver:1809 and expects the platform check to refuse it; offline the pull fails before that check, so the test would pass without testing it"},
	{"TestExportAllCases/export_image_setting_ocispec.AnnotationRefName", "needs a public registry image: fetches ghcr.io/containerd/busybox by the digest of the public image's index, which no image built here can have"},
	{"TestBindLowPortNonOpt", "needs the public busybox image: it stops `nc -l -p 80` with SIGTERM and expects it to die of it (exit 143). The public busybox's nc is built with nc 1.10 compatibility, which catches SIGTERM and dies of it; Debian's busybox nc installs no handler, and as its pid namespace's init it never receives SIGTERM, so the test would wait forever"},
}

// checkpointTests are the suite's tests that run runc checkpoint or restore.
var checkpointTests = []string{
	"TestCheckpointRestorePTY",
	"TestCheckpointRestore",
	"TestCheckpointRestoreNewContainer",
	"TestCheckpointLeaveRunning",
	"TestCheckpointRestoreWithImagePath",
	"TestCheckpointOnPauseStatus",
}

// testsToSkip lists the tests left out on this machine: the public image
// ones always, the checkpoint ones when `criu check` fails.
func testsToSkip() []skippedTest {
	skips := append([]skippedTest(nil), publicImageTests...)
	if problem := criuProblem(); problem != "" {
		for _, name := range checkpointTests {
			skips = append(skips, skippedTest{name, "needs CRIU: " + problem})
		}
	}
	return skips
}

// criuProblem runs `criu check`, CRIU's own test of the kernel features it
// needs, and returns why it failed, or "" if it passed. (The suite itself
// only looks for a criu binary, and would run the tests with a CRIU that
// cannot work.)
func criuProblem() string {
	out, err := exec.Command("criu", "check").CombinedOutput()
	if err == nil {
		return ""
	}
	var execErr *exec.Error
	if errors.As(err, &execErr) {
		return "criu is not installed"
	}
	// CRIU's last line is its conclusion ("Could not initialize kernel
	// features detection."); the lines before, its steps to it.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return "`criu check` fails here: " + strings.TrimSpace(lines[len(lines)-1])
}

// skipPattern is the -test.skip value that leaves out exactly these tests,
// with their subtests. go test reads a pattern as alternatives (a top-level
// "|"), each a "/"-separated path of one expression per level:
// ^A$|^B$/^c$ skips test A and subtest c of B.
func skipPattern(skips []skippedTest) string {
	alternatives := make([]string, len(skips))
	for i, s := range skips {
		levels := strings.Split(s.Name, "/")
		for j, level := range levels {
			levels[j] = "^" + regexp.QuoteMeta(level) + "$"
		}
		alternatives[i] = strings.Join(levels, "/")
	}
	return strings.Join(alternatives, "|")
}

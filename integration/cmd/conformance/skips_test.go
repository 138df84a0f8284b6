package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// The pattern is checked by go test itself: a small suite (testdata/skipsuite)
// runs with it, and exactly the named tests and subtests stay out.
func TestSkipPatternLeavesOutExactlyTheNamedTests(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "skipsuite.test")
	build := exec.Command("go", "test", "-c", "-o", binary, ".")
	build.Dir = "testdata/skipsuite"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/skipsuite: %v\n%s", err, out)
	}
	pattern := skipPattern([]skippedTest{
		{Name: "TestImagePullSomePlatforms"},
		{Name: "TestExportAllCases/export_image_setting_ocispec.AnnotationRefName"},
	})
	out, err := exec.Command(binary, "-test.v", "-test.skip", pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("skipsuite -test.skip %q: %v\n%s", pattern, err, out)
	}
	var ran []string
	for _, m := range regexp.MustCompile(`(?m)^=== RUN\s+(\S+)$`).FindAllStringSubmatch(string(out), -1) {
		ran = append(ran, m[1])
	}
	want := []string{"TestImagePull", "TestExportAllCases", "TestExportAllCases/export_full_image"}
	if !slices.Equal(ran, want) {
		t.Errorf("with -test.skip %q these ran:\n%q\nwant:\n%q", pattern, ran, want)
	}
}

// Package skipsuite is a suite with the shapes of names the conformance
// runner leaves out: top-level tests, and a subtest whose name had spaces.
package skipsuite

import "testing"

func TestImagePull(t *testing.T) {}

func TestImagePullSomePlatforms(t *testing.T) {}

func TestExportAllCases(t *testing.T) {
	for _, name := range []string{"export full image", "export image setting ocispec.AnnotationRefName"} {
		t.Run(name, func(t *testing.T) {})
	}
}

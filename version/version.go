// Package version names this build of the shim. The Makefile sets Version and
// Revision with -ldflags "-X ...".
package version

import "runtime"

var (
	// Version is the release, or the output of `git describe`.
	Version = "dev"
	// Revision is the git commit the binary was built from.
	Revision = "unknown"
)

// GoVersion is the Go toolchain that built the binary.
var GoVersion = runtime.Version()

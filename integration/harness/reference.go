package harness

import (
	"fmt"
	"strings"
	"testing"
)

// Every test row runs twice: once with our shim and once with the stock runc
// shim (RuncRuntime), the reference that proves each assertion can be met.
// On a busy machine the stock shim was seen to lose things it had been
// handed: an exec's output after containerd restarted, a container's stdout,
// the /tasks/oom event before the exit it caused. That says something about
// the stock shim, not about the test, and not about ours: on the reference
// row such a failure is a finding, logged and collected, and the row passes.
// Our shim's row is held to the same assertion and fails. ShimFellShort is
// that one rule; a test calls it where it would call t.Errorf about what the
// shim under test did.
//
// Only the behaviour of the shim under test is softened this way. A daemon
// that does not start, a container that cannot be created, a subscription
// that breaks: those stay t.Fatal on both rows.

// FindingMarker starts the log line of every reference finding, so a run's
// findings can be found with grep.
const FindingMarker = "reference shim finding:"

// IsReference reports whether runtime is the stock shim the rows compare
// with, whose lost output or events are findings rather than failures.
func IsReference(runtime string) bool { return runtime == RuncRuntime }

// ShimFellShort reports that the shim of a row, running runtime, fell short
// of an assertion about its behaviour: it lost output, an event or an exit,
// or left something behind. On our shim's row it is t.Errorf. On the
// reference row it is logged as a finding (see ReferenceFinding), which it
// returns so the caller can record it, and the row goes on; it returns ""
// on our shim's row.
func ShimFellShort(t testing.TB, runtime, format string, args ...any) (finding string) {
	t.Helper()
	if !IsReference(runtime) {
		t.Errorf(format, args...)
		return ""
	}
	return ReferenceFinding(t, format, args...)
}

// ReferenceFinding logs what the stock shim failed to do, after
// FindingMarker, and returns the text. CI counts failed tests by the lines
// `--- FAIL` that go test prints; a finding quoting a container's or a
// tool's output could carry those words, so they are broken up here: a
// finding never reads as a failure.
func ReferenceFinding(t testing.TB, format string, args ...any) string {
	t.Helper()
	finding := strings.ReplaceAll(fmt.Sprintf(format, args...), "--- FAIL", "-- FAIL")
	t.Logf("%s %s", FindingMarker, finding)
	return finding
}

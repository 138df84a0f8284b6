package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
	"github.com/teach/containerd-shim-teach-v2/integration/reliability"
)

// The reliability tests report what they measured, not only pass or fail:
// each row appends one line of JSON (a reliability.Record) to the file
// $TEACH_RELIABILITY_REPORT names, and `go run ./integration/cmd/reliability-report`
// turns the lines into docs/reliability.md. `make soak` does both, so the
// figures in the document are those of a real run.
//
// $TEACH_SOAK=1 selects the long versions (1000 early exits, 2000 cycles,
// 1 GiB of output); without it every scenario runs a short version, which
// is what `make test` runs.

const (
	reportEnv = "TEACH_RELIABILITY_REPORT"
	soakEnv   = "TEACH_SOAK"
)

// soaking reports whether the long versions were asked for.
func soaking() bool {
	on, _ := strconv.ParseBool(os.Getenv(soakEnv))
	return on
}

// sized returns the short or the soak size of a scenario.
func sized(short, soak int) int {
	if soaking() {
		return soak
	}
	return short
}

// scenario is one row of one reliability scenario: its figures, and its
// result once the row ends.
type scenario struct {
	t       *testing.T
	started time.Time
	runtime string // the shim the row runs

	mu     sync.Mutex // guards record
	record reliability.Record
}

// scenarioSpec names a scenario for the report: its heading, the top-level
// test that runs it, and what it does and checks.
type scenarioSpec struct {
	name, test, about string
}

// newScenario starts recording a row of spec; s may be nil for a row that
// runs no daemon (a shim started by hand).
func newScenario(t *testing.T, spec scenarioSpec, s *session) *scenario {
	sc := &scenario{t: t, started: time.Now(), runtime: harness.TeachRuntime}
	command := fmt.Sprintf("go test ./integration/ -run '^%s$' -v", spec.test)
	if soaking() {
		command = soakEnv + "=1 " + command
	}
	sc.record = reliability.Record{
		Scenario:   spec.name,
		About:      spec.about,
		Test:       t.Name(),
		Command:    command,
		Mode:       mode(),
		Containerd: "none (shim started by hand)",
		Runtime:    "teach",
	}
	if s != nil {
		sc.runtime = s.runtime
		sc.record.Containerd = s.daemon.Release.Version
		sc.record.Runtime = rowName(s.runtime)
	}
	t.Cleanup(sc.finish)
	return sc
}

// mode is the record's name for the short or the soak versions.
func mode() string {
	if soaking() {
		return "soak"
	}
	return "short"
}

func rowName(runtime string) string {
	if runtime == harness.TeachRuntime {
		return "teach"
	}
	return "runc"
}

// figure records one measured value, in the order the row measured them.
func (sc *scenario) figure(name string, value any) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for i := range sc.record.Figures {
		if sc.record.Figures[i].Name == name {
			sc.record.Figures[i].Value = fmt.Sprint(value)
			return
		}
	}
	sc.record.Figures = append(sc.record.Figures, reliability.Figure{Name: name, Value: fmt.Sprint(value)})
}

// note records an observation worth reading in the report, and logs it.
func (sc *scenario) note(format string, args ...any) {
	sc.t.Helper()
	text := fmt.Sprintf(format, args...)
	sc.t.Log(text)
	sc.mu.Lock()
	sc.record.Notes = append(sc.record.Notes, text)
	sc.mu.Unlock()
}

// shimFellShort is harness.ShimFellShort for a scenario's row: err (nil
// when the check passed) says what the row's shim lost or left, bug names
// it. On the reference row it is a finding, kept in the row's record for
// the report, and the row goes on; on our row it is knownShimBug.
func (sc *scenario) shimFellShort(bug string, err error) {
	sc.t.Helper()
	if err == nil {
		return
	}
	if !harness.IsReference(sc.runtime) {
		sc.knownShimBug(bug, err)
		return
	}
	finding := harness.ReferenceFinding(sc.t, "%s: %v", bug, err)
	sc.mu.Lock()
	sc.record.Findings = append(sc.record.Findings, finding)
	sc.mu.Unlock()
}

// knownShimBug handles a check that failed (err != nil) on our row. A
// failure listed in knownShimBugs skips the rest of the row, saying which
// bug it is and what was seen, so that `make test` stays green until the
// shim is fixed; any other failure fails the test. Once the bug is fixed
// the check passes and the skip is never reached; its entry in
// knownShimBugs then goes.
func (sc *scenario) knownShimBug(bug string, err error) {
	sc.t.Helper()
	if err == nil {
		return
	}
	description, known := knownShimBugs[bug]
	if harness.IsReference(sc.runtime) || !known {
		sc.t.Errorf("%s: %v", bug, err)
		return
	}
	reason := fmt.Sprintf("known shim bug: %s (%s); seen: %v", description, bug, err)
	sc.mu.Lock()
	sc.record.Skip = reason
	sc.mu.Unlock()
	sc.t.Skip(reason)
}

// shimFellShort is harness.ShimFellShort for a row outside the reliability
// scenarios: on the reference row the finding is logged, and written to the
// reliability report as a record of its own; on ours it fails the test.
func (s *session) shimFellShort(t *testing.T, format string, args ...any) {
	t.Helper()
	finding := harness.ShimFellShort(t, s.runtime, format, args...)
	if finding == "" {
		return
	}
	err := appendRecord(reliability.Record{
		Test:       t.Name(),
		Mode:       mode(),
		Containerd: s.daemon.Release.Version,
		Runtime:    rowName(s.runtime),
		Result:     "pass",
		Findings:   []string{finding},
		Finished:   time.Now().UTC().Format(time.RFC3339),
	})
	if err != nil {
		t.Errorf("reliability report: %v", err)
	}
}

func (sc *scenario) finish() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	switch {
	case sc.t.Skipped():
		sc.record.Result = "skip"
	case sc.t.Failed():
		sc.record.Result = "fail"
	default:
		sc.record.Result = "pass"
	}
	sc.record.Seconds = time.Since(sc.started).Round(100 * time.Millisecond).Seconds()
	sc.record.Finished = time.Now().UTC().Format(time.RFC3339)
	if err := appendRecord(sc.record); err != nil {
		sc.t.Errorf("reliability report: %v", err)
	}
}

var reportMu sync.Mutex

// appendRecord writes one JSON line to the report file, if one is named.
// Rows of both daemons finish in parallel; one write per line, under a lock,
// keeps the lines whole.
func appendRecord(record reliability.Record) error {
	path := os.Getenv(reportEnv)
	if path == "" {
		return nil
	}
	line, err := json.Marshal(record)
	if err != nil {
		return err
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(line, '\n'))
	return err
}

// forEachDaemonWithTeach runs test for our runtime only, once per pinned
// containerd release, in parallel: the load and soak scenarios measure our
// shim; the stock shim has nothing to prove there. The long versions run on
// the newest release only: they measure the shim, not the daemon, and two
// of them at once would share two cores.
func forEachDaemonWithTeach(t *testing.T, test func(t *testing.T, s *session)) {
	releases := harness.ContainerdReleases(t)
	if soaking() {
		releases = releases[:1]
	}
	for _, release := range releases {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			daemon := harness.StartContainerd(t, release.Version)
			t.Run("teach", func(t *testing.T) {
				test(t, newSession(t, daemon, runtimeRow{name: "teach", runtime: harness.TeachRuntime}))
			})
		})
	}
}

// withTimeout gives the session a new deadline, for a soak that needs
// longer than sessionTimeout.
func (s *session) withTimeout(t *testing.T, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), s.ns), timeout)
	t.Cleanup(cancel)
	s.ctx = ctx
}

// joinLines is for failure messages listing many things.
func joinLines[T any](items []T) string {
	lines := make([]string, len(items))
	for i, item := range items {
		lines[i] = fmt.Sprint(item)
	}
	return strings.Join(lines, "\n")
}

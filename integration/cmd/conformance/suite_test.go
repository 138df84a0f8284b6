package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// test2json's events for a run of three tests: one passes, one fails with
// a subtest, one skips itself; then output outside any test.
const recordedEvents = `{"Action":"start","Package":"client"}
{"Action":"run","Package":"client","Test":"TestA"}
{"Action":"output","Package":"client","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"client","Test":"TestA","Output":"--- PASS: TestA (1.25s)\n"}
{"Action":"pass","Package":"client","Test":"TestA"}
{"Action":"run","Package":"client","Test":"TestB"}
{"Action":"run","Package":"client","Test":"TestB/sub"}
{"Action":"output","Package":"client","Test":"TestB/sub","Output":"    b_test.go:10: exit code 1, want 0\n"}
{"Action":"output","Package":"client","Test":"TestB/sub","Output":"    --- FAIL: TestB/sub (0.50s)\n"}
{"Action":"fail","Package":"client","Test":"TestB/sub"}
{"Action":"output","Package":"client","Test":"TestB","Output":"--- FAIL: TestB (0.75s)\n"}
{"Action":"fail","Package":"client","Test":"TestB"}
{"Action":"run","Package":"client","Test":"TestC"}
{"Action":"output","Package":"client","Test":"TestC","Output":"    c_test.go:3: User namespaces are unavailable\n"}
{"Action":"output","Package":"client","Test":"TestC","Output":"--- SKIP: TestC (0.00s)\n"}
{"Action":"skip","Package":"client","Test":"TestC"}
{"Action":"output","Package":"client","Output":"FAIL\n"}
{"Action":"fail","Package":"client"}
`

func TestReadEventsRecordsHowEachTestEnded(t *testing.T) {
	var log, progress bytes.Buffer
	result := &runResult{Tests: map[string]*testResult{}}
	if err := (suiteRun{Progress: &progress}).readEvents(strings.NewReader(recordedEvents), &log, result); err != nil {
		t.Fatal(err)
	}
	if want := []string{"TestA", "TestB", "TestC"}; !slices.Equal(result.Order, want) {
		t.Errorf("top-level tests %q, want %q", result.Order, want)
	}
	for name, want := range map[string]struct {
		action  string
		elapsed float64
	}{"TestA": {"pass", 1.25}, "TestB": {"fail", 0.75}, "TestB/sub": {"fail", 0.5}, "TestC": {"skip", 0}} {
		got := result.Tests[name]
		if got == nil || got.Action != want.action || got.Elapsed != want.elapsed {
			t.Errorf("%s: %+v, want %s after %.2fs", name, got, want.action, want.elapsed)
		}
	}
	if got := skipReason(result.Tests["TestC"]); got != "c_test.go:3: User namespaces are unavailable" {
		t.Errorf("TestC's skip reason %q", got)
	}
	if got := result.counts(); got != (counts{Passed: 1, Failed: 1, Skipped: 1}) {
		t.Errorf("counts %v, want 1 passed, 1 failed, 1 skipped", got)
	}
	if !strings.Contains(log.String(), "exit code 1, want 0") || !strings.HasSuffix(log.String(), "FAIL\n") {
		t.Errorf("the log lacks the suite's output:\n%s", log.String())
	}
	if want := "  PASS TestA (1.2s)\n  FAIL TestB (0.8s)\n  SKIP TestC (0.0s)\n"; progress.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", progress.String(), want)
	}
}

func TestCompareFindsWhatOnlyOneShimPasses(t *testing.T) {
	run := func(actions map[string]string, order ...string) *runResult {
		r := &runResult{Tests: map[string]*testResult{}, Order: order}
		for _, name := range order {
			r.Tests[name] = &testResult{Name: name, Action: actions[name]}
		}
		return r
	}
	stock := run(map[string]string{"TestA": "pass", "TestB": "pass", "TestC": "fail", "TestD": "pass"}, "TestA", "TestB", "TestC", "TestD")
	// TestD never ended with ours: the suite died before it.
	ours := run(map[string]string{"TestA": "pass", "TestB": "fail", "TestC": "pass"}, "TestA", "TestB", "TestC")
	c := compare(ours, stock)
	if want := []string{"TestB", "TestD"}; !slices.Equal(c.Regressions, want) {
		t.Errorf("regressions %q, want %q", c.Regressions, want)
	}
	if want := []string{"TestC"}; !slices.Equal(c.Improvements, want) {
		t.Errorf("improvements %q, want %q", c.Improvements, want)
	}
}

func TestConfirmKeepsOnlyTheRegressionsThatFailAgain(t *testing.T) {
	again := func(name, action string) *runResult {
		return &runResult{Tests: map[string]*testResult{name: {Name: name, Action: action}}, Order: []string{name}}
	}
	c := comparison{Regressions: []string{"TestFlaky", "TestBroken", "TestNotRunAgain"}}.confirm(map[string]*runResult{
		"TestFlaky":  again("TestFlaky", "pass"),
		"TestBroken": again("TestBroken", "fail"),
	})
	if want := []string{"TestBroken", "TestNotRunAgain"}; !slices.Equal(c.Regressions, want) {
		t.Errorf("regressions %q, want %q", c.Regressions, want)
	}
	if want := []string{"TestFlaky"}; !slices.Equal(c.PassedAgain, want) {
		t.Errorf("passed again %q, want %q", c.PassedAgain, want)
	}
}

func TestIsSuiteCgroup(t *testing.T) {
	for path, want := range map[string]bool{
		"/testing/TestContainerStart":                     true,
		"/testing-TestRegressionIssue4769/TestRegression": true,
		"/testing":           true,
		"/testingfoo/x":      false,
		"/teach-1a2b3c/demo": false,
		"/":                  false,
	} {
		if got := isSuiteCgroup(path); got != want {
			t.Errorf("isSuiteCgroup(%q) = %v, want %v", path, got, want)
		}
	}
}

package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// counts are the top-level tests of a run by how they ended. A test with
// subtests counts once: it passes only if they all pass.
type counts struct{ Passed, Failed, Skipped int }

func (r *runResult) counts() counts {
	var c counts
	for _, name := range r.Order {
		switch r.Tests[name].Action {
		case "pass":
			c.Passed++
		case "fail":
			c.Failed++
		case "skip":
			c.Skipped++
		}
	}
	return c
}

func (c counts) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", c.Passed, c.Failed, c.Skipped)
}

// comparison is what sets our shim's run apart from the stock shim's.
type comparison struct {
	// Regressions passed with the stock shim and did not with ours: each
	// is a difference a user of the suite's API would see.
	Regressions []string
	// Improvements passed with ours and not with the stock shim.
	Improvements []string
	// PassedAgain failed with ours and passed with the stock shim, then
	// passed with ours when run again alone.
	PassedAgain []string
}

// confirm moves the regressions that passed when run again out of
// Regressions; again holds those second runs by test name.
func (c comparison) confirm(again map[string]*runResult) comparison {
	var confirmed []string
	for _, name := range c.Regressions {
		if r, ok := again[name]; ok && r.action(name) == "pass" {
			c.PassedAgain = append(c.PassedAgain, name)
			continue
		}
		confirmed = append(confirmed, name)
	}
	c.Regressions = confirmed
	return c
}

func compare(ours, stock *runResult) comparison {
	var c comparison
	for _, name := range stock.Order {
		if stock.Tests[name].Action == "pass" && ours.action(name) != "pass" {
			c.Regressions = append(c.Regressions, name)
		}
	}
	for _, name := range ours.Order {
		if ours.Tests[name].Action == "pass" && stock.action(name) != "pass" {
			c.Improvements = append(c.Improvements, name)
		}
	}
	return c
}

// action is how a test ended, "not run" if it never ended (the suite died
// before it).
func (r *runResult) action(name string) string {
	if t, ok := r.Tests[name]; ok {
		return t.Action
	}
	return "not run"
}

// printRun prints a run's counts, its failures with their last lines, the
// tests the suite skipped by itself with its reason, and its leftovers.
func printRun(w io.Writer, r *runResult) {
	fmt.Fprintf(w, "\n%s: %s in %s\n", r.Runtime, r.counts(), r.Duration.Round(time.Second))
	if r.Err != nil {
		fmt.Fprintf(w, "  the suite itself failed: %v\n", r.Err)
		for _, line := range r.Outside {
			fmt.Fprintf(w, "       %s\n", line)
		}
	}
	for _, name := range r.sortedNames() {
		t := r.Tests[name]
		switch {
		case t.Action == "fail":
			fmt.Fprintf(w, "  FAIL %s\n", name)
			for _, line := range t.Output {
				fmt.Fprintf(w, "       %s\n", line)
			}
		case t.Action == "skip" && !strings.Contains(name, "/"):
			fmt.Fprintf(w, "  SKIP %s (by the suite: %s)\n", name, skipReason(t))
		}
	}
	for _, leftover := range r.Leftovers {
		fmt.Fprintf(w, "  left running after the suite, killed: %s\n", leftover)
	}
}

func (r *runResult) sortedNames() []string {
	names := make([]string, 0, len(r.Tests))
	for name := range r.Tests {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// skipReason is what a test printed last before its "--- SKIP" line: the
// message it gave t.Skip.
func skipReason(t *testResult) string {
	for i := len(t.Output) - 1; i >= 0; i-- {
		line := strings.TrimSpace(t.Output[i])
		if line == "" || strings.HasPrefix(line, "--- SKIP") || strings.HasPrefix(line, "=== ") {
			continue
		}
		return line
	}
	return "no reason given"
}

// printComparison prints the difference between our shim's run and the
// stock shim's.
func printComparison(w io.Writer, ours, stock *runResult, c comparison) {
	oc, sc := ours.counts(), stock.counts()
	fmt.Fprintf(w, "\ndifference (%s minus %s): %+d passed, %+d failed, %+d skipped\n",
		ours.Runtime, stock.Runtime, oc.Passed-sc.Passed, oc.Failed-sc.Failed, oc.Skipped-sc.Skipped)
	switch {
	case len(c.Regressions) == 0 && len(c.PassedAgain) > 0:
		fmt.Fprintf(w, "  %s passes every test %s passes, %d of them on a second run\n", ours.Runtime, stock.Runtime, len(c.PassedAgain))
	case len(c.Regressions) == 0:
		fmt.Fprintf(w, "  %s passes every test %s passes\n", ours.Runtime, stock.Runtime)
	}
	for _, name := range c.Regressions {
		fmt.Fprintf(w, "  REGRESSION %s: %s with %s, %s with %s\n", name, stock.action(name), stock.Runtime, ours.action(name), ours.Runtime)
	}
	for _, name := range c.PassedAgain {
		fmt.Fprintf(w, "  FAILED ONCE %s: failed with %s (above), passed with %s, and passed with %s when run again\n",
			name, ours.Runtime, stock.Runtime, ours.Runtime)
	}
	for _, name := range c.Improvements {
		fmt.Fprintf(w, "  passes only with %s: %s (%s with %s)\n", ours.Runtime, name, stock.action(name), stock.Runtime)
	}
}

// printSkips prints the tests left out by name, with the reason.
func printSkips(w io.Writer, skips []skippedTest) {
	fmt.Fprintf(w, "left out by name (-test.skip), %d:\n", len(skips))
	for _, s := range skips {
		fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Reason)
	}
}

package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// runTB lets the benchmark use the integration harness, which reports its
// failures and registers its cleanups through a testing.TB. Fatal ends the
// run: it panics with errFatal, which main recovers after running every
// cleanup, newest first, as go test would.
//
// The embedded testing.TB is never set; it only supplies the interface's
// unexported method. A harness call of a method not defined here panics,
// which shows at once what the adapter still lacks.
type runTB struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	verbose  bool
}

// errFatal is the panic value of Fatal and Skip.
type errFatal struct{ msg string }

func (t *runTB) Helper()      {}
func (t *runTB) Name() string { return "bench" }

func (t *runTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// runCleanups runs the registered cleanups, newest first.
func (t *runTB) runCleanups() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		f()
	}
}

func (t *runTB) Log(args ...any) { t.Logf("%s", fmt.Sprint(args...)) }

// Logf shows the harness's notes only with -v: they are about cleanup, and
// the table is what the run is for.
func (t *runTB) Logf(format string, args ...any) {
	if t.verbose {
		fmt.Fprintf(os.Stderr, "harness: "+format+"\n", args...)
	}
}

func (t *runTB) Error(args ...any) { t.Errorf("%s", fmt.Sprint(args...)) }

func (t *runTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	t.Fail()
}

func (t *runTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

func (t *runTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *runTB) FailNow()          { t.Fail(); panic(errFatal{"failed"}) }
func (t *runTB) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }
func (t *runTB) Fatalf(format string, args ...any) {
	t.Fail()
	panic(errFatal{fmt.Sprintf(format, args...)})
}
func (t *runTB) Skip(args ...any)                 { t.Fatalf("%s", fmt.Sprint(args...)) }
func (t *runTB) Skipf(format string, args ...any) { t.Fatalf(format, args...) }
func (t *runTB) SkipNow()                         { t.Fatalf("skipped") }
func (t *runTB) Skipped() bool                    { return false }

func (t *runTB) TempDir() string {
	dir, err := os.MkdirTemp("", "teach-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// librariesOnly is bench/librariesonly built as the shim is built, and the
// idle copies of it the memory phase runs beside the idle shims: the floor
// that any shim built on the same libraries stands on.
type librariesOnly struct {
	binary string
	size   int64
	procs  []*exec.Cmd
}

// buildLibrariesOnly builds the program with the shim's build settings.
func (s *session) buildLibrariesOnly() *librariesOnly {
	dir := s.tb.TempDir()
	l := &librariesOnly{binary: filepath.Join(dir, "librariesonly")}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", l.binary, "./bench/librariesonly")
	build.Dir = harness.RepoRoot(s.tb)
	build.Env = harness.ShimBuildEnv()
	if out, err := build.CombinedOutput(); err != nil {
		s.tb.Fatalf("build bench/librariesonly: %v\n%s", err, out)
	}
	l.size = fileSize(s.tb, l.binary)
	return l
}

// start starts count copies, each serving on a socket of its own, connected
// to the session's containerd, with GOMAXPROCS=1 as our shim's server runs.
func (l *librariesOnly) start(s *session, count int) {
	dir := filepath.Dir(l.binary)
	s.tb.Cleanup(l.stop)
	for i := range count {
		socket := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		cmd := exec.Command(l.binary, socket, s.daemon.TTRPCAddress, filepath.Join(dir, fmt.Sprintf("%d.fifo", i)))
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			s.tb.Fatal(err)
		}
		l.procs = append(l.procs, cmd)
		s.waitForSocket(socket, cmd)
	}
}

// waitForSocket waits until the copy listens: it reads no memory before its
// start is done. A copy that exits instead ends the run.
func (s *session) waitForSocket(socket string, cmd *exec.Cmd) {
	for {
		if _, err := os.Stat(socket); err == nil {
			return
		}
		var status syscall.WaitStatus
		if pid, _ := syscall.Wait4(cmd.Process.Pid, &status, syscall.WNOHANG, nil); pid == cmd.Process.Pid {
			s.tb.Fatalf("bench/librariesonly exited before it listened: %v", status)
		}
		s.sleep(10 * time.Millisecond)
	}
}

// memory is the median of each figure over the copies.
func (l *librariesOnly) memory(s *session) memory {
	var all []memory
	for _, cmd := range l.procs {
		m, err := readMemory(cmd.Process.Pid)
		if err != nil {
			s.tb.Fatalf("bench/librariesonly %d: %v", cmd.Process.Pid, err)
		}
		all = append(all, m)
	}
	return medianMemory(all)
}

// stop ends the copies by their PIDs and reaps them.
func (l *librariesOnly) stop() {
	for _, cmd := range l.procs {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	l.procs = nil
}

// librariesOnlyResult is what the idle copies of bench/librariesonly used.
type librariesOnlyResult struct {
	binarySize int64
	idle       memory // median over the copies
}

// librariesOnlyTable sets the libraries' floor beside both shims: the size
// of each binary and the idle memory of each process.
func (r *results) librariesOnlyTable() string {
	if r.librariesOnly == nil || r.memory == nil {
		return ""
	}
	o, t, f := r.memory[ours], r.memory[theirs], r.librariesOnly
	var b strings.Builder
	b.WriteString("| idle process (median) | binary | private | PSS | RSS |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	line := func(name string, size int64, m memory) {
		fmt.Fprintf(&b, "| %s | %.2f MB | %s | %s | %s |\n", name, float64(size)/1e6,
			format(float64(m.private), "MiB"), format(float64(m.pss), "MiB"), format(float64(m.rss), "MiB"))
	}
	line(ours+", one container", o.binarySize, o.idle)
	line("the libraries alone", f.binarySize, f.idle)
	line(theirs+", one container", t.binarySize, t.idle)
	ratio := func(a, b int64) string { return fmt.Sprintf("%.2f×", float64(a)/float64(b)) }
	fmt.Fprintf(&b, "| the libraries alone ÷ %s | %s | %s | %s | %s |\n", theirs,
		ratio(f.binarySize, t.binarySize), ratio(f.idle.private, t.idle.private), ratio(f.idle.pss, t.idle.pss), ratio(f.idle.rss, t.idle.rss))
	return b.String()
}

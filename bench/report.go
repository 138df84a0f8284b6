package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// results is everything one run measured.
type results struct {
	params         parameters
	machine        []string
	memory         map[string]*memoryResult
	lifecycle      map[string]durations
	lifecycleSteps stepSamples // per step of lifecycleSteps
	exec           map[string]durations
	execSteps      stepSamples // per step of execSteps
	start          map[string]durations
	stdio          map[string]float64
	hostPipe       hostPipes
	librariesOnly  *librariesOnlyResult         // bench/librariesonly, idle
	journal        map[string]durations         // our shim, journal on and off
	parallelExec   map[int]map[string]durations // by N, then by shim
}

// row is one line of the table: our figure, runc-v2's, the ratio, and the
// target the issue set for the ratio.
type row struct {
	measure       string
	ours, theirs  string
	ratio         float64
	target        string
	met           bool
	targetMissing bool // no target for this row
}

const (
	ours   = "teach"
	theirs = "runc-v2"
	mib    = 1 << 20
)

// atMost and atLeast build a row whose ratio must stay under or over limit.
func atMost(measure, unit string, o, t, limit float64) row {
	return row{measure: measure, ours: format(o, unit), theirs: format(t, unit), ratio: o / t,
		target: fmt.Sprintf("≤ %.2g×", limit), met: o/t <= limit}
}

func atLeast(measure, unit string, o, t, limit float64) row {
	return row{measure: measure, ours: format(o, unit), theirs: format(t, unit), ratio: o / t,
		target: fmt.Sprintf("≥ %.2g×", limit), met: o/t >= limit}
}

func info(measure, unit string, o, t float64) row {
	return row{measure: measure, ours: format(o, unit), theirs: format(t, unit), ratio: o / t, targetMissing: true}
}

func format(v float64, unit string) string {
	switch unit {
	case "MiB":
		return fmt.Sprintf("%.2f MiB", v/mib)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "MB/s":
		return fmt.Sprintf("%.0f MB/s", v)
	case "×":
		return fmt.Sprintf("%.3f×", v)
	case "":
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

func (r *results) rows() []row {
	var rows []row
	if r.memory != nil {
		o, t := r.memory[ours], r.memory[theirs]
		idle := fmt.Sprintf("%d idle containers, per shim (median)", r.params.idle)
		rows = append(rows,
			atMost(idle+": private", "MiB", float64(o.idle.private), float64(t.idle.private), 0.42),
			atMost(idle+": PSS", "MiB", float64(o.idle.pss), float64(t.idle.pss), 0.48),
			atMost(idle+": RSS", "MiB", float64(o.idle.rss), float64(t.idle.rss), 0.45),
		)
		rows = append(rows, r.fleetRows()...)
	}
	if r.lifecycle != nil {
		o, t := r.lifecycle[ours], r.lifecycle[theirs]
		rows = append(rows,
			atMost("lifecycle (create, start, wait, delete /bin/true): median", "ms", ms(o.median()), ms(t.median()), 1.0),
			atMost("lifecycle: p99", "ms", ms(o.percentile(99)), ms(t.percentile(99)), 1.1),
		)
	}
	if r.exec != nil {
		o, t := r.exec[ours], r.exec[theirs]
		rows = append(rows,
			atMost("exec /bin/true in a running container: median", "ms", ms(o.median()), ms(t.median()), 1.0),
			atMost("exec: p99", "ms", ms(o.percentile(99)), ms(t.percentile(99)), 1.1),
		)
	}
	if r.stdio != nil {
		o, t := r.stdio[ours], r.stdio[theirs]
		rows = append(rows,
			atLeast(fmt.Sprintf("stdout throughput, %d MiB (median of %d)", r.params.stdioMiB, r.params.stdioRuns), "MB/s", o, t, 1.0),
			hostPipeRow(fmt.Sprintf("stdout throughput ÷ host pipe, a shell's dd to cat (%.0f MB/s)", r.hostPipe.shell), o, t, r.hostPipe.shell),
			hostPipeRow(fmt.Sprintf("stdout throughput ÷ host pipe grown to 1 MiB (%.0f MB/s)", r.hostPipe.grown), o, t, r.hostPipe.grown),
		)
	}
	if r.start != nil {
		o, t := r.start[ours], r.start[theirs]
		rows = append(rows,
			atMost("shim start (`start` answers with the address): median", "ms", ms(o.median()), ms(t.median()), 1.0),
			info("shim start: p99", "ms", ms(o.percentile(99)), ms(t.percentile(99))),
		)
	}
	rows = append(rows, r.parallelExecRows()...)
	return rows
}

// hostPipeRow compares each shim's stdout throughput with the host's own
// pipe: the target is 0.8 of it for our shim.
func hostPipeRow(measure string, o, t, host float64) row {
	return row{measure: measure, ours: format(o/host, "×"), theirs: format(t/host, "×"), ratio: o / t,
		target: "teach ≥ 0.8×", met: o/host >= 0.8}
}

func (r *results) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| measure | %s | %s | %s ÷ %s | target | met |\n", ours, theirs, ours, theirs)
	b.WriteString("|---|---:|---:|---:|---|---|\n")
	for _, row := range r.rows() {
		met, target := "no", row.target
		if row.met {
			met = "yes"
		}
		if row.targetMissing {
			met, target = "", ""
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f× | %s | %s |\n", row.measure, row.ours, row.theirs, row.ratio, target, met)
	}
	return b.String()
}

// fleetRows are the memory of the 50 containers, ungrouped and grouped;
// none when the run skipped them (-fleet 0).
func (r *results) fleetRows() []row {
	if r.params.fleet == 0 {
		return nil
	}
	o, t := r.memory[ours], r.memory[theirs]
	var rows []row
	n := float64(r.params.fleet)
	ungrouped := fmt.Sprintf("%d containers, ungrouped", r.params.fleet)
	grouped := fmt.Sprintf("%d containers, grouped", r.params.fleet)
	rows = append(rows,
		info(ungrouped+": shim processes", "", float64(o.ungroupedShims), float64(t.ungroupedShims)),
		info(ungrouped+": total PSS of the shims", "MiB", float64(o.ungrouped.pss), float64(t.ungrouped.pss)),
		info(grouped+": shim processes", "", float64(o.groupShims), float64(t.groupShims)),
		info(grouped+": total PSS of the shims", "MiB", float64(o.grouped.pss), float64(t.grouped.pss)),
	)
	// The target for grouping compares against one ungrouped
	// runc-v2 shim's RSS, for both columns alike.
	oneRunc := float64(t.idle.rss)
	po, pt := float64(o.grouped.pss)/n/oneRunc, float64(t.grouped.pss)/n/oneRunc
	rows = append(rows, row{
		measure: grouped + ": PSS per container ÷ one ungrouped runc-v2 shim's RSS",
		ours:    format(po, "×"), theirs: format(pt, "×"), ratio: po / pt,
		target: "teach ≤ 0.05×", met: po <= 0.05,
	})
	return rows
}

// stepTables split the lifecycle's and the exec's medians into their
// steps, where a difference between the shims shows which step it comes
// from.
func (r *results) stepTables() []string {
	var tables []string
	for _, split := range []struct {
		heading string
		steps   []step
		samples stepSamples
	}{
		{"lifecycle step (median)", lifecycleSteps, r.lifecycleSteps},
		{"exec step (median)", execSteps, r.execSteps},
	} {
		if split.samples == nil {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "| %s | %s | %s | %s ÷ %s |\n", split.heading, ours, theirs, ours, theirs)
		b.WriteString("|---|---:|---:|---:|\n")
		for _, st := range split.steps {
			o, t := split.samples[ours][st.name].median(), split.samples[theirs][st.name].median()
			fmt.Fprintf(&b, "| %s | %.1f ms | %.1f ms | %.2f× |\n", st.what, ms(o), ms(t), float64(o)/float64(t))
		}
		tables = append(tables, b.String())
	}
	return tables
}

// notes are what the table cannot say in a cell; each is computed from
// what the run observed.
func (r *results) notes() []string {
	var notes []string
	if r.memory != nil && r.params.fleet > 0 {
		for _, label := range []string{ours, theirs} {
			m := r.memory[label]
			switch {
			case m.groupShims == 1:
				notes = append(notes, fmt.Sprintf("%s ran the %d grouped containers in one shim process.", label, r.params.fleet))
			case m.groupShims == m.ungroupedShims:
				notes = append(notes, fmt.Sprintf("%s ran the %d grouped containers in %d shim processes, as many as ungrouped: it does not group containers yet.", label, r.params.fleet, m.groupShims))
			default:
				notes = append(notes, fmt.Sprintf("%s ran the %d grouped containers in %d shim processes.", label, r.params.fleet, m.groupShims))
			}
		}
	}
	if r.lifecycle != nil {
		o, t := r.lifecycle[ours].median(), r.lifecycle[theirs].median()
		notes = append(notes, fmt.Sprintf("Lifecycle median difference: %+.1f ms per task.", ms(o-t)))
	}
	return notes
}

// machineDescription is what the figures depend on besides the shims.
func machineDescription(versions map[string]string) []string {
	var uts unix.Utsname
	unix.Uname(&uts)
	cgroup := "v1"
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		cgroup = "v2"
	} else if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
		cgroup = "v1 (hybrid: v1 controllers, v2 mounted at /sys/fs/cgroup/unified)"
	}
	return []string{
		fmt.Sprintf("CPU: %d cores, %s", runtime.NumCPU(), cpuModel()),
		fmt.Sprintf("memory: %.1f GiB", float64(totalMemory())/(1<<30)),
		fmt.Sprintf("kernel: %s %s", unix.ByteSliceToString(uts.Sysname[:]), unix.ByteSliceToString(uts.Release[:])),
		"cgroup: " + cgroup,
		fmt.Sprintf("containerd %s, runc %s, Go %s (the benchmark's and both shims' toolchain)",
			versions["CONTAINERD_VERSION"], versions["RUNC_VERSION"], strings.TrimPrefix(runtime.Version(), "go")),
	}
}

func cpuModel() string {
	return procField("/proc/cpuinfo", "model name")
}

func totalMemory() int64 {
	var kb int64
	fmt.Sscanf(procField("/proc/meminfo", "MemTotal"), "%d", &kb)
	return kb << 10
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		k, v, ok := strings.Cut(scanner.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// historyHeading starts the part of docs/benchmarks.md that people write:
// what each change bought. The run rewrites everything above it.
const historyHeading = "## History"

const defaultHistory = historyHeading + `

What each change bought, measured with ` + "`make bench`" + ` (or the phase named) before and after it.
`

// writeDoc writes docs/benchmarks.md: the generated part, then the history
// section as it was in the file.
func writeDoc(path string, r *results) error {
	history := defaultHistory
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		if i := strings.Index(string(old), "\n"+historyHeading+"\n"); i >= 0 {
			history = string(old[i+1:])
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	var b strings.Builder
	b.WriteString("# Benchmark: containerd-shim-teach-v2 against containerd-shim-runc-v2\n\n")
	b.WriteString("<!-- Everything above \"## History\" is written by `make bench` (bench/); edit the program, not this text. -->\n\n")
	b.WriteString("**Ratios, not absolute times, are the result.** Both shims run in the same run, under one\n")
	b.WriteString("containerd, interleaved step by step, so the machine's speed and noise fall on both alike; the\n")
	b.WriteString("absolute figures are only this machine's.\n\n")
	fmt.Fprintf(&b, "Run on %s.\n\n", r.params.date.Format("2006-01-02"))
	b.WriteString("## Machine\n\n")
	for _, line := range r.machine {
		fmt.Fprintf(&b, "- %s\n", line)
	}
	b.WriteString("\n## What was measured\n\n")
	for _, line := range r.params.describe() {
		fmt.Fprintf(&b, "- %s\n", line)
	}
	b.WriteString("\n## Result\n\n")
	b.WriteString(r.table())
	b.WriteString("\n")
	for _, note := range r.notes() {
		fmt.Fprintf(&b, "- %s\n", note)
	}
	for _, steps := range r.stepTables() {
		b.WriteString("\n" + steps)
	}
	if journal := r.journalTable(); journal != "" {
		b.WriteString("\nThe journal's cost, our shim alone (a container with the journal off by its annotation, one at the default level):\n\n" + journal)
	}
	if floor := r.librariesOnlyTable(); floor != "" {
		b.WriteString("\nThe floor under the memory rows: `bench/librariesonly` links the libraries the shim links from outside this repository and does what a shim does before its first container (it serves the task API, holds a connection to containerd, listens for signals, holds a FIFO, encodes and decodes a container's first messages), built as the shim is; it has no container and runs no runc. Its idle copies ran beside the idle shims, as many, read at the same moment (median):\n\n" + floor)
	}
	b.WriteString("\n")
	b.WriteString(history)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// progress shows on stderr how far a phase is, every tenth of it.
func progress(what string, done, total int) {
	if total < 10 || done%(total/10) == 0 || done == total {
		fmt.Fprintf(os.Stderr, "%s %s: %d/%d\n", time.Now().Format("15:04:05"), what, done, total)
	}
}

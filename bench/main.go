// Command bench measures containerd-shim-teach-v2 side by side with the
// stock containerd-shim-runc-v2, built the way containerd releases it, under
// one private containerd, and writes the result to docs/benchmarks.md.
//
//	make bench                         the full run, with the counts
//	go run ./bench -iterations 20 -stdio-mib 64 -fleet 10 -parallel-rounds 5 -doc ''   a quick look
//	go run ./bench -only parallel-exec -doc ''                       one phase
//
// The measures, in the order they run:
//
//  1. memory: per shim with 5 idle containers each (RSS, PSS, private, from
//     /proc/<pid>/smaps_rollup; medians), and the total over 50 containers,
//     ungrouped and with a group annotation (memory.go);
//  2. lifecycle: create, start, wait and delete a task running /bin/true;
//  3. journal: the lifecycle with our shim's journal on and off (journal.go);
//  4. exec: /bin/true in a running container (latency.go);
//  5. stdio: a container writes to stdout, the client reads it (stdio.go);
//  6. shim start: `start` until it answers with the address (shimstart.go);
//  7. parallel exec: N execs at once into one container (parallelexec.go).
//
// The daemon, the image and the cleanup come from integration/harness, the
// same code the integration tests run on; runTB (tb.go) adapts it to a
// program.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// parameters are the run's flags, recorded in the document with the result.
type parameters struct {
	iterations, warmup int
	idle, fleet        int
	settle             time.Duration
	stdioMiB           int64
	stdioRuns          int
	logLevel           string
	shim               string
	smapsDir           string // where to copy the idle shims' smaps; empty: nowhere
	parallelExecs      []int  // N of each parallel-exec measure
	parallelRounds     int
	phases             []string
	date               time.Time
	containerd         string // the pinned release, the daemon and the reference shim
}

var allPhases = []string{"memory", "lifecycle", "journal", "exec", "stdio", "start", "parallel-exec"}

// parallelExecWarmup is the parallel-exec phase's unmeasured rounds: each
// already runs dozens of execs.
const parallelExecWarmup = 2

func (p parameters) describe() []string {
	return []string{
		fmt.Sprintf("Our shim: `%s`, built by `make build` as `make install` builds it (static, no cgo, `-trimpath`, `-s -w`, Go's collector before Green Tea: `GOEXPERIMENT=nogreenteagc`).", harness.TeachShimBinaryName),
		fmt.Sprintf("Reference: `%s` of containerd %s, built as containerd releases it: "+
			"`CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w -extldflags -static\"` (`hack/tools.sh bench`); "+
			"it is first on the daemon's PATH, so `io.containerd.runc.v2` runs it.", harness.RuncShimBinaryName, p.containerd),
		fmt.Sprintf("One private containerd (log level %s, so both shims run without -debug), one namespace, the busybox test image.", p.logLevel),
		fmt.Sprintf("Memory: %d idle `sleep` containers per shim, read from `/proc/<shim pid>/smaps_rollup` after %v of settling "+
			"(private = Private_Clean + Private_Dirty); then %d containers per shim, once plain and once all carrying the annotation "+
			"`%s`, with the PSS of their shim processes summed. The shim of a container is the parent of its process.",
			p.idle, p.settle, p.fleet, groupAnnotation),
		fmt.Sprintf("Lifecycle: through the containerd Go client, NewTask, Wait, Start, the exit of `/bin/true`, Delete, on one container per shim "+
			"(so snapshot work is not counted); stdout and stderr are FIFOs the client reads, as with `ctr run`. %d rounds after %d warm-up rounds, "+
			"the two shims alternating within each round.", p.iterations, p.warmup),
		fmt.Sprintf("Journal: the lifecycle above, our shim only, for a container with the annotation `io.containerd.teach.v2.journal: off` "+
			"and one at the default level (info), alternating; %d rounds after %d warm-up.", p.iterations, p.warmup),
		fmt.Sprintf("Exec: Exec, Wait, Start, the exit of `/bin/true`, Delete, in a running container, FIFOs as above; %d rounds after %d warm-up, alternating.", p.iterations, p.warmup),
		fmt.Sprintf("Stdio: the container runs busybox `dd if=/dev/zero bs=1M count=%d` (%d MiB); timed from Start until the client has read every byte "+
			"from the FIFO and the exit is known; MB/s is 10^6 bytes per second; median of %d runs. The client reads the FIFO through Go's poller in reads of %d MiB. "+
			"Host pipe: the same busybox dd piped to the host's `cat` by a shell (a 64 KiB pipe), and again through a pipe grown to 1 MiB as our shim grows a busy stream's; both interleaved with the shims' runs.", p.stdioMiB, p.stdioMiB, p.stdioRuns, readBlock>>20),
		fmt.Sprintf("Shim start: the shim binary run as containerd 2.x runs it (same flags, environment, bootstrap parameters on stdin, bundle as working folder "+
			"with its log FIFO open), timed from exec until `start` exits with the address; the server it launched is then shut down through the task API. "+
			"%d rounds after %d warm-up, alternating.", p.iterations, p.warmup),
		fmt.Sprintf("Parallel exec: N clients (N = %s) each run the exec above (`/bin/true`, exit status checked) into one running container "+
			"per shim at the same moment; timed from the moment all N are let go until the last exec is deleted; "+
			"median of %d rounds after %d warm-up, alternating.", joinInts(p.parallelExecs, ", "), p.parallelRounds, parallelExecWarmup),
	}
}

func main() {
	os.Exit(run())
}

func run() (code int) {
	var p parameters
	defaultShim := os.Getenv("TEACH_SHIM_BIN")
	if defaultShim == "" {
		defaultShim = "bin/" + harness.TeachShimBinaryName
	}
	flag.IntVar(&p.iterations, "iterations", 300, "measured rounds of lifecycle, exec and shim start")
	flag.IntVar(&p.warmup, "warmup", 20, "unmeasured rounds before them")
	flag.IntVar(&p.idle, "idle", 5, "idle containers per shim for the per-shim memory")
	flag.IntVar(&p.fleet, "fleet", 50, "containers per shim for the total memory, ungrouped and grouped; 0 skips both")
	flag.DurationVar(&p.settle, "settle", 40*time.Second, "wait before reading the shims' memory; the runc shim's pkg/shim returns freed memory to the kernel every 30s")
	flag.Int64Var(&p.stdioMiB, "stdio-mib", 2048, "MiB the container writes to stdout")
	flag.IntVar(&p.stdioRuns, "stdio-runs", 5, "stdio runs per shim (the median is kept)")
	flag.StringVar(&p.logLevel, "log-level", "info", "containerd's log level; debug also makes the shims log at debug")
	flag.StringVar(&p.shim, "shim", defaultShim, "our shim binary, as `make build` makes it")
	parallelExecs := flag.String("parallel-execs", "20,50", "N of each parallel-exec measure, comma separated")
	flag.IntVar(&p.parallelRounds, "parallel-rounds", 20, "measured rounds of each parallel-exec measure")
	only := flag.String("only", strings.Join(allPhases, ","), "phases to run, comma separated; the document is written only when all ran")
	doc := flag.String("doc", "docs/benchmarks.md", "where to write the result, relative to the repository; empty: do not write")
	daemonLog := flag.String("daemon-log", "", "copy containerd's log (with the shims' logs in it) to this file at the end")
	verbose := flag.Bool("v", false, "show the harness's notes")
	flag.StringVar(&p.smapsDir, "smaps", "", "also copy each idle shim's /proc/<pid>/smaps into this folder, and print which mappings its memory is in")
	flag.Parse()
	p.phases = strings.Split(*only, ",")
	counts, err := parseInts(*parallelExecs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "-parallel-execs: %v\n", err)
		return 2
	}
	p.parallelExecs = counts
	p.date = time.Now()
	for _, phase := range p.phases {
		if !slices.Contains(allPhases, phase) {
			fmt.Fprintf(os.Stderr, "unknown phase %q; phases: %s\n", phase, strings.Join(allPhases, ","))
			return 2
		}
	}
	shimPath, err := filepath.Abs(p.shim)
	if err == nil {
		_, err = os.Stat(shimPath)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "our shim: %v (run `make build`, or `make bench`)\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tb := &runTB{verbose: *verbose}
	var s *session
	defer func() {
		if r := recover(); r != nil {
			fatal, ok := r.(errFatal)
			if !ok {
				panic(r)
			}
			fmt.Fprintf(os.Stderr, "bench: %s\n", fatal.msg)
			code = 1
		}
		if s != nil && *daemonLog != "" {
			copyFile(s.daemon.LogPath, *daemonLog)
		}
		tb.runCleanups()
		harness.RemoveBuildArtifacts()
	}()

	s = startSession(ctx, tb, shimPath, p.logLevel)
	versions := harness.PinnedVersions(tb)
	p.containerd = versions["CONTAINERD_VERSION"]
	r := &results{params: p, machine: machineDescription(versions)}
	for _, phase := range p.phases {
		switch phase {
		case "memory":
			r.memory, r.librariesOnly = s.measureMemory(p.idle, p.fleet, p.settle, p.smapsDir)
		case "lifecycle":
			r.lifecycle, r.lifecycleSteps = s.measureLifecycle(p.warmup, p.iterations)
		case "journal":
			r.journal = s.measureJournal(p.warmup, p.iterations)
		case "exec":
			r.exec, r.execSteps = s.measureExec(p.warmup, p.iterations)
		case "stdio":
			r.stdio, r.hostPipe = s.measureStdio(p.stdioMiB<<20, p.stdioRuns)
		case "start":
			r.start = s.measureShimStart(p.warmup, p.iterations)
		case "parallel-exec":
			r.parallelExec = s.measureParallelExec(p.parallelExecs, parallelExecWarmup, p.parallelRounds)
		}
	}

	fmt.Println()
	fmt.Println("Ratios, not absolute times, are the result (teach ÷ runc-v2, same run, interleaved).")
	if len(r.rows()) > 0 {
		fmt.Println()
		fmt.Print(r.table())
	}
	for _, note := range r.notes() {
		fmt.Println("- " + note)
	}
	for _, steps := range r.stepTables() {
		fmt.Println()
		fmt.Print(steps)
	}
	if journal := r.journalTable(); journal != "" {
		fmt.Println()
		fmt.Print(journal)
	}
	if floor := r.librariesOnlyTable(); floor != "" {
		fmt.Println()
		fmt.Print(floor)
	}
	if *doc != "" && len(p.phases) == len(allPhases) {
		path := filepath.Join(harness.RepoRoot(tb), *doc)
		if err := writeDoc(path, r); err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	}
	return 0
}

// copyFile keeps containerd's log, which holds the shims' logs too, for a
// look at the timestamps after the run.
func copyFile(from, to string) {
	data, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, data, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "copy containerd's log: %v\n", err)
	}
}

// parseInts reads a comma-separated list of positive counts.
func parseInts(list string) ([]int, error) {
	var counts []int
	for _, field := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive count", field)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

func joinInts(counts []int, sep string) string {
	fields := make([]string, len(counts))
	for i, n := range counts {
		fields[i] = strconv.Itoa(n)
	}
	return strings.Join(fields, sep)
}

// Command conformance runs containerd's own integration suite, the
// integration/client package of the pinned containerd release, against a
// private containerd with our shim as the runtime (TEST_RUNTIME=
// io.containerd.teach.v2), and with the stock runc shim as the reference:
//
//	make conformance                   # both runtimes, and the difference
//	go run ./integration/cmd/conformance -runtimes teach -run 'TestIssue10589'
//
// containerd tests its runc shim with this suite; a shim that passes every
// test the stock shim passes behaves, through containerd's Go client, as
// the stock shim does. It runs offline: the images the suite pulls are built
// from Debian's packages (images.go) and served, under their public names,
// by distribution's registry on 127.0.0.1 in each run's own network
// namespace (namespace.go, registry.go). The binaries come from
// hack/tools.sh conformance: the suite built as a test binary, its runc-fp
// failpoint wrapper, the registry, the pinned containerd and runc.
//
// The exit status is 1 when our shim fails a test the stock shim passes
// (or, with one runtime, when a test fails at all).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// runtimes are the shims the suite can run with, by their short name.
var runtimes = map[string]string{
	"teach": "io.containerd.teach.v2",
	"runc":  "io.containerd.runc.v2",
}

type options struct {
	shim     string
	runtimes []string
	logs     string
	run      string
	parallel int
	timeout  time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == namespaceCommand {
		os.Exit(runInNamespace(os.Args[2:]))
	}
	var opts options
	var names string
	flag.StringVar(&opts.shim, "shim", "bin/containerd-shim-teach-v2", "the shim binary to test")
	flag.StringVar(&names, "runtimes", "teach,runc", "the runtimes to run the suite with: teach, runc or both (our shim first)")
	flag.StringVar(&opts.logs, "logs", "bin/conformance", "folder for each run's whole output")
	flag.StringVar(&opts.run, "run", "", "run only the suite's tests matching this -test.run pattern")
	flag.IntVar(&opts.parallel, "parallel", 2, "the suite's -test.parallel")
	flag.DurationVar(&opts.timeout, "timeout", 15*time.Minute, "the suite's -test.timeout, for each runtime: a bound for a hung test, some 7 times a run's usual length")
	flag.Parse()
	asked := strings.Split(names, ",")
	for _, name := range asked {
		if _, ok := runtimes[name]; !ok {
			fmt.Fprintf(os.Stderr, "conformance: unknown runtime %q (teach or runc)\n", name)
			os.Exit(2)
		}
	}
	// Ours first, whatever the order asked: the report compares to the second.
	for _, name := range []string{"teach", "runc"} {
		if slices.Contains(asked, name) {
			opts.runtimes = append(opts.runtimes, name)
		}
	}
	for _, path := range []*string{&opts.shim, &opts.logs} {
		abs, err := filepath.Abs(*path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
			os.Exit(2)
		}
		*path = abs
	}
	if err := os.MkdirAll(opts.logs, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		os.Exit(1)
	}
	ok, err := run(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// tools are the folders hack/tools.sh conformance filled.
type tools struct {
	containerd, runc, registry, suite, debs string
}

func findTools(repo string) (tools, error) {
	var t tools
	for name, dir := range map[string]*string{
		"containerd": &t.containerd, "runc": &t.runc, "registry": &t.registry,
		"conformance": &t.suite, "conformance-debs": &t.debs,
	} {
		out, err := exec.Command(filepath.Join(repo, "hack/tools.sh"), "dir", name).Output()
		if err != nil {
			return tools{}, fmt.Errorf("hack/tools.sh dir %s: %w", name, err)
		}
		*dir = strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(*dir, ".done")); err != nil {
			return tools{}, fmt.Errorf("%s is not built: run hack/tools.sh conformance (make conformance does)", *dir)
		}
	}
	return t, nil
}

func run(opts options) (bool, error) {
	// Short: the suite's socket paths are made in here.
	work, err := os.MkdirTemp("/tmp", "teach-conformance-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(work)

	// A Ctrl-C reaches the suite too; the runner stays to clean up after it.
	signal.Ignore(syscall.SIGINT)
	if err := lockMachine(); err != nil {
		return false, err
	}
	if err := checkNoSuiteContainers(); err != nil {
		return false, err
	}
	base, err := prepare(opts, work)
	if err != nil {
		return false, err
	}
	results, again := runAll(base, opts, work)
	return report(opts, results, again), nil
}

// prepare makes what every run of the suite shares: the tools, a folder
// with the shim and runc-fp for PATH, the images on the registry's storage
// with a certificate to serve them, and the tests to leave out.
func prepare(opts options, work string) (suiteRun, error) {
	repo, err := os.Getwd()
	if err != nil {
		return suiteRun{}, err
	}
	if _, err := os.Stat(opts.shim); err != nil {
		return suiteRun{}, fmt.Errorf("build the shim first (make build): %w", err)
	}
	t, err := findTools(repo)
	if err != nil {
		return suiteRun{}, err
	}
	bin := filepath.Join(work, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return suiteRun{}, err
	}
	for name, target := range map[string]string{
		filepath.Base(opts.shim): opts.shim,
		"runc-fp":                filepath.Join(t.suite, "runc-fp"),
	} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			return suiteRun{}, err
		}
	}

	started := time.Now()
	storage := filepath.Join(work, "registry-storage")
	if err := publishImages(storage, work, t, repo); err != nil {
		return suiteRun{}, err
	}
	tls, err := makeRegistryTLS(work, publicRegistries())
	if err != nil {
		return suiteRun{}, err
	}
	fmt.Printf("the suite's images, built and pushed in %s, are served as %s\n",
		time.Since(started).Round(time.Second), strings.Join(publicRegistries(), " and "))

	skips := testsToSkip()
	printSkips(os.Stdout, skips)
	return suiteRun{
		TestBinary:      filepath.Join(t.suite, "client.test"),
		Path:            []string{bin, t.runc, t.containerd},
		Registry:        filepath.Join(t.registry, "registry"),
		RegistryStorage: storage,
		Registries:      publicRegistries(),
		TLS:             tls,
		Skip:            skipPattern(skips),
		Parallel:        opts.parallel,
		Timeout:         opts.timeout,
		Progress:        os.Stdout,
	}, nil
}

// runAll runs the suite with each runtime. A test that failed with our
// shim and passed with the stock one runs once more, alone, with ours: the
// suite has tests known to fail now and then whatever the shim
// (TestContentClient's CommitErrorState races its own cleanup). Those
// second runs are returned by test name.
func runAll(base suiteRun, opts options, work string) ([]*runResult, map[string]*runResult) {
	// runWith runs the suite (or the tests matching only) with a runtime,
	// in a folder and a log named label.
	runWith := func(name, only, label string) *runResult {
		s := base
		s.Runtime, s.Only = runtimes[name], only
		s.Dir, s.LogPath = filepath.Join(work, label), filepath.Join(opts.logs, label+".log")
		fmt.Printf("\n== containerd's integration/client suite with TEST_RUNTIME=%s\n", s.Runtime)
		if only != "" {
			fmt.Printf("   only the tests matching %s\n", only)
		}
		result := s.Run()
		fmt.Printf("the whole output, containerd's log included: %s\n", s.LogPath)
		return result
	}
	var results []*runResult
	for _, name := range opts.runtimes {
		results = append(results, runWith(name, opts.run, name))
	}
	again := map[string]*runResult{}
	if len(results) == 2 {
		for _, name := range compare(results[0], results[1]).Regressions {
			again[name] = runWith(opts.runtimes[0], "^"+regexp.QuoteMeta(name)+"$", opts.runtimes[0]+"-again-"+name)
		}
	}
	return results, again
}

// publishImages builds the suite's images and pushes them, under their
// public repositories and tags, to a registry on the machine's loopback
// with its storage in storage. That registry stops once they are there; in
// each run, another serves the same storage under the public names.
func publishImages(storage, work string, t tools, repo string) error {
	dir := filepath.Join(work, "images")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	built, err := buildImages(dir, t.debs, repo)
	if err != nil {
		return err
	}
	registryDir := filepath.Join(work, "registry-push")
	if err := os.Mkdir(registryDir, 0o755); err != nil {
		return err
	}
	reg, err := startRegistry(filepath.Join(t.registry, "registry"), registryDir,
		registryConfig{Storage: storage, Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer reg.Stop()
	ctx := context.Background()
	for _, img := range suiteImages {
		if err := push(ctx, img.onRegistry(reg.Host), built[img.ref]); err != nil {
			return err
		}
	}
	return nil
}

// report prints each run and, with both runtimes, the difference; it says
// whether the runs are a success.
func report(opts options, results []*runResult, again map[string]*runResult) bool {
	ok := true
	for _, r := range results {
		printRun(os.Stdout, r)
		if r.Err != nil {
			ok = false
		}
	}
	if opts.run != "" {
		fmt.Printf("\nonly the tests matching %q ran\n", opts.run)
	}
	ours := results[0]
	if len(results) == 2 {
		c := compare(ours, results[1]).confirm(again)
		printComparison(os.Stdout, ours, results[1], c)
		ok = ok && len(c.Regressions) == 0
	} else {
		ok = ok && ours.counts().Failed == 0
	}
	fmt.Printf("\nconformance: %s\n", ours.counts())
	return ok
}

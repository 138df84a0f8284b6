package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// suiteRun is how to run the suite once.
type suiteRun struct {
	Runtime    string   // TEST_RUNTIME: io.containerd.teach.v2 or io.containerd.runc.v2
	TestBinary string   // client.test
	Path       []string // folders put first on PATH: the shims, runc-fp, runc, containerd
	// The registry that serves the suite's images under their public names.
	Registry        string      // its binary
	RegistryStorage string      // its storage, where the images were pushed
	Registries      []string    // the public registries it stands for
	TLS             registryTLS // its certificate for their names
	Skip            string      // -test.skip
	Only            string      // -test.run, to run a part of the suite; "" runs it all
	Parallel        int         // -test.parallel
	Timeout         time.Duration
	Dir             string // the run's folder: /run, /var/lib, /etc/hosts and $TMPDIR of its namespaces
	LogPath         string // the suite's whole output, containerd's log included
	// Progress receives a line for each top-level test as it ends.
	Progress io.Writer
}

// testResult is how one test (or subtest) ended.
type testResult struct {
	Name    string
	Action  string // "pass", "fail" or "skip"
	Elapsed float64
	// Output is the test's last lines: why it failed or skipped.
	Output []string
}

// runResult is one run of the suite.
type runResult struct {
	Runtime  string
	Tests    map[string]*testResult // by name, subtests included
	Order    []string               // top-level tests in the order they ended
	Duration time.Duration
	// Leftovers are the processes the suite left behind once it exited,
	// each killed: a shim or a daemon in the run's namespace, a container
	// in a cgroup of the suite (cleanup.go).
	Leftovers []string
	// Err is set when the suite itself failed (a failed test aside): it did
	// not start, its TestMain gave up, or it was killed.
	Err error
	// Outside is the start of what was printed outside any test: why the
	// suite failed to start, when it did.
	Outside []string
}

// keptOutputLines is how much of a test's output its result keeps.
const keptOutputLines = 12

// clientLogPrefix starts the lines of containerd's Go client's debug log,
// which the suite writes into each test's output (a log hook): every
// request to the registry, every snapshot. Kept out of a test's last
// lines, they would push out its own.
const clientLogPrefix = "log_hook.go:"

// Run runs the suite and gathers what each test did. go test's test2json
// turns the verbose output into events, read as they come.
func (s suiteRun) Run() *runResult {
	result := &runResult{Runtime: s.Runtime, Tests: map[string]*testResult{}}
	started := time.Now()
	result.Err = s.run(result)
	result.Duration = time.Since(started)
	return result
}

func (s suiteRun) run(result *runResult) error {
	if err := s.makeFolders(); err != nil {
		return err
	}
	logFile, err := os.Create(s.LogPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	suite, events, eventStream, err := s.start(logFile)
	if err != nil {
		return err
	}
	namespace, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", suite.Process.Pid))
	readErr := s.readEvents(eventStream, logFile, result)
	eventsErr := events.Wait()
	suiteErr := suite.Wait()
	result.Leftovers = killLeftovers(namespace)

	switch {
	case readErr != nil:
		return readErr
	case eventsErr != nil:
		return fmt.Errorf("go tool test2json: %w", eventsErr)
	case len(result.Order) == 0:
		return fmt.Errorf("the suite ran no test (%v): see %s", suiteErr, s.LogPath)
	case suiteErr != nil && !result.anyFailed():
		// Every test passed, yet the binary failed: its TestMain did, or
		// a timeout or signal ended it.
		return fmt.Errorf("the suite exited with %v after its tests: see %s", suiteErr, s.LogPath)
	}
	return nil
}

// makeFolders makes the run's /run, /var/lib, $TMPDIR and /etc/hosts.
func (s suiteRun) makeFolders() error {
	for _, dir := range []string{"run", "var-lib", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, dir), 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(s.Dir, "hosts"), []byte(hostsFile(s.Registries)), 0o644)
}

// start starts the suite in new namespaces, whose first process is this
// program (namespace.go), and test2json, which reads the suite's output
// (its containerd's log comes last, on stderr) from one pipe, in the order
// it was written, and turns it into the events returned.
func (s suiteRun) start(log io.Writer) (suite, events *exec.Cmd, eventStream io.Reader, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	suite = exec.Command(self, inNamespaceArgs(s)...)
	suite.Env = s.env()
	suite.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET}

	events = exec.Command("go", "tool", "test2json", "-p", "client")
	outputReader, outputWriter, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	defer outputReader.Close()
	defer outputWriter.Close() // the children have their copies
	suite.Stdout, suite.Stderr = outputWriter, outputWriter
	events.Stdin, events.Stderr = outputReader, log
	if eventStream, err = events.StdoutPipe(); err != nil {
		return nil, nil, nil, err
	}
	if err := events.Start(); err != nil {
		return nil, nil, nil, fmt.Errorf("go tool test2json: %w", err)
	}
	if err := suite.Start(); err != nil {
		outputWriter.Close() // test2json reads the end of its input, and exits
		events.Wait()
		return nil, nil, nil, fmt.Errorf("start the suite: %w", err)
	}
	return suite, events, eventStream, nil
}

func (s suiteRun) args() []string {
	args := []string{
		"-test.v=test2json",
		"-test.root", // the suite's tests that need root run only with it
		"-test.parallel", strconv.Itoa(s.Parallel),
		"-test.timeout", s.Timeout.String(),
	}
	if s.Skip != "" {
		args = append(args, "-test.skip", s.Skip)
	}
	if s.Only != "" {
		args = append(args, "-test.run", s.Only)
	}
	return args
}

// env puts the pinned binaries first on PATH: the suite starts "containerd"
// from it, containerd finds the shims on it by name, and the shims find
// runc and runc-fp there. TMPDIR is the run's. SSL_CERT_FILE makes the
// suite and its containerd trust the registry's certificate.
// XDG_RUNTIME_DIR is dropped: containerd 2.x would put the shims' sockets
// there instead of /run.
func (s suiteRun) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "TMPDIR", "XDG_RUNTIME_DIR", "TEST_RUNTIME", "SSL_CERT_FILE", "SSL_CERT_DIR":
			continue
		}
		env = append(env, kv)
	}
	path := strings.Join(append(append([]string(nil), s.Path...), os.Getenv("PATH")), ":")
	return append(env, "PATH="+path, "TMPDIR="+filepath.Join(s.Dir, "tmp"),
		"TEST_RUNTIME="+s.Runtime, "SSL_CERT_FILE="+s.TLS.CA)
}

// testEvent is one line of test2json's output.
type testEvent struct {
	Action string
	Test   string
	Output string
}

// resultLine is the line a test ends with, "--- PASS: TestX (1.23s)": the
// only place its duration is written.
var resultLine = regexp.MustCompile(`^\s*--- (?:PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

// readEvents records each test's end, keeps its last lines of output, and
// copies all of the output to the log.
func (s suiteRun) readEvents(stream io.Reader, log io.Writer, result *runResult) error {
	outputs := map[string][]string{}
	elapsed := map[string]float64{}
	decoder := json.NewDecoder(stream)
	for {
		var event testEvent
		if err := decoder.Decode(&event); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read test2json's events: %w", err)
		}
		switch event.Action {
		case "output":
			io.WriteString(log, event.Output)
			line := strings.TrimRight(event.Output, "\n")
			if m := resultLine.FindStringSubmatch(line); m != nil {
				elapsed[m[1]], _ = strconv.ParseFloat(m[2], 64)
			}
			switch {
			case strings.Contains(line, clientLogPrefix):
				// The client's debug log: in the log file only.
			case event.Test != "":
				outputs[event.Test] = lastLines(append(outputs[event.Test], line), keptOutputLines)
			case len(result.Outside) < keptOutputLines:
				result.Outside = append(result.Outside, shorten(line))
			}
		case "pass", "fail", "skip":
			if event.Test == "" {
				continue // the binary's own end
			}
			test := &testResult{Name: event.Test, Action: event.Action, Elapsed: elapsed[event.Test], Output: outputs[event.Test]}
			result.Tests[event.Test] = test
			delete(outputs, event.Test)
			if !strings.Contains(event.Test, "/") {
				result.Order = append(result.Order, event.Test)
				if s.Progress != nil {
					fmt.Fprintf(s.Progress, "  %-4s %s (%.1fs)\n", strings.ToUpper(test.Action), test.Name, test.Elapsed)
				}
			}
		}
	}
}

// shorten cuts a line of output to what a summary can show.
func shorten(line string) string {
	const most = 300
	if len(line) > most {
		return line[:most] + "..."
	}
	return line
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

func (r *runResult) anyFailed() bool {
	for _, name := range r.Order {
		if r.Tests[name].Action == "fail" {
			return true
		}
	}
	return false
}

// Command reliability-report turns the JSON lines the reliability tests wrote
// ($TEACH_RELIABILITY_REPORT) into docs/reliability.md:
//
//	go run ./integration/cmd/reliability-report -in bin/reliability.jsonl -out docs/reliability.md
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/teach/containerd-shim-teach-v2/integration/reliability"
)

func main() {
	in := flag.String("in", "bin/reliability.jsonl", "the records the tests wrote")
	out := flag.String("out", "docs/reliability.md", "the document to write")
	command := flag.String("command", "make soak", "what produced the records, for the heading")
	revision := flag.String("revision", "", "the commit the tests ran on (default: the work tree's now)")
	flag.Parse()
	if *revision == "" {
		*revision = currentRevision()
	}
	if err := run(*in, *out, *command, *revision); err != nil {
		fmt.Fprintf(os.Stderr, "reliability-report: %v\n", err)
		os.Exit(1)
	}
}

func run(in, out, command, revision string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	records, err := reliability.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(records) == 0 {
		return fmt.Errorf("%s holds no records: did the reliability tests run?", in)
	}
	var doc bytes.Buffer
	err = reliability.Write(&doc, reliability.Run{Command: command, Revision: revision, Machine: machine()}, records)
	if err != nil {
		return err
	}
	return os.WriteFile(out, doc.Bytes(), 0o644)
}

func currentRevision() string {
	rev, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(rev))
}

// machine describes what the figures were measured on: they depend on it.
func machine() string {
	cgroup := "cgroup v1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgroup = "cgroup v2"
	}
	memory := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		fields := strings.Fields(string(data))
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			var kb int64
			fmt.Sscan(fields[1], &kb)
			memory = fmt.Sprintf(", %d GiB", (kb+(1<<19))>>20)
		}
	}
	return fmt.Sprintf("%d cores%s, %s, %s/%s", runtime.NumCPU(), memory, cgroup, runtime.GOOS, runtime.GOARCH)
}

package inspect

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func fixtureReport() *Report {
	return &Report{
		Namespace: "default", ID: "demo", Bundle: "/run/containerd/io.containerd.runtime.v2.task/default/demo",
		Shim: Shim{PID: 100, PPID: 1, ParentName: "init", SessionLeader: true, Socket: "/run/containerd/s/abc",
			Args: []string{"containerd-shim-teach-v2", "-id", "demo"}, RSSKiB: 9000},
		Processes: []Process{
			{PID: 101, PPID: 100, NSPID: 1, Depth: 1, Role: "init", Name: "sh", State: "S (sleeping)", Args: []string{"sh"}},
			{PID: 103, PPID: 101, NSPID: 3, Depth: 2, Name: "sleep", State: "S (sleeping)", Args: []string{"sleep", "9"}},
			{PID: 102, PPID: 100, NSPID: 2, Depth: 1, Role: "exec", Name: "top", State: "S (sleeping)", Args: []string{"top"}},
		},
		Namespaces:             []Namespace{{Type: "pid", Container: 5, Host: 4}, {Type: "user", Container: 6, Host: 6, Shared: true}},
		NamespacesComparedWith: "pid 1",
		Cgroup: Cgroup{Version: 2, Paths: []CgroupPath{{Path: "/default/demo"}}, MemoryBytes: 2 << 20, Pids: 3, PidsLimit: 50,
			CPUQuotaMicros: 50000, CPUPeriodMicros: 100000, OOMKills: 1, Freezer: "thawed"},
		Descriptors: []Descriptor{
			{FD: 21, Target: "/run/containerd/fifo/1/demo-stdout", Kind: kindFIFO, Meaning: "stdout FIFO"},
			{FD: 22, Target: "/run/containerd/fifo/1/demo-stdout", Kind: kindFIFO, Meaning: "stdout FIFO"},
		},
		Root: RootView{Path: "/proc/101/root", Entries: []string{"bin/", "etc/"}, OSRelease: "Debian GNU/Linux 12 (bookworm)"},
		Runc: RuncState{Command: "runc --root /run/containerd/runc/default state demo", Status: "running", PID: 101},
	}
}

func TestWriteText(t *testing.T) {
	var out bytes.Buffer
	if err := writeText(&out, fixtureReport()); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"Container demo in namespace default",
		"== The shim", "re-parented to init: not containerd's child", "its own (setsid)", "8.8 MiB resident",
		"== Processes", "101    100   1           init",
		"  103  101   3", // a child of init, indented under it
		"102    100   2           exec",
		"== Namespaces", "pid   5          4     its own", "user  6          6     the host's",
		"== Cgroup (v2)", "cgroup v2 alone", "memory.events", "cgroup.freeze", "(v2)  /default/demo",
		"memory     2.0 MiB  no limit", "pids       3        limit 50", "limit 50000 µs of every 100000 µs (0.50 CPU)",
		"OOM kills  1", "freezer    thawed",
		"21 22      fifo     /run/containerd/fifo/1/demo-stdout",
		"bin/  etc/", "/etc/os-release: Debian GNU/Linux 12 (bookworm)",
		"$ runc --root /run/containerd/runc/default state demo", "status   running",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text has no %q:\n%s", want, text)
		}
	}
}

func TestWriteJSONIsOneDocument(t *testing.T) {
	var out bytes.Buffer
	if err := writeJSON(&out, fixtureReport()); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	var back Report
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if dec.More() {
		t.Errorf("more than one JSON document")
	}
	if !reflect.DeepEqual(&back, fixtureReport()) {
		t.Errorf("the JSON does not read back as the report:\n%+v", back)
	}
}

// A container chooses its command lines and file names, and runc's errors
// quote them: the text shows every control byte as an escape, the JSON
// keeps the strings as they are.
func TestWriteTextEscapesWhatTheContainerControls(t *testing.T) {
	const hostile = "\033]0;PWNED\007\033[2J\033[31m"
	r := fixtureReport()
	r.Processes[0].Args = []string{"sh", "-c", "x\tcolumn\nrow" + hostile}
	r.Root.Entries = append(r.Root.Entries, hostile+"x")
	r.Root.OSRelease = "\033[1A\033[2K"
	r.Runc.Error = "runc: " + hostile
	r.Runc.Status = ""
	var out bytes.Buffer
	if err := writeText(&out, r); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if i := strings.IndexFunc(text, func(r rune) bool { return r != '\n' && r < ' ' }); i >= 0 {
		t.Errorf("the text holds the control byte %q at %d:\n%s", text[i], i, text)
	}
	for _, want := range []string{
		`sh -c x\tcolumn\nrow\x1b]0;PWNED\a\x1b[2J\x1b[31m`,
		`\x1b]0;PWNED\a\x1b[2J\x1b[31mx`,
		`/etc/os-release: \x1b[1A\x1b[2K`,
		`failed: runc: \x1b]0;PWNED`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text has no %s:\n%s", want, text)
		}
	}
	out.Reset()
	if err := writeJSON(&out, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Errorf("the JSON does not keep the strings as they are: %v\n%s", err, out.String())
	}
}

// The cgroup section says which version the host runs, and so which files
// the figures come from.
func TestCgroupSectionSaysWhichVersion(t *testing.T) {
	r := fixtureReport()
	r.Cgroup = Cgroup{Version: 1, Paths: []CgroupPath{{Controllers: "memory", Path: "/default/demo"}}, Freezer: "frozen"}
	var out bytes.Buffer
	if err := writeText(&out, r); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"== Cgroup (v1)", "cgroup v1: one tree per controller", "memory.oom_control", "freezer.state", "freezer    frozen"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text has no %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "cgroup.freeze") {
		t.Errorf("a v1 report speaks of v2's cgroup.freeze:\n%s", text)
	}
}

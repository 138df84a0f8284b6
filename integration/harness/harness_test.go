package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Unit tests of the harness's parsers; they need no daemon and no root.

func TestParseStat(t *testing.T) {
	// comm may hold spaces and parentheses; the fields after it are found
	// from the last ')'.
	line := []byte("4242 (containerd-shim) (x)) S 1 4242 4242 0 -1 4194560 0 0 0 0")
	info, err := parseStat(4242, line)
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessInfo{PID: 4242, Command: "containerd-shim) (x)", State: 'S', PPID: 1, PGID: 4242, SID: 4242}
	if info != want {
		t.Errorf("parseStat = %+v, want %+v", info, want)
	}
}

func TestParseStatReadsTheStartTime(t *testing.T) {
	line := []byte("77 (sleep) S 1 77 77 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 2560000 200")
	info, err := parseStat(77, line)
	if err != nil || info.Started != 123456 {
		t.Fatalf("parseStat: started %d, %v; want 123456", info.Started, err)
	}
	self, err := ReadProcess(os.Getpid())
	if err != nil || !StillRunning(self) {
		t.Fatalf("this process is not still running: %+v, %v", self, err)
	}
	self.Started++
	if StillRunning(self) {
		t.Fatal("a process started at another moment counted as this one")
	}
}

func TestParseStatOfThisProcess(t *testing.T) {
	info, err := ReadProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if info.PPID != os.Getppid() {
		t.Errorf("ppid = %d, want %d", info.PPID, os.Getppid())
	}
}

func TestParseMountInfoLine(t *testing.T) {
	line := `44 27 0:39 / /tmp/ctd-1/state/io.containerd.runtime.v2.task/ns/my\040id/rootfs rw,relatime shared:1 - overlay overlay rw,lowerdir=/a`
	m, err := parseMountInfoLine(line)
	if err != nil {
		t.Fatal(err)
	}
	want := Mount{ID: 44, ParentID: 27, MountPoint: "/tmp/ctd-1/state/io.containerd.runtime.v2.task/ns/my id/rootfs", FSType: "overlay", Source: "overlay"}
	if m != want {
		t.Errorf("parseMountInfoLine = %+v, want %+v", m, want)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:         "/plain",
		`/a\040b`:        "/a b",
		`/back\134slash`: `/back\slash`,
		`/cut\04`:        `/cut\04`, // too short to be an escape
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseMountInfoLine(f *testing.F) {
	f.Add(`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`)
	f.Add(`1 2 3 4 5 -`)
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseMountInfoLine(line)
		if err == nil && m.MountPoint == "" && m.FSType == "" && m.Source == "" {
			t.Errorf("accepted %q with no fields", line)
		}
	})
}

func TestHasFlag(t *testing.T) {
	args := []string{"/bin/containerd-shim-runc-v2", "-namespace", "ns", "-id", "c", "-address", "/tmp/ctd-1/containerd.sock"}
	if !hasFlag(args, "-address", "/tmp/ctd-1/containerd.sock") {
		t.Error("address flag not found")
	}
	if hasFlag(args, "-address", "/tmp/ctd-2/containerd.sock") {
		t.Error("another daemon's address matched")
	}
}

func TestParseEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "versions.env")
	content := "# comment\n\nCONTAINERD_VERSION=v2.4.2\nRUNC_VERSION = \"v1.5.3\"\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	values, err := parseEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if values["CONTAINERD_VERSION"] != "v2.4.2" || values["RUNC_VERSION"] != "v1.5.3" || len(values) != 2 {
		t.Errorf("parseEnvFile = %v", values)
	}
}

// ToolDir must name the folders hack/tools.sh builds into: both are asked.
func TestToolDirMatchesToolsScript(t *testing.T) {
	t.Setenv("TEACH_TOOLS_DIR", "/cache")
	script := filepath.Join(RepoRoot(t), "hack", "tools.sh")
	for _, tool := range []string{"containerd", "containerd17", "containerd20", "containerd22", "runc", "dockerd", "crictl", "runc-shim-release"} {
		out, err := exec.Command("bash", script, "dir", tool).Output()
		if err != nil {
			t.Fatalf("hack/tools.sh dir %s: %v", tool, err)
		}
		want := strings.TrimSpace(string(out))
		if got := ToolDir(t, tool); got != want {
			t.Errorf("ToolDir(%s) = %s, hack/tools.sh says %s", tool, got, want)
		}
	}
}

func TestChooseReleases(t *testing.T) {
	pinned := []ContainerdRelease{{Version: "v2.4.2"}, {Version: "v1.7.35"}}
	for list, want := range map[string][]string{
		"":               {"v2.4.2", "v1.7.35"},
		"v2.4.2":         {"v2.4.2"},
		" v1.7.35 ":      {"v1.7.35"},
		"v1.7.35,v2.4.2": {"v2.4.2", "v1.7.35"},
	} {
		chosen, err := chooseReleases(pinned, list)
		if err != nil {
			t.Fatalf("%q: %v", list, err)
		}
		var got []string
		for _, release := range chosen {
			got = append(got, release.Version)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%q chose %v, want %v", list, got, want)
		}
	}
	if _, err := chooseReleases(pinned, "v2.4.1"); err == nil || !strings.Contains(err.Error(), "v2.4.1") {
		t.Errorf("a version that is not pinned: %v, want an error naming it", err)
	}
}

// findingRecorder is a testing.TB that keeps what a check said, to see how
// ShimFellShort treats each row.
type findingRecorder struct {
	testing.TB
	errors, logs []string
}

func (r *findingRecorder) Helper() {}
func (r *findingRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *findingRecorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func TestShimFellShortFailsOurRowAndLogsTheReference(t *testing.T) {
	ours := &findingRecorder{TB: t}
	if finding := ShimFellShort(ours, TeachRuntime, "stdout %q", ""); finding != "" || len(ours.errors) != 1 || len(ours.logs) != 0 {
		t.Errorf("our row: finding %q, errors %q, logs %q; want one error", finding, ours.errors, ours.logs)
	}
	reference := &findingRecorder{TB: t}
	finding := ShimFellShort(reference, RuncRuntime, "output was %q", "--- FAIL: TestX")
	if len(reference.errors) != 0 || len(reference.logs) != 1 || !strings.HasPrefix(reference.logs[0], FindingMarker+" ") {
		t.Fatalf("reference row: errors %q, logs %q; want one log line starting %q", reference.errors, reference.logs, FindingMarker)
	}
	// CI counts "--- FAIL" lines: a finding must never print one.
	if strings.Contains(reference.logs[0], "--- FAIL") || finding != `output was "-- FAIL: TestX"` {
		t.Errorf("the finding reads as a failure: %q (returned %q)", reference.logs[0], finding)
	}
}

package trace

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

func TestFlagsBeforeAndAfterTheID(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "k8s.io", "web", "--follow", "--json"},
		{"web", "-n", "k8s.io", "-f", "--json"},
		{"--namespace=k8s.io", "--json", "--follow", "web"},
	} {
		r, err := parseArgs(args)
		if err != nil || r.id != "web" || r.namespace != "k8s.io" || !r.follow || !r.json {
			t.Errorf("%q: %+v, %v", args, r, err)
		}
	}
	if r, err := parseArgs([]string{"web"}); err != nil || r.namespace != "default" {
		t.Errorf("default namespace: %+v, %v", r, err)
	}
	for _, bad := range [][]string{{}, {"a", "b"}, {"--nosuch", "web"}} {
		var stdout, stderr bytes.Buffer
		if status := Main(bad, &stdout, &stderr); status != exitUsage || !strings.Contains(stderr.String(), "usage:") {
			t.Errorf("%q: status %d, stderr %q", bad, status, stderr.String())
		}
	}
}

func TestUnknownContainerSaysWhatToCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := Main([]string{"--journal-root", t.TempDir(), "-n", "prod", "web"}, &stdout, &stderr)
	if status != exitFailed || !strings.Contains(stderr.String(), `no journal for container "web" in namespace "prod"`) || stdout.Len() != 0 {
		t.Fatalf("status %d, stdout %q, stderr %q", status, stdout.String(), stderr.String())
	}
}

// --follow waits on inotify for the journal's folder; a folder it cannot
// watch makes it look on a timer instead.
func TestFollowWatchesTheFolderOrPolls(t *testing.T) {
	watch := watchFolders(t.TempDir())
	defer watch.Close()
	if watch.polling() {
		t.Fatal("no inotify watch on a folder that exists")
	}
	missing := watchFolders(filepath.Join(t.TempDir(), "gone"))
	defer missing.Close()
	if !missing.polling() {
		t.Fatal("a folder that cannot be watched is not polled")
	}
}

// runc's error messages, paths and argv reach the timeline: every control
// byte in them is drawn as an escape; --json prints the journal's bytes.
func TestTimelineEscapesWhatItDidNotWrite(t *testing.T) {
	const hostile = "\033]0;PWNED\007\033[2J\033[1A\033[2K"
	root, state := t.TempDir(), "/run/containerd"
	j, err := journal.Open(journal.ContainerDir(root, state, "default", "web"), journal.Options{ID: "web", Level: journal.Info})
	if err != nil {
		t.Fatal(err)
	}
	j.Record(journal.Entry{Kind: journal.KindJournal, Pid: 1, Name: "web", Msg: "info"})
	j.Record(journal.Entry{Kind: journal.KindOpen, Name: "stdout", Msg: "fifo", Path: "/fifo/" + hostile + "/web-stdout"})
	j.Record(journal.Entry{Kind: journal.KindRunc, Name: "exec", Argv: []string{"runc", "exec", hostile}, Code: journal.Code(1), Err: "Unknown", Msg: "exec failed: " + hostile})
	j.Close()

	var stdout, stderr bytes.Buffer
	Main([]string{"--journal-root", root, "--state", state, "web"}, &stdout, &stderr)
	text := stdout.String() + stderr.String()
	if i := strings.IndexFunc(text, func(r rune) bool { return r != '\n' && r < ' ' }); i >= 0 {
		t.Errorf("trace printed the control byte %q:\n%s", text[i], text)
	}
	if strings.Count(text, `\x1b]0;PWNED\a\x1b[2J\x1b[1A\x1b[2K`) != 3 {
		t.Errorf("trace does not show the path, the argv and runc's message with their escapes:\n%s", text)
	}
	stdout.Reset()
	Main([]string{"--journal-root", root, "--state", state, "web", "--json"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), `exec failed: \u001b]0;PWNED\u0007`) {
		t.Errorf("trace --json does not print the journal's line as it is:\n%s", stdout.String())
	}
}

// A container in an OOM loop, whose journal rotated: trace still starts
// with the Create, draws the flood's counts, marks where lines were lost,
// and ends with the number of OOM kills.
func TestTimelineOfAFloodKeepsItsStartAndCount(t *testing.T) {
	root, state := t.TempDir(), "/run/containerd"
	j, err := journal.Open(journal.ContainerDir(root, state, "default", "web"), journal.Options{ID: "web", Level: journal.Info, FileLimit: 4096})
	if err != nil {
		t.Fatal(err)
	}
	j.Record(journal.Entry{Kind: journal.KindJournal, Pid: 1, Name: "web", Msg: "info"})
	j.Record(journal.Entry{Kind: journal.KindRPCIn, Name: "Create"})
	start := journal.Now()
	for i := range 3000 {
		j.Record(journal.Entry{Kind: journal.KindOOM, Mono: start + int64(i)*int64(20*time.Millisecond), Msg: "the kernel's OOM killer killed a process in the container's cgroup"})
	}
	j.Close()

	var stdout, stderr bytes.Buffer
	status := Main([]string{"--journal-root", root, "--state", state, "web"}, &stdout, &stderr)
	text := stdout.String()
	for _, want := range []string{"  Create\n", "49 more: OOM kill: ", "… entries rotated out of the journal …"} {
		if !strings.Contains(text, want) {
			t.Errorf("trace has no %q:\n%s", want, text)
		}
	}
	if status != exitIncomplete || !strings.Contains(stderr.String(), "rotated out after the journal's first lines") {
		t.Errorf("status %d, stderr %q; want %d and a word on the lines lost", status, stderr.String(), exitIncomplete)
	}
}

// The cgroup's own word after a pause and after an OOM kill: which file
// said it tells a v2 host from a v1 one.
func TestTimelineSaysWhatTheCgroupSaid(t *testing.T) {
	root, state := t.TempDir(), "/run/containerd"
	j, err := journal.Open(journal.ContainerDir(root, state, "default", "web"), journal.Options{ID: "web", Level: journal.Info})
	if err != nil {
		t.Fatal(err)
	}
	j.Record(journal.Entry{Kind: journal.KindJournal, Pid: 1, Name: "web", Msg: "info"})
	j.Record(journal.Entry{Kind: journal.KindCgroup, Name: "pause", Path: "/sys/fs/cgroup/default/web/cgroup.events", Msg: "frozen 1"})
	j.Record(journal.Entry{Kind: journal.KindCgroup, Name: "resume", Msg: "open /sys/fs/cgroup/default/web/cgroup.events: no such file or directory"})
	j.Record(journal.Entry{Kind: journal.KindOOM, Path: "/sys/fs/cgroup/default/web/memory.events", Msg: "the kernel's OOM killer killed a process in the container's cgroup"})
	j.Close()

	var stdout, stderr bytes.Buffer
	Main([]string{"--journal-root", root, "--state", state, "web"}, &stdout, &stderr)
	for _, want := range []string{
		"cgroup after pause: frozen 1 in /sys/fs/cgroup/default/web/cgroup.events",
		"cgroup after resume: could not be read: open /sys/fs/cgroup/default/web/cgroup.events",
		"OOM kill: the kernel's OOM killer killed a process in the container's cgroup (counted by oom_kill in /sys/fs/cgroup/default/web/memory.events)",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("trace has no %q:\n%s", want, stdout.String())
		}
	}
}

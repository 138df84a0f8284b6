package trace

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
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

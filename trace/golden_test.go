package trace

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

var update = flag.Bool("update", false, "rewrite the golden files from what trace prints now")

// goldenCase is a journal recorded from a real run (testdata/*.jsonl, as
// the integration tests leave them) and what trace must print for it.
type goldenCase struct {
	name      string
	id, ns    string
	state     string
	ended     bool // the container was deleted: the journal's ended mark
	rotatedAt int  // >0: lines before this index went to journal.1.jsonl, and the ones before the first kept line are gone
	keptFrom  int
}

var goldenCases = []goldenCase{
	{name: "lifecycle", id: "traced", ns: "teach-33a6ba", state: "/tmp/ctd-71756281/state", ended: true},
	{name: "oom", id: "oom-traced", ns: "teach-b70d99", state: "/tmp/ctd-3157763873/state", ended: true},
	{name: "shim-killed", id: "orphaned", ns: "teach-c09bd7", state: "/tmp/ctd-2172744041/state"},
	{name: "shim-cleaned", id: "orphaned", ns: "teach-c09bd7", state: "/tmp/ctd-2172744041/state"},
	{name: "rotated", id: "traced", ns: "teach-33a6ba", state: "/tmp/ctd-71756281/state", ended: true, keptFrom: 30, rotatedAt: 50},
}

// install lays a recorded journal out as the shim would have: under root,
// by containerd state, namespace and id.
func (c goldenCase) install(t *testing.T, root string) {
	t.Helper()
	source := c.name
	if c.rotatedAt > 0 {
		source = "lifecycle"
	}
	data, err := os.ReadFile(filepath.Join("testdata", source+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := journal.ContainerDir(root, c.state, c.ns, c.id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	current := lines
	if c.rotatedAt > 0 {
		current = lines[c.rotatedAt:]
		os.WriteFile(filepath.Join(dir, "journal.1.jsonl"), []byte(strings.Join(lines[c.keptFrom:c.rotatedAt], "")), 0o600)
	}
	os.WriteFile(filepath.Join(dir, "journal.jsonl"), []byte(strings.Join(current, "")), 0o600)
	if c.ended {
		os.WriteFile(filepath.Join(dir, "ended"), nil, 0o600)
	}
}

func TestGoldenTimelines(t *testing.T) {
	time.Local = time.UTC
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			c.install(t, root)
			var stdout, stderr bytes.Buffer
			status := Main([]string{"-n", c.ns, "--state", c.state, "--journal-root", root, c.id}, &stdout, &stderr)
			got := fmt.Sprintf("%s--- stderr\n%s--- exit status %d\n", stdout.String(), stderr.String(), status)
			got = strings.ReplaceAll(got, root, journal.DefaultRoot)
			golden := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("trace printed:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}
}

package reliability

import (
	"strings"
	"testing"
)

func TestReadAndWrite(t *testing.T) {
	lines := `{"scenario":"soak","about":"Cycles.","test":"TestSoak/containerd-v2.4.2/teach","command":"make soak","mode":"soak","containerd":"v2.4.2","runtime":"teach","result":"pass","figures":[{"name":"cycles","value":"2000"},{"name":"leaked mounts","value":"0"}],"seconds":600,"finished":"2026-01-01T00:00:00Z"}

{"scenario":"restart","test":"TestRestart/containerd-v1.7.35/runc","command":"go test","mode":"soak","containerd":"v1.7.35","runtime":"runc","result":"pass","notes":["a | pipe"],"seconds":1,"finished":"2026-01-01T00:00:01Z"}
{"scenario":"restart","test":"TestRestart/containerd-v1.7.35/teach","command":"go test","mode":"soak","containerd":"v1.7.35","runtime":"teach","result":"skip","skip":"known shim bug: x","seconds":1,"finished":"2026-01-01T00:00:02Z"}
`
	records, err := Read(strings.NewReader(lines))
	if err != nil || len(records) != 3 {
		t.Fatalf("read %d records, %v", len(records), err)
	}
	var doc strings.Builder
	if err := Write(&doc, Run{Command: "make soak", Revision: "abc", Machine: "2 cores"}, records); err != nil {
		t.Fatal(err)
	}
	out := doc.String()
	for _, want := range []string{
		"| [soak](#soak) | 1 | 1 | 0 | 0 |",
		"| [restart](#restart) | 2 | 1 | 0 | 1 |",
		"| v2.4.2 | teach | pass | 600.0 | 2000 | 0 |",
		"- `TestRestart/containerd-v1.7.35/teach`: known shim bug: x",
		`a \| pipe`,
		"finished: 2026-01-01T00:00:02Z",
		"## Promises and the tests that check them",
		"`go test ./integration/ -run '^TestReliabilitySoak$'` | no rows in this run |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the document lacks %q:\n%s", want, out)
		}
	}
	// Within a scenario the teach row comes before the runc row.
	if strings.Index(out, "| v1.7.35 | teach |") > strings.Index(out, "| v1.7.35 | runc |") {
		t.Errorf("runc row before teach row:\n%s", out)
	}
}

func TestReadRefusesABrokenLine(t *testing.T) {
	if _, err := Read(strings.NewReader("{\"scenario\":\n")); err == nil {
		t.Fatal("a broken line was accepted")
	}
}

// A reference row's findings show in its scenario and in the list of every
// finding; a test outside the scenarios adds a line to that list only.
func TestWriteListsReferenceFindings(t *testing.T) {
	records := []Record{
		{Scenario: "restart", Test: "TestRestart/containerd-v2.4.2/runc", Containerd: "v2.4.2", Runtime: "runc", Result: "pass",
			Findings: []string{"exec output lost"}},
		{Test: "TestOOM/containerd-v1.7.35/runc", Containerd: "v1.7.35", Runtime: "runc", Result: "pass",
			Findings: []string{"want /tasks/oom before /tasks/exit"}},
	}
	var doc strings.Builder
	if err := Write(&doc, Run{Command: "make test"}, records); err != nil {
		t.Fatal(err)
	}
	out := doc.String()
	for _, want := range []string{
		"## Reference shim findings",
		"- `TestRestart/containerd-v2.4.2/runc`: exec output lost",
		"- `TestOOM/containerd-v1.7.35/runc`: want /tasks/oom before /tasks/exit",
		"- v2.4.2 / runc: reference shim finding: exec output lost",
		"| [restart](#restart) | 1 | 1 | 0 | 0 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the document lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "| [](#) |") {
		t.Errorf("a record without a scenario became a scenario:\n%s", out)
	}
}

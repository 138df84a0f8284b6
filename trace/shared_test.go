package trace

import (
	"bytes"
	"strings"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// A grouped shim's shim-wide journal is merged into each container's
// timeline: what names the container, and what names none while it lived;
// never what names another container of the group.
func TestGroupedTimelineMergesTheShimWideJournal(t *testing.T) {
	root, state, ns := t.TempDir(), "/run/containerd", "default"
	shared, err := journal.Open(journal.ShimDir(root, state, ns, "tg"), journal.Options{Level: journal.Info})
	if err != nil {
		t.Fatal(err)
	}
	own, err := journal.Open(journal.ContainerDir(root, state, ns, "a"), journal.Options{ID: "a", Level: journal.Info})
	if err != nil {
		t.Fatal(err)
	}
	at := int64(1_000_000_000)
	tick := func() int64 { at += 1_000_000; return at }
	shared.Record(journal.Entry{Mono: tick(), Kind: journal.KindJournal, ID: "a", Pid: 42, Name: "tg", Msg: "info"})
	own.Record(journal.Entry{Mono: tick(), Kind: journal.KindJournal, Pid: 42, Name: "tg", Msg: "info"})
	shared.Record(journal.Entry{Mono: tick(), Kind: journal.KindShim, ID: "a", Name: "container joined", Msg: "journal level info"})
	shared.Record(journal.Entry{Mono: tick(), Kind: journal.KindShim, ID: "b", Name: "container joined", Msg: "journal level info"})
	shared.Record(journal.Entry{Mono: tick(), Kind: journal.KindReaped, Pid: 77, Code: journal.Code(0), Msg: "held while a process was being started; no process claimed it"})
	own.Record(journal.Entry{Mono: tick(), Kind: journal.KindRPCIn, Name: "Delete"})
	own.Record(journal.Entry{Mono: tick(), Kind: journal.KindRPCOut, Name: "Delete", Took: 1000})
	own.Record(journal.Entry{Mono: tick(), Kind: journal.KindClosed})
	own.Close()
	shared.Record(journal.Entry{Mono: tick(), Kind: journal.KindShim, ID: "a", Name: "container left"})
	shared.Record(journal.Entry{Mono: tick(), Kind: journal.KindReaped, Pid: 78, Code: journal.Code(1)})
	shared.Record(journal.Entry{Mono: tick(), Kind: journal.KindRPCIn, ID: "b", Name: "Kill"})

	var stdout, stderr bytes.Buffer
	if status := Main([]string{"--journal-root", root, "a"}, &stdout, &stderr); status != exitOK {
		t.Fatalf("exit %d: %s", status, stderr.String())
	}
	var got []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if _, text, ok := strings.Cut(line, "  "); ok && strings.Contains(line, "+0.") {
			got = append(got, strings.TrimSpace(text[strings.LastIndex(text, "  ")+2:]))
		}
	}
	want := []string{
		"[shim] shim pid 42 started for group tg, in this container's bundle; its shim-wide journal opened",
		"journal opened by shim pid 42",
		"[shim] container joined, journal level info",
		"[shim] pid 77 exited, status 0 (held while a process was being started; no process claimed it)",
		"Delete → ok",
		"container deleted; journal closed",
		"[shim] container left",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("timeline:\n%s\nwant the lines:\n%s", stdout.String(), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(strings.Split(stdout.String(), "\n")[2], "shim pid 42 (group tg), journal level info") {
		t.Fatalf("header names the wrong journal's opening:\n%s", stdout.String())
	}
}

package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

// A v2 cgroup's freezer and OOM count are lines of its cgroup.events and
// memory.events, read here from a folder laid out as the kernel lays it.
func TestUnifiedReadsCgroupEventsAndMemoryEvents(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cgroup.events", "populated 1\nfrozen 1\n")
	write("memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n")
	cg := &unified{dir: dir}

	state, err := cg.Freezer()
	if err != nil {
		t.Fatal(err)
	}
	want := FreezerState{File: filepath.Join(dir, "cgroup.events"), Says: "frozen 1", Frozen: true}
	if state != want {
		t.Errorf("Freezer() = %+v, want %+v", state, want)
	}
	kills, err := cg.OOMKills()
	if err != nil || kills != 2 {
		t.Errorf("OOMKills() = %d, %v; want 2 (oom_kill, not oom_group_kill)", kills, err)
	}
	if got := cg.OOMKillsFile(); got != filepath.Join(dir, "memory.events") {
		t.Errorf("OOMKillsFile() = %s", got)
	}

	write("cgroup.events", "populated 1\nfrozen 0\n")
	if state, err := cg.Freezer(); err != nil || state.Frozen || state.Says != "frozen 0" {
		t.Errorf("thawed: Freezer() = %+v, %v", state, err)
	}
}

package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseSmapsRollup(t *testing.T) {
	data := []byte(`00400000-7ffd1d3f9000 ---p 00000000 00:00 0                          [rollup]
Rss:               14736 kB
Pss:                9216 kB
Pss_Dirty:          3700 kB
Pss_Anon:           3700 kB
Pss_File:           5516 kB
Pss_Shmem:             0 kB
Shared_Clean:       8000 kB
Shared_Dirty:          0 kB
Private_Clean:       300 kB
Private_Dirty:      3700 kB
Referenced:        14736 kB
Anonymous:          3700 kB
`)
	m, err := parseSmapsRollup(data)
	if err != nil {
		t.Fatal(err)
	}
	want := memory{rss: 14736 << 10, pss: 9216 << 10, private: (300 + 3700) << 10}
	if m != want {
		t.Errorf("parseSmapsRollup = %+v, want %+v", m, want)
	}
	if _, err := parseSmapsRollup([]byte("Rss: 1 kB\n")); err == nil {
		t.Error("a rollup without Pss and Private_* was accepted")
	}
}

func TestReadMemoryOfThisProcess(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.rss <= 0 || m.pss > m.rss || m.private > m.rss {
		t.Errorf("implausible memory of this process: %+v", m)
	}
}

func TestMedianAndPercentile(t *testing.T) {
	var d durations
	for i := 1; i <= 300; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := d.median(); got != 150500*time.Microsecond {
		t.Errorf("median = %v, want 150.5ms", got)
	}
	// Nearest rank: the 297th of 300.
	if got := d.percentile(99); got != 297*time.Millisecond {
		t.Errorf("p99 = %v, want 297ms", got)
	}
	if got := (durations{5 * time.Millisecond}).percentile(99); got != 5*time.Millisecond {
		t.Errorf("p99 of one sample = %v", got)
	}
	if got := medianOf([]float64{3, 1, 2}); got != 2 {
		t.Errorf("medianOf = %v, want 2", got)
	}
}

// The journal's rows compare our shim with itself: their table names its
// columns journal on and off, and the main table has none of them.
func TestJournalTableNamesItsColumns(t *testing.T) {
	r := &results{journal: map[string]durations{journalOn: samples(102, 104, 103), journalOff: samples(100, 101, 102)}}
	table := r.journalTable()
	for _, want := range []string{"| journal on | journal off | on ÷ off |", "| median | 103.0 ms | 101.0 ms | 1.02× | ≤ 1.03× | yes |"} {
		if !strings.Contains(table, want) {
			t.Errorf("journal table has no %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, ours) || strings.Contains(table, theirs) || len(r.rows()) != 0 {
		t.Errorf("the journal's figures are labelled as the two shims':\n%s%s", table, r.table())
	}
}

// Each N of the parallel-exec phase is a row of the main table, smallest
// first, held to the 0.8×.
func TestParallelExecRowsCarryTheTarget(t *testing.T) {
	r := &results{parallelExec: map[int]map[string]durations{
		50: {ours: samples(400, 420, 410), theirs: samples(600, 610, 590)},
		20: {ours: samples(180, 190, 170), theirs: samples(200, 210, 190)},
	}}
	table := r.table()
	for _, want := range []string{
		"| 20 parallel execs of /bin/true into one container: wall time, median of 3 | 180.0 ms | 200.0 ms | 0.90× | ≤ 0.8× | no |",
		"| 50 parallel execs of /bin/true into one container: wall time, median of 3 | 410.0 ms | 600.0 ms | 0.68× | ≤ 0.8× | yes |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table has no %q:\n%s", want, table)
		}
	}
	if strings.Index(table, "| 20 parallel") > strings.Index(table, "| 50 parallel") {
		t.Errorf("rows not in the order of N:\n%s", table)
	}
}

func TestParseInts(t *testing.T) {
	if got, err := parseInts("20, 50"); err != nil || len(got) != 2 || got[0] != 20 || got[1] != 50 {
		t.Errorf("parseInts(\"20, 50\") = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "20,x", "-3"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) accepted it", bad)
		}
	}
}

// samples are durations given in milliseconds.
func samples(millis ...float64) durations {
	var d durations
	for _, x := range millis {
		d = append(d, time.Duration(x*float64(time.Millisecond)))
	}
	return d
}

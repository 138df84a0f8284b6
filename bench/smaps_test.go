package main

import (
	"strings"
	"testing"
)

// Three mappings of the binary, one anonymous, the stack: each figure lands
// in its region, RSS and private apart.
func TestSmapsByRegion(t *testing.T) {
	const smaps = `00400000-006f1000 r-xp 00000000 fe:00 99                                 /usr/bin/shim
Rss:                3008 kB
Pss:                 300 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
VmFlags: rd ex mr mw me
006f1000-00a8c000 r--p 002f1000 fe:00 99                                 /usr/bin/shim
Rss:                3500 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
00a8c000-00abe000 rw-p 0068c000 fe:00 99                                 /usr/bin/shim
Rss:                 200 kB
Private_Clean:         4 kB
Private_Dirty:        56 kB
1cc5e8800000-1cc5e8c00000 rw-p 00000000 00:00 0 
Rss:                1444 kB
Private_Clean:         0 kB
Private_Dirty:      1444 kB
7ffd803fa000-7ffd8041b000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
Private_Clean:         0 kB
Private_Dirty:        12 kB
`
	got, err := smapsByRegion([]byte(smaps), "/usr/bin/shim")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]memory{
		smapsRegions[0]: {rss: 3008 << 10},
		smapsRegions[1]: {rss: 3500 << 10},
		smapsRegions[2]: {rss: 200 << 10, private: 60 << 10},
		smapsRegions[3]: {rss: 1444 << 10, private: 1444 << 10},
		smapsRegions[4]: {rss: 12 << 10, private: 12 << 10},
	}
	for region, m := range want {
		if got[region] != m {
			t.Errorf("%s: %+v, want %+v", region, got[region], m)
		}
	}
	var figure strings.Builder
	writeSmapsFigure(&figure, []string{"teach"}, map[string][]map[string]memory{"teach": {got}})
	if !strings.Contains(figure.String(), "| all | 7.97 | 1.48 |") {
		t.Errorf("figure:\n%s", figure.String())
	}
}

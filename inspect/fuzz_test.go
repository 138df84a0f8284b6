package inspect

import (
	"strings"
	"testing"
)

// The parsers read text the kernel, runc or a container's image wrote.
// Whatever it holds, they return a value or an error: no panic, no hang.
// Seeds: testdata/fuzz/<target>.

func FuzzParseStatus(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseStatus(data)
		if err == nil && s.Name == "" && !strings.Contains(string(data), "Name:") {
			t.Errorf("parseStatus accepted a status without a Name line")
		}
	})
}

func FuzzParseUnixSockets(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sockets, err := parseUnixSockets(data)
		if err == nil && len(sockets) > strings.Count(string(data), "\n")+1 {
			t.Errorf("%d sockets from %d lines", len(sockets), strings.Count(string(data), "\n")+1)
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		paths, err := parseProcCgroup(data)
		if err != nil {
			return
		}
		for _, version := range []int{1, 2} {
			files := cgroupFiles(version, paths)
			for _, file := range files.all() {
				if file != "" && !strings.HasPrefix(file, cgroupRoot+"/") {
					t.Errorf("cgroup file %q outside %s", file, cgroupRoot)
				}
			}
		}
	})
}

func FuzzParseNamespaceLink(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind, link string) {
		parseNamespaceLink(kind, link)
	})
}

func FuzzParseCgroupNumber(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseCgroupNumber(s); err == nil && n < 0 {
			t.Errorf("parseCgroupNumber(%q) = %d, negative", s, n)
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		parseOSRelease(data)
	})
}

func FuzzParseRuncState(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var st RuncState
		parseRuncState(data, &st)
	})
}

func FuzzFIFOMeaning(f *testing.F) {
	f.Fuzz(func(t *testing.T, id, path string) {
		ctx := fdContext{id: id, mates: []string{"mate"}, fifos: map[string]fifoOwner{"/run/x/e1-stdout": {id: "mate", exec: "e1"}}}
		if meaning := fifoMeaning(ctx, path); meaning == "" {
			t.Errorf("fifoMeaning(%q, %q) is empty", id, path)
		}
	})
}

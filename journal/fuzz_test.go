package journal

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseLine: any line is read or refused without a panic, and what is
// read writes back as a line that reads the same.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"mono":1,"time":"2024-01-01T00:00:00Z","kind":"rpc.in","id":"c1","name":"Create"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		if err != nil {
			return
		}
		if e.Kind == "" || e.Mono < 0 {
			t.Fatalf("accepted %q as %+v", line, e)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", e, err)
		}
		back, err := ParseLine(again)
		if err != nil {
			t.Fatalf("re-read %s: %v", again, err)
		}
		if !reflect.DeepEqual(normal(e), normal(back)) {
			t.Fatalf("round trip changed %+v into %+v", e, back)
		}
	})
}

// normal drops what JSON cannot tell apart: an empty list from none, and a
// time's monotonic reading and location name.
func normal(e Entry) Entry {
	if len(e.Argv) == 0 {
		e.Argv = nil
	}
	e.Time = e.Time.UTC()
	return e
}

// FuzzWithoutQueryValues: whatever the text, no value of a URI's query is
// left, and rewriting twice changes nothing more.
func FuzzWithoutQueryValues(f *testing.F) {
	f.Add("binary:///usr/bin/logger?token=s3cret&level=debug")
	f.Add(`stdio "file:///x?k=v" and binary://?=`)
	f.Fuzz(func(t *testing.T, s string) {
		once := withoutQueryValues(s)
		if twice := withoutQueryValues(once); twice != once {
			t.Fatalf("%q: once %q, twice %q", s, once, twice)
		}
		for rest := once; ; {
			start := firstURI(rest)
			if start < 0 {
				break
			}
			end := start + strings.IndexFunc(rest[start:], endsURI)
			if end < start {
				end = len(rest)
			}
			if _, query, ok := strings.Cut(rest[start:end], "?"); ok && strings.Contains(query, "=") {
				t.Fatalf("%q kept a query value: %q", s, once)
			}
			rest = rest[end:]
		}
	})
}

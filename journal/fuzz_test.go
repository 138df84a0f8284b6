package journal

import (
	"encoding/json"
	"reflect"
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

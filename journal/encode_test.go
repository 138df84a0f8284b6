package journal

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The writer's lines are what json.Marshal writes, for every field set and
// left out, and for strings that need escaping.
func TestAppendLineIsJSONMarshal(t *testing.T) {
	when := time.Date(2026, 12, 7, 5, 30, 1, 123456789, time.UTC)
	zone := time.FixedZone("", -(3*3600 + 30*60))
	entries := map[string]Entry{
		"least":             {Kind: KindRPCIn},
		"rpc in":            {Mono: 12345, Time: when, Kind: KindRPCIn, ID: "c1", Name: "Create"},
		"rpc out":           {Mono: 1, Time: when, Kind: KindRPCOut, ID: "c1", Exec: "e1", Name: "Start", Took: 1500000, Err: "not found", Msg: `process "e1" does not exist`},
		"runc":              {Time: when.In(zone), Kind: KindRunc, Argv: []string{"runc", "--root", "/run/runc", "create", "--bundle", "/b", "c1"}, Pid: 42, Code: Code(0), Took: 9},
		"exit":              {Kind: KindExit, Code: Code(-1), End: &Ending{Code: 137, Signal: 9, Cause: CauseKillRequest, By: "Kill request", KillSignal: 9, KillAt: 5, OOMAt: 6, Created: 1, Started: 2, Exited: 7, Stdin: 8, Stdout: -9, Stderr: 10}},
		"ending with zeros": {Kind: KindExit, End: &Ending{Cause: CauseExited}},
		"signal":            {Kind: KindSignal, Signal: 15, Pid: 1, All: true, FD: 3, Bytes: 1 << 40},
		"repeats":           {Kind: KindOOM, Path: "/sys/fs/cgroup/memory/x/memory.oom_control", Repeats: 17, Since: 99, Shared: true},
		"empty argv":        {Kind: KindRunc, Argv: []string{}},
		"one empty arg":     {Kind: KindRunc, Argv: []string{""}},
		"escapes":           {Kind: "odd\"kind\\", Msg: "tab\tnl\nret\rbs\bff\fnul\x00esc\x1bdel\x7f<a href='x'>&amp;</a>", Name: "\u2028\u2029é漢😀", Path: "bad \xff\xfe utf8 \xe2\x82 cut", Argv: []string{"\x01\x1f", "a\"b"}},
		"negative":          {Mono: -5, Kind: KindCgroup, Took: -1, Pid: -1, Signal: -2, FD: -3, Bytes: -4, Repeats: -5, Since: -6},
	}
	for name, e := range entries {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", name, err)
		}
		got, err := appendLine(nil, &e)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s (%v)\nwant %s", name, got, err, want)
		}
	}
}

// A time json.Marshal cannot write is an error for both.
func TestAppendLineRefusesWhatJSONMarshalRefuses(t *testing.T) {
	e := Entry{Kind: KindRPCIn, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := json.Marshal(e); err == nil {
		t.Fatal("json.Marshal wrote the year 10000")
	}
	if _, err := appendLine(nil, &e); err == nil {
		t.Fatal("appendLine wrote the year 10000")
	}
}

// FuzzAppendLine: for any strings, numbers and times, the writer's line is
// json.Marshal's.
func FuzzAppendLine(f *testing.F) {
	f.Add("rpc.in", "c1", "Create", "a\x00<b>\xff\u2028", "runc", int64(1), int64(1733549401123456789), 0, true)
	f.Fuzz(func(t *testing.T, kind, id, name, msg, arg string, mono, unixNano int64, code int, withEnd bool) {
		e := Entry{Mono: mono, Time: time.Unix(0, unixNano).UTC(), Kind: Kind(kind), ID: id, Exec: name + id,
			Name: name, Took: mono / 3, Err: msg + kind, Msg: msg, Argv: []string{arg, msg}, Pid: code,
			Code: Code(code), Signal: code % 64, All: code%2 == 0, Path: arg, FD: code / 5, Bytes: unixNano,
			Repeats: code / 7, Since: mono}
		if withEnd {
			e.End = &Ending{Code: code, Signal: code % 3, Cause: Cause(msg), By: name, KillSignal: code % 5,
				KillAt: mono, OOMAt: unixNano, Created: mono % 11, Started: mono % 13, Exited: mono, Stdin: unixNano % 17}
		}
		want, wantErr := json.Marshal(e)
		got, err := appendLine(nil, &e)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("appendLine error %v, json.Marshal error %v", err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

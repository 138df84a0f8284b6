package tomltable

import (
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/proto"
)

// The tests decode each document with Decode and with go-toml's Unmarshal,
// the library the shim used before, into the two types the shim reads the
// options table into: the runc options, and a struct like the shim's own
// (a field with a toml tag).

type ownOptions struct {
	Journal string `toml:"Journal"`
	Ignored string `toml:"-"`
}

// decodeBoth decodes text with both decoders.
func decodeBoth(text string) (ours, goToml *options.Options, oursOwn, goTomlOwn ownOptions, errOurs, errGoToml error) {
	ours, goToml = &options.Options{}, &options.Options{}
	errOurs = Decode([]byte(text), ours)
	if err := Decode([]byte(text), &oursOwn); errOurs == nil {
		errOurs = err
	}
	errGoToml = toml.Unmarshal([]byte(text), goToml)
	if err := toml.Unmarshal([]byte(text), &goTomlOwn); errGoToml == nil {
		errGoToml = err
	}
	return
}

// containerdMarshals is a runtime's options table as containerd 2.x's CRI
// plugin turns it into TOML text (go-toml v2's Marshal of the table read
// from config.toml), with keys of every kind the shim does not read.
func containerdMarshals(t *testing.T) string {
	text, err := toml.Marshal(map[string]any{
		"BinaryName":    "/usr/local/bin/runc",
		"Root":          "/run/containerd/runc's root",
		"SystemdCgroup": true,
		"NoPivotRoot":   false,
		"IoUid":         int64(1000),
		"IoGid":         int64(0),
		"ShimCgroup":    "/shims",
		"CriuWorkPath":  "/var/lib/criu \"work\"",
		"Journal":       "debug",
		"Unknown":       1.5,
		"List":          []any{"a", int64(2), map[string]any{"x": "y"}},
		"Nested":        map[string]any{"BinaryName": "not this one", "deeper": map[string]any{"k": true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// Documents go-toml reads: Decode must read the same.
var goodDocuments = map[string]string{
	"containerd 1.7 (go-toml v1's Marshal)": `BinaryName = "/usr/bin/crun"
IoGid = 0
IoUid = 0
NoNewKeyring = false
NoPivotRoot = false
Root = ""
ShimCgroup = ""
SystemdCgroup = true

[Extra]
  Key = "value"
`,
	"dockerd's options file, by hand": "# runtime options for docker\r\n" +
		"Root = '/var/run/docker/runtime-teach'   # literal string\r\n" +
		"binaryname = \"/usr/bin/runc\"\r\n" +
		"\r\n" +
		"  journal=\"off\"\r\n",
	"every kind of value, in keys the shim does not read": `
title = "TOML"
"quoted key" = 1
'literal key' = 2
dotted.key . "part" = 3
hex = 0xDEAD_beef
oct = 0o755
bin = 0b1101
big = -9_223_372_036_854_775_808
floats = [ 3.1415, -0.01, 5e+22, 1e06, -2E-2, 6.626e-34, 224_617.445_991, inf, -inf, +nan ]
dates = [ 1979-05-27T07:32:00Z, 1979-05-27T00:32:00.999999-07:00, 1979-05-27 07:32:00Z, 1979-05-27T07:32, 1979-05-27, 07:32:00, 00:32:00.999999, 07:32 ]
nested = [ [ 1, 2 ], [ "a", 'b', """c""" ], [ { x = 1, y = [2] } ], ]
multiline = """
Roses are red
Violets are "blue"\""""
joined = """\
    The quick brown \
    fox."""
raw = '''
The first newline is
trimmed in raw strings.
   All other whitespace
   is preserved. '' '''
escapes = "tab\t quote\" backslash\\ unicode\u00e9 \U0001F600 \x41 \e"
inline = { name = "x", point = { x = 1, y = 2 }, list = [1, 2,], }
multi_line_inline = {
  a = 1, # a comment
  b = "two",
}
BinaryName = "/opt/runc" # the shim reads this one
SystemdCgroup = false
IoUid = 4294967295

[table]
BinaryName = "not this one"
[table.sub]
x = 1
[[fruits]]
name = "apple"
[[fruits]]
name = "banana"
`,
	"empty":         "",
	"comments only": "# nothing\n\n   # at all\n",
	"a multi-line string for a read key": `Root = """
/run/with/newline"""
Journal = '''info'''`,
	"the last line without a newline": `ShimCgroup = "/a"`,
	"case of a tagged field":          `journal = "info"`,
}

func TestDecodeReadsWhatGoTomlReads(t *testing.T) {
	documents := map[string]string{"containerd 2.x (go-toml v2's Marshal)": containerdMarshals(t)}
	for name, text := range goodDocuments {
		documents[name] = text
	}
	for name, text := range documents {
		t.Run(name, func(t *testing.T) {
			ours, goToml, oursOwn, goTomlOwn, errOurs, errGoToml := decodeBoth(text)
			if errGoToml != nil {
				t.Fatalf("go-toml cannot read the document: %v", errGoToml)
			}
			if errOurs != nil {
				t.Fatalf("Decode: %v", errOurs)
			}
			if !proto.Equal(ours, goToml) || oursOwn != goTomlOwn {
				t.Errorf("Decode read\n%v %+v\ngo-toml read\n%v %+v", ours, oursOwn, goToml, goTomlOwn)
			}
		})
	}
}

func TestDecodeReadsTheValues(t *testing.T) {
	var opts options.Options
	if err := Decode([]byte(goodDocuments["every kind of value, in keys the shim does not read"]), &opts); err != nil {
		t.Fatal(err)
	}
	if opts.BinaryName != "/opt/runc" || opts.SystemdCgroup || opts.IoUid != 4294967295 {
		t.Errorf("Decode read %v", &opts)
	}
}

// Documents go-toml refuses: Decode must refuse them too, with a line
// number and what is wrong.
var badDocuments = map[string]string{
	"a string field given a number":        "BinaryName = 1",
	"a bool field given a string":          `SystemdCgroup = "true"`,
	"an integer field given a float":       "IoUid = 1.0",
	"an integer out of the field's range":  "IoUid = 4294967296",
	"a negative id":                        "IoGid = -1",
	"an integer out of TOML's range":       "IoUid = 9223372036854775808",
	"a key set twice":                      "Root = \"/a\"\nRoot = \"/b\"",
	"a field made a table":                 "[BinaryName]\nx = 1",
	"a field made a table by a dotted key": "BinaryName.x = 1",
	"a string not closed":                  `Root = "/a`,
	"a string across lines":                "Root = \"/a\n\"",
	"an unknown escape":                    `Root = "\q"`,
	"no value":                             "Root =",
	"no equals sign":                       "Root \"/a\"",
	"two values on a line":                 `Root = "/a" "/b"`,
	"an array not closed":                  "list = [1, 2",
	"an array without commas":              "list = [1 2]",
	"a table header not closed":            "[table",
	"a bare word":                          "Root = yes",
	"a number with a leading zero":         "IoUid = 01",
	"an underscore at the end":             "IoUid = 1_",
}

func TestDecodeRefusesWhatGoTomlRefuses(t *testing.T) {
	for name, text := range badDocuments {
		t.Run(name, func(t *testing.T) {
			_, _, _, _, errOurs, errGoToml := decodeBoth(text)
			if errGoToml == nil {
				t.Fatalf("go-toml reads the document")
			}
			if errOurs == nil {
				t.Fatalf("Decode read the document; go-toml: %v", errGoToml)
			}
			if !strings.HasPrefix(errOurs.Error(), "line ") {
				t.Errorf("Decode's error %q does not say the line", errOurs)
			}
		})
	}
}

// Whatever the text, Decode does not panic; and what go-toml reads, Decode
// reads alike. (Decode may read some documents go-toml refuses: it checks
// the keys it skips less strictly, such as a month 13 in a date.)
func FuzzDecodeAgreesWithGoToml(f *testing.F) {
	for _, text := range goodDocuments {
		f.Add(text)
	}
	for _, text := range badDocuments {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ours, goToml, oursOwn, goTomlOwn, errOurs, errGoToml := decodeBoth(text)
		if errGoToml != nil {
			return
		}
		if errOurs != nil {
			t.Fatalf("go-toml reads %q, Decode fails: %v", text, errOurs)
		}
		if !proto.Equal(ours, goToml) || !reflect.DeepEqual(oursOwn, goTomlOwn) {
			t.Fatalf("%q: Decode read %v %+v, go-toml %v %+v", text, ours, oursOwn, goToml, goTomlOwn)
		}
	})
}

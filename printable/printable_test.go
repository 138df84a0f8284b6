package printable

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The sequences a container put in its command line and file names to
// take over the administrator's terminal: set the window title, clear the
// screen, turn the text red; move the cursor up and erase the line.
const (
	titleAndClear = "\033]0;PWNED\007\033[2J\033[31m"
	eraseLineUp   = "\033[1A\033[2K"
)

func TestStringShowsControlBytesAsEscapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sleep 1000", "sleep 1000"},
		{titleAndClear + "red", `\x1b]0;PWNED\a\x1b[2J\x1b[31mred`},
		{eraseLineUp, `\x1b[1A\x1b[2K`},
		{"two\nlines\ttab\r", `two\nlines\ttab\r`},
		{"C1 \u009b31m", `C1 \u009b31m`},
		{"right-to-left \u202eexe.txt", `right-to-left \u202eexe.txt`},
		{"not UTF-8 \xff\xfe", `not UTF-8 \xff\xfe`},
		{`a\x1b that was typed`, `a\\x1b that was typed`},
		{"Grüße, 世界 │ ● →", "Grüße, 世界 │ ● →"},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFprintfEscapesDataNotTheFormat(t *testing.T) {
	type kind string
	var out bytes.Buffer
	Fprintf(&out, "== %s\n%d %s %v %s\n", "title"+eraseLineUp, 7, []string{"sh", titleAndClear}, errors.New("runc: "+eraseLineUp), kind("\033"))
	want := "== title\\x1b[1A\\x1b[2K\n7 [sh \\x1b]0;PWNED\\a\\x1b[2J\\x1b[31m] runc: \\x1b[1A\\x1b[2K \\x1b\n"
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}
}

// Whatever the input, the output holds only printable characters, and it
// says exactly what the input was: read as the inside of a Go string
// literal, it gives the input back.
func FuzzString(f *testing.F) {
	for _, seed := range []string{"", "plain", titleAndClear, eraseLineUp, "\xff\\\"", "\u202e\u0085", "\ufffd"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := String(in)
		if !utf8.ValidString(out) {
			t.Fatalf("String(%q) = %q is not UTF-8", in, out)
		}
		for _, r := range out {
			if !strconv.IsPrint(r) {
				t.Fatalf("String(%q) = %q holds %U", in, out, r)
			}
		}
		back, err := strconv.Unquote(`"` + strings.ReplaceAll(out, `"`, `\"`) + `"`)
		if err != nil || back != in {
			t.Fatalf("String(%q) = %q reads back as %q (%v)", in, out, back, err)
		}
	})
}

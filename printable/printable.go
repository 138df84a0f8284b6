// Package printable makes text safe to print on a terminal. `inspect` and
// `trace` show what a container controls (its command lines, its file
// names, /proc fields) and what runc said; a terminal takes an ESC byte in
// such text as the start of a command (set the window title, clear the
// screen, move the cursor up and erase what was printed). Every such string
// goes through String before it is printed: it is data, and shows as data.
package printable

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// String returns s with every byte a terminal would not print as itself
// written the way Go writes it in a quoted string: ESC as \x1b, a newline as
// \n, a bidirectional override as \u202e, a byte that is not UTF-8 as \xff.
// A backslash becomes \\, so that an escape in the output always stands for
// a byte of the input. Printable text, non-ASCII letters included, is kept
// as it is.
func String(s string) string {
	if plainASCII(s) {
		return s
	}
	escaped := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			escaped = fmt.Appendf(escaped, `\x%02x`, s[i])
		case r == '\\':
			escaped = append(escaped, `\\`...)
		case strconv.IsPrint(r):
			escaped = append(escaped, s[i:i+size]...)
		default:
			quoted := strconv.QuoteRune(r) // '\x1b', '\n', '\u202e'
			escaped = append(escaped, quoted[1:len(quoted)-1]...)
		}
		i += size
	}
	return string(escaped)
}

// plainASCII: s is printable ASCII without a backslash, the common case,
// which String returns as it is.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '\\' {
			return false
		}
	}
	return true
}

// Fprintf is fmt.Fprintf for a line whose format is the program's and whose
// arguments are data: every string (of any string type), []string and error
// argument is escaped with String first. Numbers and other values print as
// fmt prints them.
func Fprintf(w io.Writer, format string, args ...any) (int, error) {
	return fmt.Fprintf(w, format, escapeArgs(args)...)
}

// Sprintf is Fprintf into a string.
func Sprintf(format string, args ...any) string {
	return fmt.Sprintf(format, escapeArgs(args)...)
}

func escapeArgs(args []any) []any {
	escaped := make([]any, len(args))
	for i, arg := range args {
		switch v := arg.(type) {
		case string:
			escaped[i] = String(v)
		case []string:
			list := make([]string, len(v))
			for j, s := range v {
				list[j] = String(s)
			}
			escaped[i] = list
		case error:
			escaped[i] = String(v.Error())
		default:
			// A named string type (a journal kind) is data too.
			if value := reflect.ValueOf(arg); value.Kind() == reflect.String {
				escaped[i] = String(value.String())
			} else {
				escaped[i] = arg
			}
		}
	}
	return escaped
}

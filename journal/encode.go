package journal

import (
	"strconv"
	"unicode/utf8"
)

// appendLine appends e as one JSON line, byte for byte what
// json.Marshal(e) gives (TestAppendLineIsJSONMarshal, FuzzAppendLine).
//
// The writer does not use encoding/json because its cost stays in the shim:
// json.Marshal builds and keeps an encoder for each type by reflection (some
// 25 KiB for Entry and Ending), and every line leaves its garbage behind. A
// shim that handles a few requests and then waits never reaches its first
// collection, so all of it stays resident for the shim's life
// (docs/benchmarks.md, History). The reader (ParseLine) keeps encoding/json:
// it runs in `trace`, not in the shim.
//
// The error is json.Marshal's only one here: a time it cannot write.
func appendLine(b []byte, e *Entry) ([]byte, error) {
	b = append(b, `{"mono":`...)
	b = strconv.AppendInt(b, e.Mono, 10)
	b = append(b, `,"time":"`...)
	// Time's JSON is its text (RFC 3339, refused outside the years
	// 0-9999) in quotes; AppendText writes it in place.
	b, err := e.Time.AppendText(b)
	if err != nil {
		return b, err
	}
	b = append(b, '"')
	b = appendField(b, "kind", string(e.Kind))
	b = appendNonEmpty(b, "id", e.ID)
	b = appendNonEmpty(b, "exec", e.Exec)
	b = appendNonEmpty(b, "name", e.Name)
	b = appendNonZero(b, "took", e.Took)
	b = appendNonEmpty(b, "err", e.Err)
	b = appendNonEmpty(b, "msg", e.Msg)
	if len(e.Argv) > 0 {
		b = append(b, `,"argv":[`...)
		for i, arg := range e.Argv {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, arg)
		}
		b = append(b, ']')
	}
	b = appendNonZero(b, "pid", int64(e.Pid))
	if e.Code != nil {
		b = appendNumber(b, "code", int64(*e.Code))
	}
	b = appendNonZero(b, "signal", int64(e.Signal))
	if e.All {
		b = append(b, `,"all":true`...)
	}
	b = appendNonEmpty(b, "path", e.Path)
	b = appendNonZero(b, "fd", int64(e.FD))
	b = appendNonZero(b, "bytes", e.Bytes)
	if e.End != nil {
		b = append(b, `,"end":`...)
		b = appendEnding(b, e.End)
	}
	b = appendNonZero(b, "repeats", int64(e.Repeats))
	b = appendNonZero(b, "since", e.Since)
	return append(b, '}'), nil
}

func appendEnding(b []byte, end *Ending) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(end.Code), 10)
	b = appendNonZero(b, "signal", int64(end.Signal))
	b = appendField(b, "cause", string(end.Cause))
	b = appendNonEmpty(b, "by", end.By)
	b = appendNonZero(b, "killSignal", int64(end.KillSignal))
	b = appendNonZero(b, "killAt", end.KillAt)
	b = appendNonZero(b, "oomAt", end.OOMAt)
	b = appendNonZero(b, "created", end.Created)
	b = appendNonZero(b, "started", end.Started)
	b = appendNumber(b, "exited", end.Exited)
	b = appendNumber(b, "stdin", end.Stdin)
	b = appendNumber(b, "stdout", end.Stdout)
	b = appendNumber(b, "stderr", end.Stderr)
	return append(b, '}')
}

// appendField appends ,"name":"value"; the name is one of ours and needs
// no escaping.
func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendNonEmpty is appendField for a field tagged omitempty.
func appendNonEmpty(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	return appendField(b, name, value)
}

func appendNumber(b []byte, name string, value int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, value, 10)
}

// appendNonZero is appendNumber for a field tagged omitempty.
func appendNonZero(b []byte, name string, value int64) []byte {
	if value == 0 {
		return b
	}
	return appendNumber(b, name, value)
}

// appendString quotes s as encoding/json does by default: the characters
// JSON requires escaped, and also <, > and & (json.Marshal escapes them for
// HTML), bytes that are not UTF-8 as U+FFFD, and U+2028 and U+2029.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

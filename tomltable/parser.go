package tomltable

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// parser reads a TOML document from the start, one expression (a key =
// value line, a table header) at a time; toml.io/en/v1.1.0 is the grammar.
type parser struct {
	text string
	pos  int
	line int // for error messages
}

func (p *parser) end() bool                { return p.pos >= len(p.text) }
func (p *parser) peek() byte               { return p.text[p.pos] }
func (p *parser) rest() string             { return p.text[p.pos:] }
func (p *parser) startsWith(s string) bool { return strings.HasPrefix(p.rest(), s) }

// consume moves past s if the text goes on with it.
func (p *parser) consume(s string) bool {
	if !p.startsWith(s) {
		return false
	}
	p.pos += len(s)
	return true
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, args...))
}

// skipSpace skips spaces and tabs; skipComment a comment, up to its newline.
func (p *parser) skipSpace() {
	for !p.end() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
}

func (p *parser) skipComment() {
	if !p.end() && p.peek() == '#' {
		for !p.end() && p.peek() != '\n' {
			p.pos++
		}
	}
}

// newline moves past a newline ("\n" or "\r\n"), and reports whether there
// was one.
func (p *parser) newline() bool {
	if p.consume("\n") || p.consume("\r\n") {
		p.line++
		return true
	}
	return false
}

// skipBlankLines skips spaces, comments and newlines.
func (p *parser) skipBlankLines() {
	for {
		p.skipSpace()
		p.skipComment()
		if !p.newline() {
			return
		}
	}
}

// endOfLine checks that nothing but spaces and a comment follows an
// expression on its line.
func (p *parser) endOfLine() error {
	p.skipSpace()
	p.skipComment()
	if p.end() || p.newline() {
		return nil
	}
	return p.errorf("unexpected %.20q after the expression", p.rest())
}

// tableHeader reads "[key]" or "[[key]]" (an array of tables).
func (p *parser) tableHeader() ([]string, error) {
	closing := "]"
	if p.consume("[[") {
		closing = "]]"
	} else {
		p.pos++
	}
	p.skipSpace()
	key, err := p.key()
	if err != nil {
		return nil, err
	}
	if !p.consume(closing) {
		return nil, p.errorf("the table header %s is not closed by %s", strings.Join(key, "."), closing)
	}
	return key, nil
}

func (p *parser) keyValue() ([]string, value, error) {
	key, err := p.key()
	if err != nil {
		return nil, value{}, err
	}
	if !p.consume("=") {
		return nil, value{}, p.errorf("want = after the key %s", strings.Join(key, "."))
	}
	p.skipSpace()
	v, err := p.value()
	return key, v, err
}

// key reads a key: simple keys joined by dots ("a.b", "a . 'b c'"), and
// the spaces after it.
func (p *parser) key() ([]string, error) {
	var key []string
	for {
		simple, err := p.simpleKey()
		if err != nil {
			return nil, err
		}
		key = append(key, simple)
		p.skipSpace()
		if !p.consume(".") {
			return key, nil
		}
		p.skipSpace()
	}
}

// simpleKey reads a bare key (letters, digits, _ and -) or a quoted one.
func (p *parser) simpleKey() (string, error) {
	switch {
	case p.startsWith(`"""`), p.startsWith(`'''`):
		return "", p.errorf("a key cannot be a multi-line string")
	case p.startsWith(`"`):
		return p.basicString()
	case p.startsWith(`'`):
		return p.literalString()
	}
	start := p.pos
	for !p.end() && isBareKeyByte(p.peek()) {
		p.pos++
	}
	if p.pos == start {
		return "", p.errorf("want a key, not %.20q", p.rest())
	}
	return p.text[start:p.pos], nil
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value reads a value: a string, an array or inline table (read to be
// skipped), or a bare scalar.
func (p *parser) value() (value, error) {
	var text string
	var err error
	switch {
	case p.end():
		return value{}, p.errorf("want a value")
	case p.startsWith(`"""`):
		text, err = p.multiLineString(`"""`, true)
	case p.startsWith(`"`):
		text, err = p.basicString()
	case p.startsWith(`'''`):
		text, err = p.multiLineString(`'''`, false)
	case p.startsWith(`'`):
		text, err = p.literalString()
	case p.startsWith("["):
		return value{kind: otherValue}, p.array()
	case p.startsWith("{"):
		return value{kind: otherValue}, p.inlineTable()
	default:
		return p.scalar()
	}
	return value{kind: stringValue, text: text}, err
}

// array reads "[v, v, …]": values of any kind, over any number of lines,
// with comments and a trailing comma allowed.
func (p *parser) array() error {
	return p.sequence("an array", "]", func() error {
		_, err := p.value()
		return err
	})
}

// inlineTable reads "{k = v, …}" (which TOML 1.1 lets span lines and end
// with a comma).
func (p *parser) inlineTable() error {
	return p.sequence("an inline table", "}", func() error {
		_, _, err := p.keyValue()
		return err
	})
}

// sequence reads the items of an array or inline table, separated by
// commas, up to the closing bracket.
func (p *parser) sequence(what, closing string, item func() error) error {
	p.pos++
	for {
		p.skipBlankLines()
		if p.consume(closing) {
			return nil
		}
		if err := item(); err != nil {
			return err
		}
		p.skipBlankLines()
		if !p.consume(",") && !p.startsWith(closing) {
			return p.errorf("want , or %s in %s, not %.20q", closing, what, p.rest())
		}
	}
}

// scalar reads a bare value: a boolean, an integer, or another (a float, a
// date or time). Other values are not checked further: go-toml does not
// check the values of keys it skips either, and Decode reads none.
func (p *parser) scalar() (value, error) {
	start := p.pos
	if isDateTimeStart(p.rest()) {
		p.skipDateTime()
	} else {
		p.skipToken()
	}
	token := p.text[start:p.pos]
	switch {
	case token == "":
		return value{}, p.errorf("want a value, not %.20q", p.rest())
	case token == "true" || token == "false":
		return value{kind: booleanValue, boolean: token == "true", text: token}, nil
	case integerShape().MatchString(token):
		// Its range is checked when a field takes it.
		return value{kind: integerValue, text: token}, nil
	case !isDigit(token[0]) && !strings.HasPrefix(token, "+") && !strings.HasPrefix(token, "-") && token != "inf" && token != "nan":
		// Every float and date starts with a digit or sign, or is inf or nan.
		return value{}, p.errorf("%.20q is not a TOML value", token)
	}
	return value{kind: otherValue, text: token}, nil
}

// skipToken moves to the end of a bare value.
func (p *parser) skipToken() {
	for !p.end() && !strings.ContainsRune(" \t\r\n#,]}", rune(p.peek())) {
		p.pos++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isDateTimeStart reports whether text starts as a date (1979-) or a time
// (07:) does.
func isDateTimeStart(text string) bool {
	switch {
	case len(text) >= 3 && isDigit(text[0]) && isDigit(text[1]) && text[2] == ':':
		return true
	case len(text) >= 5 && isDigit(text[0]) && isDigit(text[1]) && isDigit(text[2]) && isDigit(text[3]) && text[4] == '-':
		return true
	}
	return false
}

// skipDateTime moves to the end of a date, a time, or both, which may be
// joined by a T or by a space: 1979-05-27 07:32:00Z.
func (p *parser) skipDateTime() {
	for !p.end() {
		c := p.peek()
		if !isDigit(c) && !strings.ContainsRune(":-+.ZzTt", rune(c)) && (c != ' ' || p.pos+1 >= len(p.text) || !isDigit(p.text[p.pos+1])) {
			return
		}
		p.pos++
	}
}

// integerShape is the shape of a TOML integer: decimal (no leading zero),
// hexadecimal, octal or binary, with single underscores between digits. It
// is compiled the first time a document has a bare value, not when the
// shim starts.
var integerShape = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([+-]?(0|[1-9](_?\d)*)|0x[0-9A-Fa-f](_?[0-9A-Fa-f])*|0o[0-7](_?[0-7])*|0b[01](_?[01])*)$`)
})

// parseInteger reads an integer of the shape integerShape matches: it fits
// in 64 bits, or is an error.
func parseInteger(token string) (int64, error) {
	digits := strings.ReplaceAll(token, "_", "")
	base := 10
	if len(digits) > 2 {
		switch digits[:2] {
		case "0x":
			base = 16
		case "0o":
			base = 8
		case "0b":
			base = 2
		}
	}
	if base != 10 {
		digits = digits[2:]
	}
	return strconv.ParseInt(digits, base, 64)
}

// basicString reads "…", with its escapes, on one line.
func (p *parser) basicString() (string, error) {
	p.pos++
	var text strings.Builder
	for {
		switch {
		case p.end() || p.peek() == '\n' || p.peek() == '\r':
			return "", p.errorf("a string is not closed by \" on its line")
		case p.consume(`"`):
			return text.String(), nil
		case p.peek() == '\\':
			if err := p.escape(&text); err != nil {
				return "", err
			}
		default:
			text.WriteByte(p.peek())
			p.pos++
		}
	}
}

// literalString reads '…': no escapes, on one line.
func (p *parser) literalString() (string, error) {
	p.pos++
	end := strings.IndexAny(p.rest(), "'\n")
	if end < 0 || p.text[p.pos+end] != '\'' {
		return "", p.errorf("a literal string is not closed by ' on its line")
	}
	text := p.text[p.pos : p.pos+end]
	p.pos += end + 1
	return strings.TrimSuffix(text, "\r"), nil
}

// multiLineString reads """…""" (basic: with escapes, and a backslash at
// the end of a line joining it to the next) or ”'…”' (literal). A newline
// right after the opening quotes is not part of the string; up to two
// quotes right before the closing ones are.
func (p *parser) multiLineString(quotes string, basic bool) (string, error) {
	p.pos += len(quotes)
	p.newline()
	var text strings.Builder
	for {
		switch {
		case p.end():
			return "", p.errorf("a multi-line string is not closed by %s", quotes)
		case p.startsWith(quotes):
			extra := 0
			for extra < 2 && p.pos+len(quotes)+extra < len(p.text) && p.text[p.pos+len(quotes)+extra] == quotes[0] {
				extra++
			}
			text.WriteString(quotes[:extra])
			p.pos += len(quotes) + extra
			return text.String(), nil
		case basic && p.peek() == '\\' && lineEndingBackslash(p.rest()[1:]):
			p.pos++
			p.skipSpaceAndNewlines()
		case basic && p.peek() == '\\':
			if err := p.escape(&text); err != nil {
				return "", err
			}
		case p.newline():
			text.WriteByte('\n')
		default:
			text.WriteByte(p.peek())
			p.pos++
		}
	}
}

// skipSpaceAndNewlines skips spaces, tabs and newlines.
func (p *parser) skipSpaceAndNewlines() {
	for {
		p.skipSpace()
		if !p.newline() {
			return
		}
	}
}

// lineEndingBackslash reports whether only spaces or tabs stand between a
// backslash and the end of its line.
func lineEndingBackslash(after string) bool {
	rest := strings.TrimLeft(after, " \t")
	return strings.HasPrefix(rest, "\n") || strings.HasPrefix(rest, "\r\n")
}

// escape reads an escape sequence of a basic string: \" \\ \b \f \n \r \t
// \e, and \xHH, \uHHHH, \UHHHHHHHH for a code point.
func (p *parser) escape(text *strings.Builder) error {
	if p.pos+1 >= len(p.text) {
		return p.errorf("a string ends in a backslash")
	}
	c := p.text[p.pos+1]
	p.pos += 2
	if simple := strings.IndexByte(`"\bfnrte`, c); simple >= 0 {
		text.WriteByte("\"\\\b\f\n\r\t\x1b"[simple])
		return nil
	}
	digits := 0
	switch c {
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	}
	if digits == 0 || p.pos+digits > len(p.text) {
		return p.errorf("\\%c is not an escape of TOML", c)
	}
	hex := p.text[p.pos : p.pos+digits]
	code, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || strings.ContainsAny(hex, "+-") || !utf8.ValidRune(rune(code)) {
		return p.errorf("\\%c%s is not a code point", c, hex)
	}
	p.pos += digits
	text.WriteRune(rune(code))
	return nil
}

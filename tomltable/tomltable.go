// Package tomltable reads the top-level keys of a TOML document into the
// fields of a struct: the runtime's `options` table, which containerd's CRI
// plugin and dockerd hand to a runtime they do not know as TOML text
// (BinaryName = "/usr/bin/runc", SystemdCgroup = true…).
//
// Why not a TOML library such as go-toml: the shim reads a handful of
// string, boolean and integer keys from that text, and go-toml's decoder is
// 0.25 MB of code in the binary; an idle shim has nearly every page of its
// binary resident, so that code cost every shim about as much RSS. The
// tests hold Decode to go-toml's Unmarshal on the same documents.
//
// The whole document is checked to be TOML (v1.1: strings of every kind,
// numbers, dates, arrays, inline tables, tables), but only keys outside any
// table are read. A key names a field as go-toml matches one: its `toml` tag
// or its name, exactly, else ignoring case. Keys that name no field are
// skipped, as go-toml skips them.
package tomltable

import (
	"fmt"
	"reflect"
	"strings"
)

// Decode sets the fields of the struct target points to from the keys at
// the top of the TOML document text. The fields read may be strings,
// booleans and unsigned integers.
func Decode(text []byte, target any) error {
	fields := reflect.ValueOf(target).Elem()
	p := &parser{text: string(text), line: 1}
	seen := map[string]bool{}
	inTable := false
	for {
		p.skipBlankLines()
		if p.end() {
			return nil
		}
		if p.peek() == '[' {
			key, err := p.tableHeader()
			if err != nil {
				return err
			}
			// A header names a table from the top, wherever it is.
			if field := fieldNamed(fields, key[0]); field.IsValid() {
				return p.errorf("%s is a table here, but it is a value of the options", key[0])
			}
			inTable = true
		} else {
			key, value, err := p.keyValue()
			if err != nil {
				return err
			}
			if !inTable {
				if err := set(fields, key, value, seen); err != nil {
					return p.errorf("%v", err)
				}
			}
		}
		if err := p.endOfLine(); err != nil {
			return err
		}
	}
}

// set stores a top-level key's value in the field it names, if any.
func set(fields reflect.Value, key []string, value value, seen map[string]bool) error {
	whole := strings.Join(key, ".")
	if seen[whole] {
		return fmt.Errorf("%s is set twice", whole)
	}
	seen[whole] = true
	field := fieldNamed(fields, key[0])
	switch {
	case !field.IsValid():
		return nil
	case len(key) > 1:
		return fmt.Errorf("%s is a table here, but it is a value of the options", key[0])
	}
	switch field.Kind() {
	case reflect.String:
		if value.kind != stringValue {
			return fmt.Errorf("%s must be a string, not %s", key[0], value.describe())
		}
		field.SetString(value.text)
	case reflect.Bool:
		if value.kind != booleanValue {
			return fmt.Errorf("%s must be true or false, not %s", key[0], value.describe())
		}
		field.SetBool(value.boolean)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if value.kind != integerValue {
			return fmt.Errorf("%s must be an integer, not %s", key[0], value.describe())
		}
		n, err := parseInteger(value.text)
		if err != nil || n < 0 || field.OverflowUint(uint64(n)) {
			return fmt.Errorf("%s: %s is out of range", key[0], value.text)
		}
		field.SetUint(uint64(n))
	default:
		return fmt.Errorf("%s: a field of kind %s cannot be read", key[0], field.Kind())
	}
	return nil
}

// fieldNamed finds the exported field a key names: by its `toml` tag or
// its name, exactly, else ignoring case. The zero Value if none.
func fieldNamed(fields reflect.Value, key string) reflect.Value {
	var folded reflect.Value
	for i := 0; i < fields.NumField(); i++ {
		field := fields.Type().Field(i)
		if !field.IsExported() {
			continue
		}
		name := field.Name
		if tag, _, _ := strings.Cut(field.Tag.Get("toml"), ","); tag == "-" {
			continue
		} else if tag != "" {
			name = tag
		}
		if name == key {
			return fields.Field(i)
		}
		if !folded.IsValid() && strings.EqualFold(name, key) {
			folded = fields.Field(i)
		}
	}
	return folded
}

// valueKind is what a TOML value is, as far as Decode cares.
type valueKind int

const (
	stringValue valueKind = iota
	booleanValue
	integerValue
	otherValue // a float, a date or time, an array, an inline table
)

func (k valueKind) String() string {
	return [...]string{"a string", "a boolean", "an integer", "a float, date, array or table"}[k]
}

// describe says what a value is, for an error: the value as written, or
// its kind.
func (v value) describe() string {
	if v.text != "" && v.kind != stringValue {
		return v.text
	}
	return v.kind.String()
}

type value struct {
	kind    valueKind
	text    string // a string; an integer as written
	boolean bool
}

// Package jsonin reads JSON request bodies field by field, so that every
// wrong type, missing field or out-of-range number is reported with its path
// ("actions[3].latencyMs: must be an integer") instead of failing as one
// opaque decode error, or worse, reaching the database. Unknown fields are
// ignored, as existing callers may send more than the contract names.
package jsonin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Reporter collects problems (personas.Problems implements it).
type Reporter interface {
	Add(field, format string, args ...any)
}

// Object is one JSON object being read.
type Object struct {
	fields map[string]json.RawMessage
	path   string
	r      Reporter
}

// ErrNotJSON means the body is not valid JSON at all.
var ErrNotJSON = errors.New("request body is not valid JSON")

// ParseObject parses body as a JSON object. It returns ErrNotJSON (wrapped
// with the parser's reason) for malformed JSON, and reports a problem (ok
// false) when the body is valid JSON but not an object.
func ParseObject(body []byte, r Reporter) (Object, bool, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Object{}, false, fmt.Errorf("%w: empty body", ErrNotJSON)
	}
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v)
		return Object{}, false, fmt.Errorf("%w: %w", ErrNotJSON, err)
	}
	o, ok := AsObject(trimmed, "", r)
	return o, ok, nil
}

// AsObject reads raw as an object at path; it reports a problem when raw is
// something else.
func AsObject(raw json.RawMessage, path string, r Reporter) (Object, bool) {
	var m map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		field := path
		if field == "" {
			field = "body"
		}
		r.Add(field, "must be a JSON object")
		return Object{}, false
	}
	return Object{fields: m, path: path, r: r}, true
}

func (o Object) name(field string) string {
	if o.path == "" {
		return field
	}
	return o.path + "." + field
}

func (o Object) get(field string) (json.RawMessage, bool) {
	raw, ok := o.fields[field]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// Has reports whether field is present and not null.
func (o Object) Has(field string) bool { _, ok := o.get(field); return ok }

// String reads a required string.
func (o Object) String(field string) string {
	raw, ok := o.get(field)
	if !ok {
		o.r.Add(o.name(field), "is required")
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		o.r.Add(o.name(field), "must be a string")
	}
	return s
}

// OptString reads an optional string (absent or null gives nil).
func (o Object) OptString(field string) *string {
	if !o.Has(field) {
		return nil
	}
	s := o.String(field)
	return &s
}

// Int reads a required integer in [lo, hi]. 4.5, "4" and 1e400 are refused.
func (o Object) Int(field string, lo, hi int) int {
	raw, ok := o.get(field)
	if !ok {
		o.r.Add(o.name(field), "is required")
		return 0
	}
	return o.parseInt(field, raw, lo, hi)
}

// OptInt reads an optional integer in [lo, hi].
func (o Object) OptInt(field string, lo, hi int) *int {
	raw, ok := o.get(field)
	if !ok {
		return nil
	}
	v := o.parseInt(field, raw, lo, hi)
	return &v
}

func (o Object) parseInt(field string, raw json.RawMessage, lo, hi int) int {
	// raw is one valid JSON value. Only a bare number is an integer here:
	// "12" (a string), 4.5 and 1e400 are refused; 5.0 and 1e3 are accepted.
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		o.r.Add(o.name(field), "must be an integer")
		return 0
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(raw), 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			o.r.Add(o.name(field), "must be an integer")
			return 0
		}
		v = int64(f)
	}
	if v < int64(lo) || v > int64(hi) {
		o.r.Add(o.name(field), "must be an integer from %d to %d", lo, hi)
		return 0
	}
	return int(v)
}

// Float reads a required finite number.
func (o Object) Float(field string) float64 {
	raw, ok := o.get(field)
	if !ok {
		o.r.Add(o.name(field), "is required")
		return 0
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		o.r.Add(o.name(field), "must be a number")
	}
	return f
}

// Array reads a required array and returns its elements.
func (o Object) Array(field string) ([]json.RawMessage, bool) {
	raw, ok := o.get(field)
	if !ok {
		o.r.Add(o.name(field), "is required")
		return nil, false
	}
	var items []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		o.r.Add(o.name(field), "must be an array")
		return nil, false
	}
	return items, true
}

// Object reads a required nested object.
func (o Object) Object(field string) (Object, bool) {
	raw, ok := o.get(field)
	if !ok {
		o.r.Add(o.name(field), "is required")
		return Object{}, false
	}
	return AsObject(raw, o.name(field), o.r)
}

// Keys returns the object's field names.
func (o Object) Keys() []string {
	keys := make([]string, 0, len(o.fields))
	for k := range o.fields {
		keys = append(keys, k)
	}
	return keys
}

// Path names element i of an array field, for AsObject.
func Path(parent, field string, i int) string {
	p := field + "[" + strconv.Itoa(i) + "]"
	if parent != "" {
		p = parent + "." + p
	}
	return p
}

// HasCaseVariant reports whether the JSON document body has an object key
// that equals one of names ignoring case but not exactly ("TickId" for
// "tickId"). Decoders that match keys case-insensitively (encoding/json,
// goccy/go-json) would take such a key for the field; this reader does not,
// so a fast path built on them must step aside when this is true. body must
// be valid JSON.
func HasCaseVariant(body []byte, names ...string) bool {
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		// A string: find its end, skipping escapes.
		j := i + 1
		escaped := false
		for ; j < len(body); j++ {
			if body[j] == '\\' {
				escaped = true
				j++
				continue
			}
			if body[j] == '"' {
				break
			}
		}
		str := body[i+1 : min(j, len(body))]
		// It is a key when a colon follows (after white space).
		k := j + 1
		for k < len(body) && (body[k] == ' ' || body[k] == '\t' || body[k] == '\n' || body[k] == '\r') {
			k++
		}
		if k < len(body) && body[k] == ':' {
			if escaped {
				// An escaped key may decode to anything: let the slow path judge.
				return true
			}
			for _, n := range names {
				if len(n) == len(str) && string(str) != n && strings.EqualFold(string(str), n) {
					return true
				}
			}
		}
		i = j
	}
	return false
}

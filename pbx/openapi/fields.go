package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
)

// fieldReader reads typed fields of a JSON object, keeping the first error.
type fieldReader struct {
	m   map[string]json.RawMessage
	err error
}

func (r *fieldReader) fail(name, problem string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s", ErrBadEventField, name, problem)
	}
}

// str reads an optional string, trimmed; absent or null is "".
func (r *fieldReader) str(name string) string {
	raw, ok := r.m[name]
	if !ok || isNull(raw) {
		return ""
	}
	if raw[0] != '"' {
		r.fail(name, "a "+loose.Kind(raw)+", not a string")
		return ""
	}
	// raw comes from a document already parsed: without a backslash (and
	// with valid UTF-8, which Unmarshal would replace), its content is the
	// string.
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return strings.TrimSpace(string(raw[1 : len(raw)-1]))
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		r.fail(name, "not a valid string")
		return ""
	}
	return strings.TrimSpace(s)
}

// required reads a string that must be there and not blank.
func (r *fieldReader) required(name string) string {
	s := r.str(name)
	if s == "" {
		r.fail(name, "missing or empty")
	}
	return s
}

// int reads an optional integer; absent or null is 0.
func (r *fieldReader) int(name string) int {
	raw, ok := r.m[name]
	if !ok || isNull(raw) {
		return 0
	}
	n, isInt := loose.JSONInt(raw)
	if !isInt || raw[0] == '"' {
		r.fail(name, "a "+loose.Kind(raw)+", not an integer")
		return 0
	}
	return n
}

// readObject decodes a JSON object's fields.
func readObject(raw []byte) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("a %s, not a JSON object", loose.Kind(raw))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("not valid JSON")
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

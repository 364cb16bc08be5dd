package loose

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// Number reads a JSON number; false for anything else (a string "-3" is
// not -3 to the SDK's strict comparison either, nor is null: an errcode
// of null is no success to errcode === 0, though json.Unmarshal would
// read it as 0).
func Number(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '"' || bytes.Equal(raw, []byte("null")) {
		return 0, false
	}
	var n float64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false
	}
	return n, true
}

// JSONInt reads a JSON number that is a whole number in int32 range (not
// null, as Number).
func JSONInt(raw json.RawMessage) (int, bool) {
	n, ok := Number(raw)
	if !ok || n != math.Trunc(n) || n < math.MinInt32 || n > math.MaxInt32 {
		return 0, false
	}
	return int(n), true
}

// Int reads a whole number the way the SDK's JavaScript would compare one
// loosely: a JSON number (float64 or json.Number) or a string of digits
// (with an optional sign, surrounding spaces allowed), in int32 range.
func Int(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || n < math.MinInt32 || n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case json.Number:
		return Int(string(n))
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32)
		if err != nil {
			return 0, false
		}
		return int(i), true
	}
	return 0, false
}

// Kind names the kind of a JSON value for a log line: "object", "array",
// "string", "bool", "null", "number", or "nothing" for no bytes at all.
func Kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// Unmarshal decodes like json.Unmarshal but forgives fields of an
// unexpected type, which stay zero: the SDK reads the PBX's JSON loosely,
// and a PBX answer with one odd field must not fail a whole request.
func Unmarshal(data []byte, v any) error {
	err := json.Unmarshal(data, v)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return nil
	}
	return err
}

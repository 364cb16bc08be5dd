package pbx

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
)

// FieldProblem is a field of a PBX body that could not be read as its
// type: it was left at its zero value (total_number at -1) and reported
// (Hooks.DecodeProblem, a sampled warning). It never carries the value.
type FieldProblem struct {
	// Field is the field's path in the body, e.g. "personal_cdr_list[3].id"
	// or "personal_cdr.timestamp"; "(document)" for the body itself.
	Field string
	// Kind is the JSON kind the PBX sent: "string", "number", "bool",
	// "object" or "array".
	Kind string
}

// rootField names the body itself in a FieldProblem.
const rootField = "(document)"

// decodeLoose decodes a JSON document into v (a pointer to one of this
// package's answer types) as loosely as the SDK's JavaScript reads it:
//   - an integer field takes a JSON number that is whole (1.0 is 1) or a
//     string holding one ("2546", " 7 ", "1e3"), as JavaScript's Number()
//     would read it;
//   - a string field takes a string, or a number rendered as JavaScript
//     renders it (2546.0 is "2546");
//   - a struct takes an object, a slice an array, element by element;
//   - keys match exactly, as in JavaScript (encoding/json would also take
//     "ID" for "id"); of duplicate keys the last wins;
//   - null, or a missing field, is the zero value, silently.
//
// Anything else (an object for a number, a fraction, "abc", a bool) leaves
// the field at its zero value and is returned as a FieldProblem: nothing
// the PBX sends is silently zeroed. A problem never fails the decoding: the
// SDK too reads what it can.
func decodeLoose(data []byte, v any) []FieldProblem {
	var d looseDecoder
	d.value(data, reflect.ValueOf(v).Elem(), "")
	return d.problems
}

type looseDecoder struct {
	problems []FieldProblem
}

func (d *looseDecoder) problem(path string, raw []byte) {
	if path == "" {
		path = rootField
	}
	d.problems = append(d.problems, FieldProblem{Field: path, Kind: loose.Kind(raw)})
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// value decodes raw, a valid JSON value, into v.
func (d *looseDecoder) value(raw []byte, v reflect.Value, path string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		v.SetZero()
		return
	}
	if v.Type() == rawMessageType {
		v.SetBytes(bytes.Clone(raw))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		before := len(d.problems)
		d.value(raw, elem.Elem(), path)
		if elem.Elem().Kind() != reflect.Struct && len(d.problems) > before {
			// An unusable *int is no value at all, not a zero.
			v.SetZero()
			return
		}
		v.Set(elem)
	case reflect.Struct:
		var fields map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
			d.problem(path, raw)
			v.SetZero()
			return
		}
		for _, f := range structFields(v.Type()) {
			if fr, ok := fields[f.name]; ok {
				d.value(fr, v.FieldByIndex(f.index), joinPath(path, f.name))
			}
		}
	case reflect.Slice:
		var elems []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
			d.problem(path, raw)
			v.SetZero()
			return
		}
		s := reflect.MakeSlice(v.Type(), len(elems), len(elems))
		for i, e := range elems {
			d.value(e, s.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
		v.Set(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := jsInt(raw, v.Type().Bits())
		if !ok {
			d.problem(path, raw)
		}
		v.SetInt(n)
	case reflect.String:
		s, ok := jsString(raw)
		if !ok {
			d.problem(path, raw)
		}
		v.SetString(s)
	default:
		// No answer type has other kinds today; decode them strictly.
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			d.problem(path, raw)
			v.SetZero()
		}
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// looseField is one JSON field of a struct.
type looseField struct {
	name  string
	index []int
}

var fieldCache sync.Map // reflect.Type -> []looseField

// structFields lists the JSON fields of t as encoding/json names them (the
// tag's name, else the Go name; "-" skipped), with the fields of untagged
// embedded structs promoted.
func structFields(t reflect.Type) []looseField {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]looseField)
	}
	var fields []looseField
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, hasTag := sf.Tag.Lookup("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" && tag == "-" {
			continue
		}
		if sf.Anonymous && !hasTag && sf.Type.Kind() == reflect.Struct {
			for _, inner := range structFields(sf.Type) {
				fields = append(fields, looseField{name: inner.name, index: append([]int{i}, inner.index...)})
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fields = append(fields, looseField{name: name, index: []int{i}})
	}
	fieldCache.Store(t, fields)
	return fields
}

// jsInt reads an integer of bits bits as JavaScript reads a number field
// loosely: a whole JSON number, or a string holding one. A fraction, a
// value out of range or anything else is not one.
func jsInt(raw []byte, bits int) (int64, bool) {
	var f float64
	switch {
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		s = trimJSSpace(s)
		if s == "" {
			// JavaScript reads "" as 0, but a PBX that sends "" has no
			// number to give: that is worth a word.
			return 0, false
		}
		if n, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, bits); err == nil && !strings.HasPrefix(s, "+-") {
			return n, true
		}
		var ok bool
		if f, ok = jsToNumber(s); !ok {
			return 0, false
		}
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		lit := string(raw)
		if !strings.ContainsAny(lit, ".eE") {
			if n, err := strconv.ParseInt(lit, 10, bits); err == nil {
				return n, true
			}
			return 0, false
		}
		var err error
		if f, err = strconv.ParseFloat(lit, 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	limit := math.Ldexp(1, bits-1)
	if f != math.Trunc(f) || f < -limit || f >= limit {
		return 0, false
	}
	return int64(f), true
}

// jsString reads a string field as JavaScript would use it: a string,
// or a number in JavaScript's rendering.
func jsString(raw []byte) (string, bool) {
	switch {
	case raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err == nil
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		return jsNumberString(string(raw)), true
	}
	return "", false
}

// jsIsOne compares a JSON value with 1 as JavaScript's == does: 1, 1.0,
// "1", " 1 ", "1e0", "0x1" and true are 1; 0, "0", "", null, a missing
// field, objects and arrays are not. (JavaScript would also take [1] for 1;
// no PBX sends a flag as a list, and refusing it errs towards "disabled".)
func jsIsOne(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case 't':
		return string(raw) == "true"
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		f, ok := jsToNumber(s)
		return ok && f == 1
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		return err == nil && f == 1
	}
	return false
}

// jsDecimal is JavaScript's StrDecimalLiteral without Infinity.
var jsDecimal = regexp.MustCompile(`^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$`)

// trimJSSpace trims what JavaScript's Number() trims: its white space (tab,
// vertical tab, form feed, the byte order mark, every space separator) and
// line terminators. (strings.TrimSpace would also trim U+0085, which
// JavaScript keeps.)
func trimJSSpace(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		switch r {
		case '\t', '\n', '\v', '\f', '\r', '\uFEFF', '\u2028', '\u2029':
			return true
		}
		return unicode.Is(unicode.Zs, r)
	})
}

// jsToNumber converts a string to a number as JavaScript's Number() does,
// and reports false where it would give NaN. "" (after trimming) is 0.
func jsToNumber(s string) (float64, bool) {
	s = trimJSSpace(s)
	switch s {
	case "":
		return 0, true
	case "Infinity", "+Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			digits := s[2:]
			if strings.ContainsAny(digits, "_+-") {
				return 0, false
			}
			if n, err := strconv.ParseUint(digits, base, 64); err == nil {
				return float64(n), true
			}
			// Larger than 64 bits: JavaScript gives a (rounded) number;
			// no field here holds one, so it may as well be NaN.
			return 0, false
		}
	}
	if !jsDecimal.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// jsNumberString renders a JSON number literal as JavaScript's String()
// does: the shortest digits that round-trip, in plain notation from 1e-6
// to below 1e21 and in exponent notation ("1e+21", "1.5e-7") outside.
func jsNumberString(lit string) string {
	f, err := strconv.ParseFloat(lit, 64)
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case err != nil:
		return lit // not a number literal; the JSON was valid, so unreachable
	case f == 0:
		return "0" // -0 too
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	digits := strings.Replace(mant, ".", "", 1)
	e, _ := strconv.Atoi(exp)
	k, n := len(digits), e+1
	var out string
	switch {
	case k <= n && n <= 21:
		out = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		out = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		out = "0." + strings.Repeat("0", -n) + digits
	default:
		expSign := "+"
		if n-1 < 0 {
			expSign = "-"
		}
		abs := n - 1
		if abs < 0 {
			abs = -abs
		}
		out = digits[:1]
		if k > 1 {
			out += "." + digits[1:]
		}
		out += "e" + expSign + strconv.Itoa(abs)
	}
	return sign + out
}

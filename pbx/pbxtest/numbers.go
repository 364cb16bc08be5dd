package pbxtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// NumberStyle is how the PBX writes the integer fields of its bodies. The
// SDK's JavaScript compares loosely, so a firmware that sends "2546" or
// 2546.0 for 2546 works with it, and a client must cope too.
type NumberStyle int

// The number styles, for SetNumberStyle.
const (
	// NumbersPlain writes integers as JSON integers: 2546.
	NumbersPlain NumberStyle = iota
	// NumbersAsStrings writes them as JSON strings: "2546".
	NumbersAsStrings
	// NumbersAsFloats writes them as JSON numbers with a fraction part:
	// 2546.0, which encoding/json would write as 2546.
	NumbersAsFloats
)

// SetNumberStyle sets how the integer fields are written: every integer of
// searchpersonal's records (their extension block included) and its
// total_number, getpersonal's extension object (id, the enb_* flags),
// getpersonalglobal's integers, getproduct's base_oem_id and oem_id, and the
// timestamp and talk_duration of a 20049 notification's personal_cdr.
// errcode and the other fields stay plain. An unknown style is taken as
// NumbersPlain.
func (s *Server) SetNumberStyle(style NumberStyle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks.numbers = style
}

// int returns n as the style writes it, ready for json.Marshal.
func (style NumberStyle) int(n int64) any {
	switch style {
	case NumbersAsStrings:
		return strconv.FormatInt(n, 10)
	case NumbersAsFloats:
		return json.Number(strconv.FormatInt(n, 10) + ".0") // json.Marshal writes a Number verbatim
	}
	return n
}

// restyle returns v, a value that encodes as JSON, with every integer in it
// written in the style.
func (style NumberStyle) restyle(v any) any {
	if style != NumbersAsStrings && style != NumbersAsFloats {
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("pbxtest: restyle: " + err.Error()) // only this package's own bodies come here
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var tree any
	if err := d.Decode(&tree); err != nil {
		panic("pbxtest: restyle: " + err.Error())
	}
	return style.walk(tree)
}

func (style NumberStyle) walk(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = style.walk(x)
		}
	case []any:
		for i, x := range v {
			v[i] = style.walk(x)
		}
	case json.Number:
		if n, err := v.Int64(); err == nil && !strings.ContainsAny(string(v), ".eE") {
			return style.int(n)
		}
	}
	return v
}

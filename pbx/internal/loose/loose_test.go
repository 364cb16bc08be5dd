package loose

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestInts(t *testing.T) {
	tests := []struct {
		raw     string
		jsonInt int
		isJSON  bool // JSONInt takes it
		looseOK bool // Int takes it, decoded with UseNumber
	}{
		{`2546`, 2546, true, true},
		{`-7`, -7, true, true},
		{`2546.0`, 2546, true, false}, // json.Number "2546.0" is no string of digits
		{`2546.5`, 0, false, false},
		{`2147483648`, 0, false, false},
		{`"2546"`, 0, false, true}, // strict: a string is no number
		{`" 12 "`, 0, false, true},
		{`"abc"`, 0, false, false},
		{`true`, 0, false, false},
		{`null`, 0, false, false}, // no number, though json.Unmarshal reads 0; see Number
		{``, 0, false, false},
	}
	for _, tt := range tests {
		n, ok := JSONInt(json.RawMessage(tt.raw))
		if ok != tt.isJSON || (ok && n != tt.jsonInt) {
			t.Errorf("JSONInt(%s) = %d, %v; want %d, %v", tt.raw, n, ok, tt.jsonInt, tt.isJSON)
		}
		if tt.raw == "" {
			continue
		}
		var v any
		d := json.NewDecoder(strings.NewReader(tt.raw))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s: %v", tt.raw, err)
		}
		if _, ok := Int(v); ok != tt.looseOK {
			t.Errorf("Int(%#v) ok = %v, want %v", v, ok, tt.looseOK)
		}
	}
	if n, ok := Int(float64(12)); !ok || n != 12 {
		t.Errorf("Int(12.0) = %d, %v", n, ok)
	}
}

func TestKind(t *testing.T) {
	for raw, want := range map[string]string{`{}`: "object", ` [1]`: "array", `"x"`: "string", `false`: "bool",
		`null`: "null", `-1.5`: "number", ` `: "nothing"} {
		if got := Kind([]byte(raw)); got != want {
			t.Errorf("Kind(%q) = %s, want %s", raw, got, want)
		}
	}
}

func TestUnmarshalForgivesTypes(t *testing.T) {
	var out struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	if err := Unmarshal([]byte(`{"a":"not a number","b":"kept"}`), &out); err != nil || out.B != "kept" || out.A != 0 {
		t.Fatalf("Unmarshal = %v, %+v; want no error, b kept, a zero", err, out)
	}
	if err := Unmarshal([]byte(`{"a":`), &out); err == nil {
		t.Fatal("Unmarshal of a truncated document gave no error")
	}
}

package pbx

import (
	"math"
	"testing"
)

func TestJSInt(t *testing.T) {
	tests := []struct {
		raw  string
		bits int
		want int64
		ok   bool
	}{
		{`2546`, 64, 2546, true},
		{`-7`, 64, -7, true},
		{`2546.0`, 64, 2546, true},
		{`1e3`, 64, 1000, true},
		{`9007199254740993`, 64, 9007199254740993, true}, // exact, not via float64
		{`"2546"`, 64, 2546, true},
		{`" 2546 "`, 64, 2546, true},
		{`"\t7\n"`, 64, 7, true},
		{`"+7"`, 64, 7, true},
		{`"7.0"`, 64, 7, true},
		{`"0x10"`, 64, 16, true}, // Number("0x10") is 16
		{`"-0"`, 64, 0, true},
		{`2147483647`, 32, math.MaxInt32, true},
		{`2147483648`, 32, 0, false},
		{`9223372036854775808`, 64, 0, false},
		{`1e19`, 64, 0, false},
		{`1e400`, 64, 0, false},
		{`2546.5`, 64, 0, false},
		{`"2546.5"`, 64, 0, false},
		{`""`, 64, 0, false},
		{`"  "`, 64, 0, false},
		{`"abc"`, 64, 0, false},
		{`"12abc"`, 64, 0, false},
		{`"+-7"`, 64, 0, false},
		{`"Infinity"`, 64, 0, false},
		{`"1_000"`, 64, 0, false},
		{`"\u00857"`, 64, 0, false}, // NEL is no JavaScript white space
		{`true`, 64, 0, false},
		{`{"id":1}`, 64, 0, false},
		{`[1]`, 64, 0, false},
	}
	for _, tt := range tests {
		got, ok := jsInt([]byte(tt.raw), tt.bits)
		if got != tt.want || ok != tt.ok {
			t.Errorf("jsInt(%s, %d) = %d, %v; want %d, %v", tt.raw, tt.bits, got, ok, tt.want, tt.ok)
		}
	}
}

func TestJSString(t *testing.T) {
	tests := []struct {
		raw, want string
		ok        bool
	}{
		{`"1001"`, "1001", true},
		{`""`, "", true},
		{`1001`, "1001", true},
		{`1001.0`, "1001", true},
		{`-0`, "0", true},
		{`0.1`, "0.1", true},
		{`1.50`, "1.5", true},
		{`1e21`, "1e+21", true},
		{`1e20`, "100000000000000000000", true},
		{`123456789012345678901234`, "1.2345678901234569e+23", true},
		{`0.000001`, "0.000001", true},
		{`1.5e-7`, "1.5e-7", true},
		{`-2.5e-10`, "-2.5e-10", true},
		{`1e400`, "Infinity", true},
		{`true`, "", false},
		{`null`, "", false}, // value() handles null before it asks
		{`{"a":1}`, "", false},
		{`["1001"]`, "", false},
	}
	for _, tt := range tests {
		got, ok := jsString([]byte(tt.raw))
		if got != tt.want || ok != tt.ok {
			t.Errorf("jsString(%s) = %q, %v; want %q, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

func TestJSIsOne(t *testing.T) {
	for raw, want := range map[string]bool{
		`1`: true, `1.0`: true, `1e0`: true, `"1"`: true, `" 1 "`: true, `"1.0"`: true, `"0x1"`: true, `"+1"`: true, `true`: true,
		`0`: false, `2`: false, `-1`: false, `1.5`: false, `"0"`: false, `""`: false, `"one"`: false, `null`: false, ``: false,
		`false`: false, `{}`: false, `{"v":1}`: false, `[1]`: false, `"true"`: false,
	} {
		if got := jsIsOne([]byte(raw)); got != want {
			t.Errorf("jsIsOne(%s) = %v, want %v", raw, got, want)
		}
	}
}

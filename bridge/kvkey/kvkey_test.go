package kvkey

import "testing"

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"1001":       "1001",
		"a-b_C":      "a-b_C",
		"1001.x":     "1001=2Ex",
		"*>":         "=2A=3E",
		"r1 replica": "r1=20replica",
		"":           "",
	} {
		if got := Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
	if a, b := Host("pbx.example:8088"), Host("pbx.example:8089"); a == b || len(a) != 16 {
		t.Errorf("Host: %q and %q", a, b)
	}
	if got := Ext("h", "1.1"); got != Host("h")+".1=2E1" {
		t.Errorf("Ext = %q", got)
	}
}

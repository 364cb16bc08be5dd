package pbx_test

import (
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{`dial wss://pbx:8088/api/v1.0/subscribe?access_token=0123456789abcdef: bad handshake`,
			`dial wss://pbx:8088/api/v1.0/subscribe?access_token=REDACTED: bad handshake`},
		{`GET "https://pbx/x?a=1&access_token=abc&b=2"`, `GET "https://pbx/x?a=1&access_token=REDACTED&b=2"`},
		{`?ACCESS_TOKEN=abc`, `?ACCESS_TOKEN=REDACTED`},
		{`{"username":"1001","password":"s3cr3t\"x","login_jump":"sdk"}`, `{"username":"1001","password":"REDACTED","login_jump":"sdk"}`},
		{`"access_token": "abc"`, `"access_token":"REDACTED"`},
		{`https://admin:hunter2@pbx.example.com/api`, `https://admin:REDACTED@pbx.example.com/api`},
		{`secret=abc token=def`, `secret=REDACTED token=REDACTED`},
		{`errcode 10009 "INVALID USERNAME OR PASSWORD"`, `errcode 10009 "INVALID USERNAME OR PASSWORD"`},
		{`https://pbx.example.com:8088`, `https://pbx.example.com:8088`},
	}
	for _, tt := range tests {
		if got := pbx.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		if strings.Contains(tt.want, pbx.Redacted) && pbx.Redact(tt.want) != tt.want {
			t.Errorf("Redact is not idempotent on %q", tt.want)
		}
	}
}

package pbx_test

import (
	"encoding/json"
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
		{`https://user:ab+c/d==@127.0.0.1:1`, `https://user:REDACTED@127.0.0.1:1`},
		{`secret=abc token=def`, `secret=REDACTED token=REDACTED`},
		{`errcode 10009 "INVALID USERNAME OR PASSWORD"`, `errcode 10009 "INVALID USERNAME OR PASSWORD"`},
		{`https://pbx.example.com:8088`, `https://pbx.example.com:8088`},
		// Every name a credential goes by, in both forms.
		{`reg_password=1234 realm=pbx`, `reg_password=REDACTED realm=pbx`},
		{`?sign=abc&x=1&apikey=def`, `?sign=REDACTED&x=1&apikey=REDACTED`},
		{`Auth_Header=xyz HA1=0f0f`, `Auth_Header=REDACTED HA1=REDACTED`},
		{`{"reg_name":"1001","reg_password":"p\"w","Secret_Key":"k"}`, `{"reg_name":"1001","reg_password":"REDACTED","Secret_Key":"REDACTED"}`},
		{`{"sip_pwd": 1234,"port":5060}`, `{"sip_pwd":"REDACTED","port":5060}`},
		{`{"ha1":"0f0f","passwd":-12.5e3}`, `{"ha1":"REDACTED","passwd":"REDACTED"}`},
		// Inside a frame, where msg is a JSON string holding JSON.
		{`{"type":20066,"msg":"{\"realm\":\"pbx\",\"reg_password\":\"a\\\"b\\\\c\\nd\u003c\"}"}`,
			`{"type":20066,"msg":"{\"realm\":\"pbx\",\"reg_password\":\"REDACTED\"}"}`},
		{`{"msg":"{\"pin_key\":4321}"}`, `{"msg":"{\"pin_key\":\"REDACTED\"}"}`},
		{`{"realm":"pbx","reg_name":"1001","enable":1}`, `{"realm":"pbx","reg_name":"1001","enable":1}`},
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

func TestRedactCredentialFields(t *testing.T) {
	const removed = `"` + pbx.RemovedCredential + `"`
	tests := []struct {
		name string
		in   string
		want string // "" for the input unchanged, byte for byte
		n    int
	}{
		{name: "nothing to remove", in: `{ "realm" : "pbx", "reg_name":"1001", "n": 1.50 }`},
		{name: "not an object", in: `[1, "password", null]`},
		{name: "sip registration", in: `{"realm":"pbx","reg_name":"1001","reg_password":"s3cr3t"}`,
			want: `{"realm":"pbx","reg_name":"1001","reg_password":` + removed + `}`, n: 1},
		{name: "every name, any case", in: `{"PassWord":1,"passwd":2,"PWD":3,"client_secret":4,"Token":5,"apiKey":6,"sign":7,"Authorization":8,"ha1":9,"ok":10}`,
			want: `{"PassWord":` + removed + `,"passwd":` + removed + `,"PWD":` + removed + `,"client_secret":` + removed + `,"Token":` + removed + `,"apiKey":` + removed +
				`,"sign":` + removed + `,"Authorization":` + removed + `,"ha1":` + removed + `,"ok":10}`, n: 9},
		{name: "any value, nested, in arrays", in: `{"a":[{"b":{"secret":{"x":[1,2]}}},{"token":null}],"c":{"d":[[{"auth":[true]}]]},"n":12345678901234567890}`,
			want: `{"a":[{"b":{"secret":` + removed + `}},{"token":` + removed + `}],"c":{"d":[[{"auth":` + removed + `}]]},"n":12345678901234567890}`, n: 3},
		{name: "escaped name", in: `{"reg_pass\u0077ord":"x","s":"<&>"}`,
			want: `{"reg_password":` + removed + `,"s":"<&>"}`, n: 1},
		{name: "a credential name as a value is kept", in: `{"field":"password","list":["token"]}`},
		{name: "duplicate keys", in: `{"pwd":"a","pwd":"b"}`, want: `{"pwd":` + removed + `,"pwd":` + removed + `}`, n: 2},
		{name: "invalid JSON", in: `{"password":"x"`, want: "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := pbx.RedactCredentialFields(json.RawMessage(tt.in))
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if want == "null" {
				if got != nil || n != 0 {
					t.Fatalf("got %s, %d; want nil, 0", got, n)
				}
				return
			}
			if string(got) != want || n != tt.n {
				t.Fatalf("got  %s, %d\nwant %s, %d", got, n, want, tt.n)
			}
			if !json.Valid(got) {
				t.Fatalf("result %s is not JSON", got)
			}
			if again, n2 := pbx.RedactCredentialFields(got); n2 != tt.n || string(again) != string(got) {
				t.Fatalf("not idempotent: %s, %d", again, n2)
			}
		})
	}
	// Deep nesting is walked once, not once per level.
	deep := strings.Repeat(`{"a":`, 5000) + `{"key":1}` + strings.Repeat(`}`, 5000)
	if got, n := pbx.RedactCredentialFields(json.RawMessage(deep)); n != 1 || !strings.Contains(string(got), `{"key":`+removed+`}`) {
		t.Fatalf("deep document: %d removed", n)
	}
}

// TestDecodeFrameRemovesCredentials: no notification leaves DecodeFrame
// with a credential in Msg or Event, whatever its type.
func TestDecodeFrameRemovesCredentials(t *testing.T) {
	const secret = "sip-password-0123"
	for _, typ := range []int{pbx.TypeSIPRegistration, pbx.TypeCDRChanged, pbx.TypeLogin, pbx.TypeRecordStatus} {
		msg := `{"username":"1002","realm":"pbx","reg_password":"` + secret + `","nested":[{"auth_token":"` + secret + `"}],"ext_num":"1001"}`
		f, reason := pbx.DecodeFrame([]byte(notification(typ, msg)))
		if reason != "" {
			t.Fatalf("type %d dropped: %s", typ, reason)
		}
		if strings.Contains(string(f.Msg), secret) || strings.Count(string(f.Msg), pbx.RemovedCredential) != 2 {
			t.Errorf("type %d: msg %s", typ, f.Msg)
		}
		if n, ok := f.Event.(*pbx.Notice); ok && string(n.Msg) != string(f.Msg) {
			t.Errorf("type %d: notice msg %s differs from the frame's %s", typ, n.Msg, f.Msg)
		}
		if c, ok := f.Event.(*pbx.CDRChanged); ok && c.ExtNum != "1001" {
			t.Errorf("CDRChanged = %+v", c)
		}
	}
}

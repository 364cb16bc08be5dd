package pbx_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// notification builds a well-formed frame the way the PBX does: msg is
// JSON-encoded, then string-encoded.
func notification(typ int, msg string) string {
	return `{"type":` + strconv.Itoa(typ) + `,"msg":` + strconv.Quote(msg) + `}`
}

// TestDecodeFrame is long for its table of frames, which reads best in
// one place.
func TestDecodeFrame(t *testing.T) {
	cdrMsg := `{"ext_num":"1001","personal_cdr":{"date":"","time":"","timestamp":1693201380,"number":"1001","talk_duration":0}}`
	tests := []struct {
		name     string
		frame    string
		kind     pbx.FrameKind
		typ      int
		msg      string // the decoded msg, compared as JSON
		event    pbx.Event
		problems []pbx.FieldProblem
		reason   pbx.DropReason
	}{
		{name: "heartbeat response", frame: "heartbeat response", kind: pbx.FrameHeartbeat},
		{name: "cdr changed", frame: notification(20049, cdrMsg), kind: pbx.FrameNotification, typ: 20049, msg: cdrMsg,
			event: &pbx.CDRChanged{ExtNum: "1001", PersonalCDR: pbx.PersonalCDR{Timestamp: 1693201380, Number: "1001"}}},
		{name: "cdr changed with an odd field keeps the rest", frame: notification(20049, `{"ext_num":"1001","personal_cdr":{"timestamp":"soon","number":"2000"}}`),
			kind: pbx.FrameNotification, typ: 20049, msg: `{"ext_num":"1001","personal_cdr":{"timestamp":"soon","number":"2000"}}`,
			event:    &pbx.CDRChanged{ExtNum: "1001", PersonalCDR: pbx.PersonalCDR{Number: "2000"}},
			problems: []pbx.FieldProblem{{Field: "personal_cdr.timestamp", Kind: "string"}}},
		{name: "cdr changed read loosely", frame: notification(20049, `{"ext_num":1001,"personal_cdr":{"timestamp":"1693201380","number":2000,"talk_duration":42.0}}`),
			kind: pbx.FrameNotification, typ: 20049, msg: `{"ext_num":1001,"personal_cdr":{"timestamp":"1693201380","number":2000,"talk_duration":42.0}}`,
			event: &pbx.CDRChanged{ExtNum: "1001", PersonalCDR: pbx.PersonalCDR{Timestamp: 1693201380, Number: "2000", TalkDuration: 42}}},
		{name: "cdr changed that is no object", frame: notification(20049, `[1]`), kind: pbx.FrameNotification, typ: 20049, msg: `[1]`,
			event: &pbx.CDRChanged{}, problems: []pbx.FieldProblem{{Field: "(document)", Kind: "array"}}},
		{name: "state-only notice", frame: notification(20008, `{"record_feature_code":"*1"}`), kind: pbx.FrameNotification, typ: 20008,
			msg: `{"record_feature_code":"*1"}`, event: &pbx.Notice{Type: 20008, Msg: json.RawMessage(`{"record_feature_code":"*1"}`)}},
		{name: "whitespace around the frame and msg", frame: " \n" + `{"type":20047,"msg":" {\"enb_ctl_record\":1} "}` + "\t", kind: pbx.FrameNotification,
			typ: 20047, msg: `{"enb_ctl_record":1}`, event: &pbx.Notice{Type: 20047, Msg: json.RawMessage(`{"enb_ctl_record":1}`)}},
		{name: "type as a whole float", frame: `{"type":20053.0,"msg":"{}"}`, kind: pbx.FrameNotification, typ: 20053, msg: `{}`,
			event: &pbx.Notice{Type: 20053, Msg: json.RawMessage(`{}`)}},
		{name: "errcode 0 is a plain notification", frame: `{"type":20065,"msg":"[1]","errcode":0}`, kind: pbx.FrameNotification, typ: 20065, msg: `[1]`,
			event: &pbx.Notice{Type: 20065, Msg: json.RawMessage(`[1]`)}},
		{name: "errcode -3 resubscribes", frame: `{"type":20049,"msg":"{}","errcode":-3}`, kind: pbx.FrameResubscribe, typ: 20049},
		{name: "errcode -3 without type or msg", frame: `{"errcode":-3}`, kind: pbx.FrameResubscribe},
		{name: "hot standby with a bad msg still counts", frame: `{"type":20104,"msg":7}`, kind: pbx.FrameNotification, typ: 20104, msg: `null`,
			event: &pbx.Notice{Type: 20104, Msg: json.RawMessage(`null`)}},
		{name: "hot standby without msg", frame: `{"type":20104}`, kind: pbx.FrameNotification, typ: 20104, msg: `null`,
			event: &pbx.Notice{Type: 20104, Msg: json.RawMessage(`null`)}},

		{name: "not json", frame: "hello", reason: pbx.DropNotJSON},
		{name: "empty", frame: "", reason: pbx.DropNotJSON},
		{name: "json array", frame: `[{"type":20049}]`, reason: pbx.DropNotJSON},
		{name: "json null", frame: `null`, reason: pbx.DropNotJSON},
		{name: "truncated object", frame: `{"type":20049,"msg":"{}"`, reason: pbx.DropNotJSON},
		{name: "heartbeat from the PBX is not ours to answer", frame: "heartbeat", reason: pbx.DropNotJSON},
		{name: "errcode -2", frame: `{"type":20049,"msg":"{}","errcode":-2}`, typ: 20049, reason: pbx.DropErrcode2},
		{name: "msg not a string", frame: `{"type":20008,"msg":{"record_feature_code":"*1"}}`, typ: 20008, reason: pbx.DropBadMsg},
		{name: "msg missing", frame: `{"type":20008}`, typ: 20008, reason: pbx.DropBadMsg},
		{name: "msg bad json", frame: `{"type":20008,"msg":"{bad"}`, typ: 20008, reason: pbx.DropBadMsg},
		{name: "msg empty string", frame: `{"type":20049,"msg":""}`, typ: 20049, reason: pbx.DropBadMsg},
		{name: "flag msg not an object", frame: notification(20015, `1`), typ: 20015, reason: pbx.DropBadMsg},
		{name: "login msg not an object", frame: notification(10000, `"1001"`), typ: 10000, reason: pbx.DropBadMsg},
		{name: "type missing", frame: `{"msg":"{}"}`, reason: pbx.DropUnknownType},
		{name: "type a string", frame: `{"type":"20049","msg":"{}"}`, reason: pbx.DropUnknownType},
		{name: "type fractional", frame: `{"type":20049.5,"msg":"{}"}`, reason: pbx.DropUnknownType},
		{name: "type not in the table", frame: notification(30000, `{}`), typ: 30000, reason: pbx.DropUnknownType},
		{name: "keys are case-sensitive", frame: `{"TYPE":20049,"msg":"{}"}`, reason: pbx.DropUnknownType},
		{name: "errcode -3 as a string is not -3", frame: `{"type":30000,"msg":"{}","errcode":"-3"}`, typ: 30000, reason: pbx.DropUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, reason := pbx.DecodeFrame([]byte(tt.frame))
			if reason != tt.reason {
				t.Fatalf("reason = %q, want %q (frame %+v)", reason, tt.reason, f)
			}
			if f.Type != tt.typ {
				t.Errorf("type = %d, want %d", f.Type, tt.typ)
			}
			if tt.reason != "" {
				if f.Kind != 0 || f.Event != nil {
					t.Errorf("dropped frame has kind %d, event %v", f.Kind, f.Event)
				}
				return
			}
			if f.Kind != tt.kind {
				t.Fatalf("kind = %d, want %d", f.Kind, tt.kind)
			}
			if tt.msg != "" && string(f.Msg) != tt.msg {
				t.Errorf("msg = %s, want %s", f.Msg, tt.msg)
			}
			if !reflect.DeepEqual(f.Event, tt.event) {
				t.Errorf("event = %#v, want %#v", f.Event, tt.event)
			}
			if !reflect.DeepEqual(f.Problems, tt.problems) {
				t.Errorf("problems = %+v, want %+v", f.Problems, tt.problems)
			}
		})
	}
}

func TestRuntimeErrorFor(t *testing.T) {
	frame := func(typ int, msg string) pbx.Frame {
		t.Helper()
		f, reason := pbx.DecodeFrame([]byte(notification(typ, msg)))
		if reason != "" {
			t.Fatalf("frame %d %s dropped: %s", typ, msg, reason)
		}
		return f
	}
	const en, cn, web, pc = "en", "cn", pbx.UserAgentWebClient, pbx.UserAgentWebPC
	tests := []struct {
		name      string
		f         pbx.Frame
		plan, ua  string
		want      *pbx.Error // nil: no runtime error
		wantType  int
		wantSDKIs error
	}{
		{name: "login of this extension", f: frame(10000, `{"username":"1001"}`), plan: en, ua: web, want: pbx.ErrLoggedInElsewhere},
		{name: "login of another extension", f: frame(10000, `{"username":"1002"}`), plan: en, ua: web},
		{name: "login with a numeric username", f: frame(10000, `{"username":1001}`), plan: en, ua: web},
		{name: "extension deleted", f: frame(20007, `{}`), plan: en, ua: web, want: pbx.ErrExtensionDeleted},
		{name: "re-login 20010", f: frame(20010, `{}`), plan: cn, ua: pc, want: pbx.ErrReLogin},
		{name: "re-login 20154", f: frame(20154, `null`), plan: en, ua: web, want: pbx.ErrReLogin},
		{name: "sdk plan off", f: frame(20153, `{"enable":0}`), plan: en, ua: web, want: pbx.ErrSDKPlanDisabled},
		{name: "sdk plan missing enable", f: frame(20153, `{}`), plan: en, ua: web, want: pbx.ErrSDKPlanDisabled},
		{name: "sdk plan on", f: frame(20153, `{"enable":1}`), plan: en, ua: web},
		{name: "web client off, en WebClient", f: frame(20015, `{"enb_web_client":0}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		// Flags compare with 1 as JavaScript's == does.
		{name: "web client \"1\" is 1", f: frame(20015, `{"enb_web_client":"1"}`), plan: en, ua: web},
		{name: "web client \" 1 \" is 1", f: frame(20015, `{"enb_web_client":" 1 "}`), plan: en, ua: web},
		{name: "web client 1.0 is 1", f: frame(20015, `{"enb_web_client":1.0}`), plan: en, ua: web},
		{name: "web client true is 1", f: frame(20015, `{"enb_web_client":true}`), plan: en, ua: web},
		{name: "web client \"0\" is not 1", f: frame(20015, `{"enb_web_client":"0"}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "web client \"\" is not 1", f: frame(20015, `{"enb_web_client":""}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "web client null is not 1", f: frame(20015, `{"enb_web_client":null}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "web client missing is not 1", f: frame(20015, `{}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "web client object is not 1", f: frame(20015, `{"enb_web_client":{"v":1}}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "web client list is not 1", f: frame(20015, `{"enb_web_client":[1]}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "web client 1.5 is not 1", f: frame(20015, `{"enb_web_client":1.5}`), plan: en, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "sdk plan \"1\" is on", f: frame(20153, `{"enable":"1"}`), plan: en, ua: web},
		{name: "sdk plan false is off", f: frame(20153, `{"enable":false}`), plan: en, ua: web, want: pbx.ErrSDKPlanDisabled},
		{name: "internal 1.0 is on, cn", f: frame(20082, `{"enb_internal_client":1.0}`), plan: cn, ua: web},
		{name: "desktop \"1\" is on, en WebPC", f: frame(20013, `{"enb_desktop_client":"1"}`), plan: en, ua: pc},
		{name: "web client on", f: frame(20015, `{"enb_web_client":1}`), plan: en, ua: web},
		{name: "web client off, en WebPC", f: frame(20015, `{"enb_web_client":0}`), plan: en, ua: pc},
		{name: "web client off, cn", f: frame(20015, `{"enb_web_client":0}`), plan: cn, ua: web},
		{name: "desktop off, en WebPC", f: frame(20013, `{"enb_desktop_client":0}`), plan: en, ua: pc, want: pbx.ErrLinkusDisabled},
		{name: "desktop off, en WebClient", f: frame(20013, `{"enb_desktop_client":0}`), plan: en, ua: web},
		{name: "internal off, cn", f: frame(20082, `{"enb_internal_client":0}`), plan: cn, ua: web, want: pbx.ErrLinkusDisabled},
		{name: "internal on, cn", f: frame(20082, `{"enb_internal_client":1}`), plan: cn, ua: web},
		{name: "internal off, en", f: frame(20082, `{"enb_internal_client":0}`), plan: en, ua: web},
		{name: "cdr changed", f: frame(20049, `{}`), plan: en, ua: web},
		{name: "hot standby", f: frame(20104, `{}`), plan: en, ua: web},
		{name: "heartbeat", f: pbx.Frame{Kind: pbx.FrameHeartbeat}, plan: en, ua: web},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pbx.RuntimeErrorFor(tt.f, "1001", tt.plan, tt.ua)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("runtime error %v, want none", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var rt *pbx.RuntimeError
			if !errors.As(err, &rt) || rt.Type != tt.f.Type {
				t.Fatalf("err = %#v, want a *RuntimeError of type %d", err, tt.f.Type)
			}
			if code, ok := pbx.CodeOf(err); !ok || code.Code != tt.want.Code {
				t.Fatalf("CodeOf = %v, want %d", code, tt.want.Code)
			}
		})
	}
}

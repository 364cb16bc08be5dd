package openapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// The reference's examples (shared/reference/openapi-events.md), verbatim
// where it gives one.
const (
	exampleCallState = `{"type":30011,"sn":"3631A2124XXX","msg":"{\"call_id\":\"1651057476.362\",\"members\":[{\"extension\":{\"number\":\"2005\",\"channel_id\":\"PJSIP/2005-00000023\",\"member_status\":\"ALERT\",\"call_path\":\"\"}},{\"extension\":{\"number\":\"2002\",\"channel_id\":\"PJSIP/2002-00000024\",\"member_status\":\"RING\",\"call_path\":\"\"}}]}"}`
	exampleNewCDR    = `{"type":30012,"sn":"3631A2124XXX","msg":"{\"call_id\":\"1651057476.362\",\"time_start\":\"2022-04-27 19:04:36\",\"call_from\":\"2005\",\"call_to\":\"2002\",\"call_duration\":24,\"talk_duration\":21,\"src_trunk_name\":\" \",\"dst_trunk_name\":\" \",\"pin_code\":\" \",\"status\":\"ANSWERED\",\"type\":\"Internal\",\"recording\":\"20220427190445-1651057476.362-2005-2002-Internal.wav\",\"did_number\":\" \",\"agent_ring_time\":0}"}`
	exampleReg       = `{"type":30007,"sn":"3631A2124XXX","msg":"{\"extension\":\"2010\",\"kind\":\"Mobile\",\"status\":\"Registered\",\"registered_ip\":\"223.104.45.163\"}"}`
	exampleCall      = `{"type":30008,"sn":"3631A2124XXX","msg":"{\"extension\":\"2002\",\"status\":\"Ringing\"}"}`
	examplePresence  = `{"type":30009,"sn":"3631A2124XXX","msg":"{\"extension\":\"2005\",\"status\":\"business_trip\"}"}`
	exampleSystem    = `{"type":30035,"sn":"3631A2124XXX","msg":{"event_name":"sip_trunk_disconnect","event_type":"telephony","event_level":"warn","event_content":"Trunk SPS-1 unreachable","create_time":"2024/01/02 03:04:05"}}`
)

func TestDecodeEventExamples(t *testing.T) {
	ext := func(number, ch string, st openapi.MemberStatus) openapi.CallMember {
		return openapi.CallMember{Kind: openapi.MemberExtension, Number: number, ChannelID: ch, Status: st}
	}
	for _, tc := range []struct {
		name  string
		frame string
		want  openapi.EventData
	}{
		{"30011 msg string", exampleCallState, &openapi.CallState{CallID: "1651057476.362", Members: []openapi.CallMember{
			ext("2005", "PJSIP/2005-00000023", openapi.StatusAlert), ext("2002", "PJSIP/2002-00000024", openapi.StatusRing)}}},
		{"30011 msg object, trunk legs, unknown fields", `{"type":30011,"sn":"X","extra":1,"msg":{"call_id":"1.2","new_field":[1],"members":[` +
			`{"inbound":{"from":"5551","to":"2005","trunk_name":"SPS","channel_id":"PJSIP/SPS-01","member_status":"ANSWERED","call_path":"ivr 6200","x":{}}},` +
			`{"outbound":{"from":"2005","to":"5552","trunk_name":"SPS","channel_id":"PJSIP/SPS-02","member_status":"EARLYMEDIA"}}]}}`,
			&openapi.CallState{CallID: "1.2", Members: []openapi.CallMember{
				{Kind: openapi.MemberInbound, From: "5551", To: "2005", TrunkName: "SPS", ChannelID: "PJSIP/SPS-01", Status: openapi.StatusAnswered, CallPath: "ivr 6200"},
				{Kind: openapi.MemberOutbound, From: "2005", To: "5552", TrunkName: "SPS", ChannelID: "PJSIP/SPS-02", Status: openapi.StatusEarlyMedia}}}},
		{"30012", exampleNewCDR, &openapi.NewCDR{CallID: "1651057476.362", TimeStart: "2022-04-27 19:04:36", CallFrom: "2005", CallTo: "2002",
			CallDuration: 24, TalkDuration: 21, Status: "ANSWERED", Type: "Internal",
			Recording: "20220427190445-1651057476.362-2005-2002-Internal.wav"}},
		{"30007", exampleReg, &openapi.RegistrationChange{Extension: "2010", Kind: "Mobile", Status: "Registered", RegisteredIP: "223.104.45.163"}},
		{"30008", exampleCall, &openapi.ExtensionCallStatus{Extension: "2002", Status: "Ringing"}},
		{"30009", examplePresence, &openapi.PresenceChange{Extension: "2005", Status: "business_trip"}},
		{"30035 msg object", exampleSystem, &openapi.SystemEvent{EventName: "sip_trunk_disconnect", EventType: "telephony", EventLevel: "warn",
			EventContent: "Trunk SPS-1 unreachable", CreateTime: "2024/01/02 03:04:05"}},
		{"30015", `{"type":30015,"sn":"X","msg":"{\"call_id\":\"9.9\",\"reason\":\"NO Dial Permission\",\"members\":[]}"}`,
			&openapi.CallFailed{CallState: openapi.CallState{CallID: "9.9"}, Reason: "NO Dial Permission"}},
		{"unknown type", `{"type":30099,"sn":"X","msg":"{\"a\":1}"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openapi.DecodeEventFrame([]byte(tc.frame))
			if err != nil {
				t.Fatalf("DecodeEventFrame: %v", err)
			}
			if f.Kind != openapi.EventFrameEvent || f.Event.SN == "" {
				t.Fatalf("frame = %+v, want an event with an sn", f)
			}
			if !reflect.DeepEqual(f.Event.Data, tc.want) {
				t.Errorf("Data = %#v\nwant   %#v", f.Event.Data, tc.want)
			}
			if !json.Valid(f.Event.Msg) || f.Event.Msg[0] != '{' {
				t.Errorf("Msg = %s, want a JSON object", f.Event.Msg)
			}
		})
	}
}

func TestDecodeEventKeepsNoPinCode(t *testing.T) {
	for _, frame := range []string{
		exampleNewCDR,
		`{"type":30012,"sn":"X","msg":{"call_id":"1.1","pin_code":"8812","nested":{"pin_code":"keep?"},"list":[{"Pin_Code":1}]}}`,
		`{"type":30012,"sn":"X","msg":"{\"call_id\":\"1.1\",\"PIN_CODE\":\"8812\"}"}`,
		`{"type":30012,"sn":"X","msg":"{\"call_id\":\"1.1\",\"pin\\u005fcode\":\"8812\"}"}`,
		`{"type":30099,"sn":"X","msg":{"pin_code":8812}}`,
	} {
		f, err := openapi.DecodeEventFrame([]byte(frame))
		if err != nil {
			t.Fatalf("%s: %v", frame, err)
		}
		if k := pinCodeKey(t, f.Event.Msg); k != "" {
			t.Errorf("%s: Msg %s keeps %s", frame, f.Event.Msg, k)
		}
		if bytes.Contains(f.Event.Msg, []byte("8812")) || bytes.Contains(f.Event.Msg, []byte("keep?")) {
			t.Errorf("%s: Msg %s keeps the pin", frame, f.Event.Msg)
		}
	}
}

func TestDecodeEventMembers(t *testing.T) {
	frame := func(members string) string {
		return `{"type":30011,"sn":"X","msg":{"call_id":"1.1","members":[` + members + `]}}`
	}
	good := `{"extension":{"number":"2002","channel_id":"PJSIP/2002-1","member_status":"ANSWER"}}`
	for _, tc := range []struct {
		name, member, problem string
	}{
		{"no channel_id", `{"extension":{"number":"2005","member_status":"ANSWER"}}`, "channel_id"},
		{"blank channel_id", `{"extension":{"number":"2005","channel_id":" ","member_status":"ANSWER"}}`, "channel_id"},
		{"no member_status", `{"extension":{"number":"2005","channel_id":"PJSIP/2005-1"}}`, "member_status"},
		{"no number", `{"extension":{"channel_id":"PJSIP/2005-1","member_status":"RING"}}`, "number"},
		{"number is a number", `{"extension":{"number":2005,"channel_id":"PJSIP/2005-1","member_status":"RING"}}`, "not a string"},
		{"status is a number", `{"inbound":{"channel_id":"c","member_status":3}}`, "not a string"},
		{"two kinds", `{"extension":{"number":"1","channel_id":"c","member_status":"RING"},"inbound":{"channel_id":"d","member_status":"RING"}}`, "more than one"},
		{"no kind", `{"trunk":{}}`, "none of"},
		{"not an object", `"2005"`, "not a JSON object"},
		{"kind not an object", `{"outbound":"x"}`, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openapi.DecodeEventFrame([]byte(frame(tc.member + "," + good)))
			if err != nil {
				t.Fatalf("the frame was dropped: %v", err)
			}
			cs := f.Event.Data.(*openapi.CallState)
			if len(cs.Members) != 1 || cs.Members[0].Number != "2002" {
				t.Errorf("Members = %+v, want the good one", cs.Members)
			}
			if len(cs.MemberErrors) != 1 || cs.MemberErrors[0].Index != 0 || !strings.Contains(cs.MemberErrors[0].Error(), tc.problem) {
				t.Errorf("MemberErrors = %v, want member 0 naming %q", cs.MemberErrors, tc.problem)
			}
			if tc.problem != "not a JSON object" && !errors.Is(cs.MemberErrors[0], openapi.ErrBadEventField) {
				t.Errorf("%v does not wrap ErrBadEventField", cs.MemberErrors[0])
			}
		})
	}

	f, err := openapi.DecodeEventFrame([]byte(frame(`{"extension":{"number":"2005","channel_id":"c","member_status":"PARKED"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	if st := f.Event.Data.(*openapi.CallState).Members[0].Status; st != "PARKED" || st.Known() {
		t.Errorf("unknown status = %q (known %v), want PARKED kept, not known", st, st.Known())
	}
}

func TestDecodeEventDrops(t *testing.T) {
	for _, tc := range []struct {
		name, frame string
		reason      pbx.DropReason
	}{
		{"not JSON", "garbage", pbx.DropNotJSON},
		{"array", `[1,2]`, pbx.DropNotJSON},
		{"truncated", `{"type":30011,"msg":`, pbx.DropNotJSON},
		{"type a string", `{"type":"30011","sn":"X","msg":{}}`, openapi.DropBadEnvelope},
		{"type a fraction", `{"type":30011.5,"msg":{}}`, openapi.DropBadEnvelope},
		{"sn a number", `{"type":30011,"sn":3631,"msg":{}}`, openapi.DropBadEnvelope},
		{"no type, no errcode", `{"sn":"X","msg":{}}`, openapi.DropBadEnvelope},
		{"errcode a string", `{"errcode":"0","errmsg":"SUCCESS"}`, openapi.DropBadEnvelope},
		{"errcode null", `{"errcode":null,"errmsg":"SUCCESS"}`, openapi.DropBadEnvelope}, // no answer to a subscribe
		{"no msg", `{"type":30011,"sn":"X"}`, pbx.DropBadMsg},
		{"msg null", `{"type":30011,"sn":"X","msg":null}`, pbx.DropBadMsg},
		{"msg an array", `{"type":30011,"sn":"X","msg":[]}`, pbx.DropBadMsg},
		{"msg a string of garbage", `{"type":30011,"sn":"X","msg":"{oops"}`, pbx.DropBadMsg},
		{"msg a string of an array", `{"type":30011,"sn":"X","msg":"[1]"}`, pbx.DropBadMsg},
		{"call_id a number", `{"type":30011,"sn":"X","msg":{"call_id":1.5,"members":[]}}`, openapi.DropBadEvent},
		{"no call_id", `{"type":30011,"sn":"X","msg":{"members":[]}}`, openapi.DropBadEvent},
		{"members an object", `{"type":30011,"sn":"X","msg":{"call_id":"1","members":{}}}`, openapi.DropBadEvent},
		{"no members", `{"type":30011,"sn":"X","msg":{"call_id":"1"}}`, openapi.DropBadEvent},
		{"cdr duration a string", `{"type":30012,"sn":"X","msg":{"call_id":"1","call_duration":"24"}}`, openapi.DropBadEvent},
		{"cdr duration a fraction", `{"type":30012,"sn":"X","msg":{"call_id":"1","talk_duration":2.5}}`, openapi.DropBadEvent},
		{"presence without status", `{"type":30009,"sn":"X","msg":{"extension":"2005"}}`, openapi.DropBadEvent},
		{"system event name a bool", `{"type":30034,"sn":"X","msg":{"event_name":true}}`, openapi.DropBadEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openapi.DecodeEventFrame([]byte(tc.frame))
			var de *openapi.EventDecodeError
			if !errors.As(err, &de) || de.Reason != tc.reason {
				t.Fatalf("err = %v, want an *EventDecodeError with reason %s", err, tc.reason)
			}
		})
	}
}

func TestDecodeEventFrameKinds(t *testing.T) {
	f, err := openapi.DecodeEventFrame([]byte("heartbeat response"))
	if err != nil || f.Kind != openapi.EventFrameHeartbeat {
		t.Errorf("heartbeat response = %+v, %v", f, err)
	}
	f, err = openapi.DecodeEventFrame([]byte(`{"errcode": 0, "errmsg": "SUCCESS"}`))
	if err != nil || f.Kind != openapi.EventFrameReply || f.ErrCode != 0 || f.ErrMsg != "SUCCESS" {
		t.Errorf("subscribe reply = %+v, %v", f, err)
	}
	f, err = openapi.DecodeEventFrame([]byte(`{"errcode":40002,"errmsg":"PARAMETER ERROR"}`))
	if err != nil || f.Kind != openapi.EventFrameReply || f.ErrCode != 40002 {
		t.Errorf("refusal = %+v, %v", f, err)
	}
}

// FuzzDecodeEventFrame checks that no input panics, and that what is
// delivered keeps the decoder's promises.
func FuzzDecodeEventFrame(f *testing.F) {
	for _, s := range []string{exampleCallState, exampleNewCDR, exampleReg, exampleCall, examplePresence, exampleSystem,
		"heartbeat response", `{"errcode":0,"errmsg":"SUCCESS"}`, `{"type":30011,"msg":{"call_id":"1","members":[{"extension":{}},1,null]}}`,
		`{"type":30012,"msg":"{\"pin\\u005fcode\":1,\"call_id\":\"x\"}"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := openapi.DecodeEventFrame(data)
		if err != nil {
			var de *openapi.EventDecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not an *EventDecodeError with a reason", err)
			}
			return
		}
		if fr.Kind != openapi.EventFrameEvent {
			return
		}
		ev := fr.Event
		if k := pinCodeKey(t, ev.Msg); k != "" {
			t.Fatalf("Msg %s keeps %s", ev.Msg, k)
		}
		if cs, ok := ev.Data.(*openapi.CallState); ok {
			for _, mem := range cs.Members {
				if mem.ChannelID == "" || mem.Status == "" {
					t.Fatalf("member %+v delivered without channel or status", mem)
				}
			}
		}
	})
}

func BenchmarkDecodeEventFrame(b *testing.B) {
	frame := []byte(exampleCallState)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := openapi.DecodeEventFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// pinCodeKey returns a pin_code key of the JSON object doc, at any depth,
// or "" if there is none.
func pinCodeKey(t *testing.T, doc json.RawMessage) string {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("Msg %q is not JSON: %v", doc, err)
	}
	if _, ok := v.(map[string]any); !ok {
		t.Fatalf("Msg %q is not a JSON object", doc)
	}
	var find func(v any) string
	find = func(v any) string {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if strings.EqualFold(k, "pin_code") {
					return k
				}
				if k := find(e); k != "" {
					return k
				}
			}
		case []any:
			for _, e := range x {
				if k := find(e); k != "" {
					return k
				}
			}
		}
		return ""
	}
	return find(v)
}

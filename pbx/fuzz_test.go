package pbx_test

import (
	"encoding/json"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// FuzzDecodeFrame checks that no frame, however malformed, makes the decoder
// (or the runtime-error rules behind it) panic, and that whatever is not
// dropped is what a session can deliver as is.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		"heartbeat response",
		notification(20049, `{"ext_num":"1001","personal_cdr":{"date":"","time":"","timestamp":1693201380,"number":"1001","talk_duration":0}}`),
		notification(10000, `{"username":"1001"}`),
		`{"type":20049,"msg":"{}","errcode":-3}`,
		`{"type":20049,"msg":"{}","errcode":-2}`,
		`{"type":20008,"msg":{"a":1}}`,
		`{"type":20104}`,
		"not json",
	} {
		f.Add([]byte(seed))
	}
	drops := map[pbx.DropReason]bool{pbx.DropNotJSON: true, pbx.DropErrcode2: true, pbx.DropBadMsg: true, pbx.DropUnknownType: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, reason := pbx.DecodeFrame(data)
		if reason != "" {
			if !drops[reason] {
				t.Fatalf("unknown drop reason %q", reason)
			}
			if fr.Kind != 0 || fr.Event != nil || fr.Msg != nil {
				t.Fatalf("dropped frame carries %+v", fr)
			}
			return
		}
		again, reason2 := pbx.DecodeFrame(data)
		if reason2 != "" || again.Kind != fr.Kind || again.Type != fr.Type || string(again.Msg) != string(fr.Msg) {
			t.Fatalf("not deterministic: %+v then %+v %q", fr, again, reason2)
		}
		switch fr.Kind {
		case pbx.FrameHeartbeat, pbx.FrameResubscribe:
			if fr.Event != nil {
				t.Fatalf("kind %d carries an event", fr.Kind)
			}
		case pbx.FrameNotification:
			if !json.Valid(fr.Msg) {
				t.Fatalf("msg %q is not valid JSON", fr.Msg)
			}
			switch ev := fr.Event.(type) {
			case *pbx.CDRChanged:
				if fr.Type != pbx.TypeCDRChanged {
					t.Fatalf("CDRChanged for type %d", fr.Type)
				}
			case *pbx.Notice:
				if ev.Type != fr.Type || fr.Type == pbx.TypeCDRChanged || string(ev.Msg) != string(fr.Msg) {
					t.Fatalf("notice %+v for frame %+v", ev, fr)
				}
			default:
				t.Fatalf("event %T", fr.Event)
			}
			for _, plan := range []string{"en", "cn"} {
				for _, ua := range []string{pbx.UserAgentWebClient, pbx.UserAgentWebPC} {
					if err := pbx.RuntimeErrorFor(fr, "1001", plan, ua); err != nil {
						if _, ok := pbx.CodeOf(err); !ok {
							t.Fatalf("runtime error %v has no SDK code", err)
						}
					}
				}
			}
		default:
			t.Fatalf("kind %d without a drop reason", fr.Kind)
		}
	})
}

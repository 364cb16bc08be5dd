package pbx_test

import (
	"encoding/json"
	"errors"
	"reflect"
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
			// Credentials were removed already: removing them again
			// changes nothing.
			if clean, _ := pbx.RedactCredentialFields(fr.Msg); string(clean) != string(fr.Msg) {
				t.Fatalf("msg %s still carries credentials: %s", fr.Msg, clean)
			}
			if len(fr.Problems) > 0 && fr.Type != pbx.TypeCDRChanged {
				t.Fatalf("problems %+v for type %d", fr.Problems, fr.Type)
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

// FuzzDecodeCDRResult checks the searchpersonal answer decoder against
// any body: it never panics; it fails only with ErrPBXAPI and then returns
// no page; a page keeps every record the PBX listed, in place; a problem
// names a field and a JSON kind; an unusable total reads as -1; and what it
// returns is a fixed point: encoded and decoded again, it comes back equal,
// with no problem.
func FuzzDecodeCDRResult(f *testing.F) {
	for _, seed := range []string{
		`{"errcode":0,"errmsg":"SUCCESS","personal_cdr_list":[{"id":2546,"date":"2023-08-28","time":"13:43:00","timestamp":1693201380,"number":"2000","number_type":"ext","extension":{"ext_id":3,"ext_num":"2000","caller_id_name":"Bob"},"status":1,"talk_duration":42,"call_type":"Internal","uniqueid":"1693201380.12","disposition":"ANSWERED","dcontext":"DLPN_DialPlan1001","caller_id":"2000","clid":"\"Bob\" <2000>"}],"total_number":1}`,
		`{"errcode":0,"personal_cdr_list":[{"id":"2546","status":"2","timestamp":"1693201380","talk_duration":"0","extension":{"ext_id":"3"}}],"total_number":"1"}`,
		`{"errcode":0,"personal_cdr_list":[{"id":2546.0,"status":2.0,"timestamp":1693201380.0}],"total_number":1.0}`,
		`{"errcode":0,"personal_cdr_list":[{"id":{"x":1}},7,null,[],{"extension":"x"}],"total_number":"many"}`,
		`{"errcode":0,"personal_cdr_list":{"id":1},"total_number":1}`,
		`{"errcode":0,"personal_cdr_list":null}`,
		`{"errcode":0,"total_number":-5,"personal_cdr_list":[]}`,
		`{"errcode":0,"total_number":1e400,"personal_cdr_list":[{"id":9223372036854775808,"number":1e21}]}`,
		`{"errcode":"0","errmsg":{"a":1},"ID":3,"personal_cdr_list":[{"ID":1,"id":2,"id":"3"}]}`,
		`[1,2,3]`,
		`"text"`,
		`{"personal_cdr_list":[{"number":" 0x1F ","id":" 12 ","caller_id":"\u0000"}]}`,
	} {
		f.Add([]byte(seed))
	}
	kinds := map[string]bool{"string": true, "number": true, "bool": true, "object": true, "array": true}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, problems, err := pbx.DecodeCDRResult(data)
		if err != nil {
			if !errors.Is(err, pbx.ErrPBXAPI) || res != nil {
				t.Fatalf("err %v with page %+v", err, res)
			}
			return
		}
		for _, p := range problems {
			if p.Field == "" || !kinds[p.Kind] {
				t.Fatalf("problem %+v", p)
			}
			if p.Field == "total_number" && res.TotalNumber != -1 {
				t.Fatalf("unusable total read as %d", res.TotalNumber)
			}
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) == nil {
			var list []json.RawMessage
			if json.Unmarshal(top["personal_cdr_list"], &list) == nil && len(list) != len(res.Records) {
				t.Fatalf("%d records listed, %d decoded", len(list), len(res.Records))
			}
		}
		again, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		res2, problems2, err := pbx.DecodeCDRResult(again)
		if err != nil || len(problems2) != 0 || !reflect.DeepEqual(res, res2) {
			t.Fatalf("not a fixed point: %+v\nthen %+v, %v, %v", res, res2, problems2, err)
		}
	})
}

package schema

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// The live events' and call control bodies' fixtures join the package's
// (fixtures_test.go), so that every test over eventData and bodies covers
// them.
func init() {
	other := &CallParty{Kind: PartyExtension, Number: "1002"}
	call := func(event, status, previous string, seq int) CallEvent {
		return CallEvent{Event: event, PBX: testPBX, ExtNum: "1001", CallID: "1651057476.362",
			ChannelID: "PJSIP/1001-00000023", MemberStatus: status, Previous: previous,
			Direction: DirectionInternal, Other: other, Seq: seq}
	}
	ended := call(CallEnded, "ANSWERED", CallAnswered, 4)
	ended.Cause = CauseCallEnded
	inbound := call(CallRinging, "RING", "", 1)
	inbound.Direction, inbound.Trunk, inbound.CallPath = DirectionInbound, "SIP-Trunk1", "ringgroup-6300"
	inbound.Other = &CallParty{Kind: PartyInbound, Number: "+4915112345678", TrunkName: "SIP-Trunk1"}
	alone := call(CallRinging, "RING", "", 1) // click-to-call: the caller rings alone
	alone.Other = nil
	system := func(level string) SystemEvent {
		return SystemEvent{PBX: testPBX, Level: level, EventName: "sip_trunk_disconnect", EventType: "telephony",
			EventLevel: "warn", EventContent: "Trunk SIP-Trunk1 is unreachable.", CreateTime: "2023/06/12 09:21:39"}
	}
	eventData = append(eventData, []struct {
		typ  string
		data any
	}{
		{TypeCallRinging, call(CallRinging, "ALERT", "", 1)},
		{TypeCallRinging, inbound},
		{TypeCallRinging, alone},
		{TypeCallAnswered, call(CallAnswered, "ANSWERED", CallRinging, 2)},
		{TypeCallHeld, call(CallHeld, "HOLD", CallAnswered, 3)},
		{TypeCallResumed, call(CallResumed, "ANSWERED", CallHeld, 4)},
		{TypeCallEnded, call(CallEnded, "BYE", CallAnswered, 5)},
		{TypeCallEnded, ended},
		{TypePresenceChanged, PresenceChanged{PBX: testPBX, ExtNum: "1001", Status: "away", Previous: "available", Seq: 2}},
		{TypePresenceChanged, PresenceChanged{PBX: testPBX, ExtNum: "1001", Status: "available", Seq: 1}},
		{TypeRegistrationChanged, RegistrationChanged{PBX: testPBX, ExtNum: "1001", Kind: "Mobile", Status: "Registered", RegisteredIP: "223.104.45.163", Seq: 1}},
		{TypeCallStatusChanged, CallStatusChanged{PBX: testPBX, ExtNum: "1001", Status: "Ringing", Previous: "Idle", Seq: 7}},
		{TypeCDREnded, CDREnded{PBX: testPBX, CallID: "1651057476.362", TimeStart: "2022-04-27 19:04:36", CallFrom: "2005", CallTo: "2002",
			CallDuration: 24, TalkDuration: 21, Status: "ANSWERED", Type: "Internal", Direction: DirectionInternal,
			Recording: "20220427190445-1651057476.362-2005-2002-Internal.wav"}},
		{TypeSystemInfo, system(SystemLevelInfo)},
		{TypeSystemWarning, system(SystemLevelWarning)},
		{TypeSystemAlert, system(SystemLevelAlert)},
	}...)
	member := func(kind, number, status string) LiveMember {
		m := LiveMember{Kind: kind, ChannelID: "PJSIP/" + number + "-00000023", MemberStatus: status}
		if kind == PartyExtension {
			m.Number = number
		} else {
			m.From, m.To, m.TrunkName = number, "1001", "SIP-Trunk1"
		}
		return m
	}
	bodies = append(bodies, []struct {
		typ  string
		body any
	}{
		{TypeCallDialRequest, CallDialRequest{Callee: "1002"}},
		{TypeCallDialRequest, CallDialRequest{Callee: "+4915112345678", AutoAnswer: true}},
		{TypeCallDialResult, CallDialResult{CallID: "1651057476.362"}},
		{TypeCallActionRequest, CallActionRequest{CallID: "1651057476.362"}},
		{TypeCallActionRequest, CallActionRequest{ChannelID: "PJSIP/1001-00000023"}},
		{TypeCallTransferRequest, CallTransferRequest{CallID: "1651057476.362", Type: TransferBlind, Number: "1003"}},
		{TypeCallTransferRequest, CallTransferRequest{ChannelID: "PJSIP/1001-00000023", Type: TransferAttended, Number: "1003"}},
		{TypeCallTransferRequest, CallTransferRequest{CallID: "1651057476.362", Type: TransferAttended, AttendedOperate: AttendedComplete}},
		{TypeCallActionResult, CallActionResult{CallID: "1651057476.362", ChannelID: "PJSIP/1001-00000023"}},
		{TypeCallListResult, CallListResult{}},
		{TypeCallListResult, CallListResult{Calls: []LiveCall{
			{CallID: "1651057476.362", Direction: DirectionInbound, Trunk: "SIP-Trunk1",
				Members: []LiveMember{member(PartyInbound, "5550176", "ANSWERED"), member(PartyExtension, "1001", "ANSWER")}},
			{CallID: "1651057480.370", Direction: DirectionInternal},
		}}},
	}...)
}

// TestLiveConstantsMatchSchemas keeps the Go constants of the live events
// and call control bodies in step with the schemas' enums and consts.
func TestLiveConstantsMatchSchemas(t *testing.T) {
	cases := []struct {
		typ     string
		pointer []string
		consts  []any
	}{
		{TypeCallRinging, []string{"$defs", "direction", "enum"}, []any{DirectionInbound, DirectionOutbound, DirectionInternal}},
		{TypeCallRinging, []string{"$defs", "call_party", "properties", "kind", "enum"}, []any{PartyExtension, PartyInbound, PartyOutbound}},
		{TypeCallRinging, []string{"$defs", "call_state", "enum"}, []any{"", CallRinging, CallAnswered, CallHeld}},
		{TypeCallEnded, []string{"properties", "cause", "enum"}, []any{CauseCallEnded, CauseGap}},
		{TypeCallListResult, []string{"$defs", "live_member", "properties", "kind", "enum"}, []any{PartyExtension, PartyInbound, PartyOutbound}},
		{TypeCallTransferRequest, []string{"properties", "type", "enum"}, []any{TransferBlind, TransferAttended}},
		{TypeCallTransferRequest, []string{"properties", "attended_operate", "enum"}, []any{AttendedComplete, AttendedAbort, AttendedThreeway, AttendedSwap}},
	}
	for _, c := range cases {
		enum := pointerInto(t, c.typ, c.pointer).([]any)
		if len(enum) != len(c.consts) {
			t.Errorf("%s %v = %v, constants %v", c.typ, c.pointer, enum, c.consts)
		}
		for _, want := range c.consts {
			if !slices.Contains(enum, want) {
				t.Errorf("%s %v lacks %q", c.typ, c.pointer, want)
			}
		}
	}
	for _, ev := range []string{CallRinging, CallAnswered, CallHeld, CallResumed, CallEnded} {
		typ, ok := CallEventType(ev)
		if !ok || typ != "com.yeastar.pbx.call."+ev+".v1" {
			t.Errorf("CallEventType(%s) = %s, %v", ev, typ, ok)
			continue
		}
		if got := pointerInto(t, typ, []string{"properties", "event", "const"}); got != ev {
			t.Errorf("%s: event const %v, want %s", typ, got, ev)
		}
	}
	for _, level := range []string{SystemLevelInfo, SystemLevelWarning, SystemLevelAlert} {
		typ, ok := SystemEventType(level)
		if !ok || typ != "com.yeastar.pbx.system."+level+".v1" {
			t.Errorf("SystemEventType(%s) = %s, %v", level, typ, ok)
			continue
		}
		if got := pointerInto(t, typ, []string{"properties", "level", "const"}); got != level {
			t.Errorf("%s: level const %v, want %s", typ, got, level)
		}
	}
	if _, ok := CallEventType("missed"); ok {
		t.Error("CallEventType(missed) known")
	}
	if _, ok := SystemEventType("warn"); ok {
		t.Error("SystemEventType(warn) known: the type's level is warning, warn is the PBX's event_level")
	}
}

func pointerInto(t *testing.T, typ string, pointer []string) any {
	t.Helper()
	b, ok := SchemaFile(typ)
	if !ok {
		t.Fatalf("no schema %s", typ)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range pointer {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: nothing at %v", typ, pointer)
		}
		v = m[k]
	}
	return v
}

// TestNewRefusesMismatchedLiveData: the event and level fields choose the
// type, so data naming another is refused, and one naming none too.
func TestNewRefusesMismatchedLiveData(t *testing.T) {
	for _, c := range []struct {
		typ  string
		data any
	}{
		{TypeCallAnswered, CallEvent{Event: CallRinging}},
		{TypeCallRinging, CallEvent{Event: "missed"}},
		{TypeSystemAlert, SystemEvent{Level: SystemLevelInfo}},
		{TypeSystemInfo, SystemEvent{Level: "warn"}},
		{TypeCDREnded, PresenceChanged{}},
	} {
		if _, err := New(c.typ, testSource, "1001", "1", testTime, c.data); err == nil || !strings.Contains(err.Error(), "data of type") {
			t.Errorf("New(%s, %+v) = %v, want a refusal", c.typ, c.data, err)
		}
	}
}

func TestInvalidLiveDocumentsRejected(t *testing.T) {
	docs := testDocs(t)
	cases := []struct {
		name, typ, path string
		val             any
		want, at        string
	}{
		{"event of another type", TypeCallHeld, "data/event", CallAnswered, "value must be", "/data/event"},
		{"seq 0", TypeCallRinging, "data/seq", 0, "minimum", "/data/seq"},
		{"no channel", TypeCallAnswered, "data/channel_id", del, "missing property 'channel_id'", "/data"},
		{"empty member status", TypeCallAnswered, "data/member_status", "", "minLength", "/data/member_status"},
		{"unknown direction", TypeCallEnded, "data/direction", "sideways", "must be one of", "/data/direction"},
		{"previous ended", TypeCallRinging, "data/previous", CallEnded, "must be one of", "/data/previous"},
		{"unknown cause", TypeCallEnded, "data/cause", "timeout", "must be one of", "/data/cause"},
		{"other without number", TypeCallRinging, "data/other", map[string]any{"kind": "extension"}, "missing property 'number'", "/data/other"},
		{"presence without status", TypePresenceChanged, "data/status", del, "missing property 'status'", "/data"},
		{"registration seq a string", TypeRegistrationChanged, "data/seq", "1", "want integer", "/data/seq"},
		{"call status without previous", TypeCallStatusChanged, "data/previous", del, "missing property 'previous'", "/data"},
		{"cdr without call_id", TypeCDREnded, "data/call_id", del, "missing property 'call_id'", "/data"},
		{"cdr duration a string", TypeCDREnded, "data/call_duration", "24", "want integer", "/data/call_duration"},
		{"system level of another type", TypeSystemWarning, "data/level", SystemLevelAlert, "value must be", "/data/level"},
		{"dial without callee", TypeCallDialRequest, "callee", del, "missing property 'callee'", ""},
		{"dial a name", TypeCallDialRequest, "callee", "alice", "does not match pattern", "/callee"},
		{"dial with caller", TypeCallDialRequest, "caller", "1002", "additional properties 'caller'", ""},
		{"auto_answer a string", TypeCallDialRequest, "auto_answer", "yes", "want boolean", "/auto_answer"},
		{"action with both", TypeCallActionRequest, "call_id", "1651057476.362", "oneOf", ""},
		{"channel with a space", TypeCallActionRequest, "channel_id", "PJSIP 1001", "does not match pattern", "/channel_id"},
		{"operate on a blind transfer", TypeCallTransferRequest, "type", TransferBlind, "value must be", "/type"},
		{"transfer sideways", TypeCallTransferRequest, "type", "sideways", "must be one of", "/type"},
		{"result without channel", TypeCallActionResult, "channel_id", del, "missing property 'channel_id'", ""},
		{"list null", TypeCallListResult, "calls", nil, "want array", "/calls"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.typ, mutate(t, docs[c.typ], c.path, c.val))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if !slices.ContainsFunc(ve.Problems, func(p Problem) bool { return p.Location == c.at && strings.Contains(p.Message, c.want) }) {
				t.Errorf("no problem %q at %q in %v", c.want, c.at, ve)
			}
		})
	}
}

// TestTransferRequestRules: the schema's conditionals, case by case.
func TestTransferRequestRules(t *testing.T) {
	for _, c := range []struct {
		doc   string
		valid bool
	}{
		{`{"call_id":"1.2","type":"blind","number":"1003"}`, true},
		{`{"channel_id":"PJSIP/1001-1","type":"attended","number":"1003"}`, true},
		{`{"call_id":"1.2","type":"attended","attended_operate":"swap"}`, true},
		{`{"call_id":"1.2","type":"blind","attended_operate":"complete"}`, false},
		{`{"call_id":"1.2","type":"attended","attended_operate":"complete","number":"1003"}`, false},
		{`{"type":"blind","number":"1003"}`, false},
		{`{"call_id":"1.2","channel_id":"PJSIP/1001-1","type":"blind","number":"1003"}`, false},
		{`{"call_id":"1.2","type":"attended","attended_operate":"hangup"}`, false},
	} {
		if err := Validate(TypeCallTransferRequest, []byte(c.doc)); (err == nil) != c.valid {
			t.Errorf("%s: Validate = %v, want valid %v", c.doc, err, c.valid)
		}
	}
}

func TestCallListResultMarshalsEmptyLists(t *testing.T) {
	b, err := json.Marshal(CallListResult{Calls: []LiveCall{{CallID: "1.2", Direction: DirectionInternal}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"calls":[{"call_id":"1.2","direction":"internal","members":[]}]}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	if b, _ := json.Marshal(CallListResult{}); string(b) != `{"calls":[]}` {
		t.Errorf("empty result %s", b)
	}
}

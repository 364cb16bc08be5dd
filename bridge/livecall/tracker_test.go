package livecall_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

const (
	ch1 = "PJSIP/1001-00000001"
	ch2 = "PJSIP/1002-00000002"
	ch3 = "PJSIP/1003-00000003"
)

func TestStaleFramesDropped(t *testing.T) {
	tr := newTracker(t, livecall.Config{})
	ringing := callFrame(t, "1.1", ext("1001", ch1, "ALERT"), ext("1002", ch2, "RING"))
	talking := callFrame(t, "1.1", ext("1001", ch1, "ANSWERED"), ext("1002", ch2, "ANSWER"))
	gone := callFrame(t, "1.1", ext("1001", ch1, "ANSWERED"), ext("1002", ch2, "BYE"), ext("1003", ch3, "RING"))
	if got := describe(observeAll(tr, ringing, talking), ""); len(got) != 4 {
		t.Fatalf("events %q", got)
	}
	// The ringing frame again, after the answer: 1002 cannot ring again.
	if got := observeAll(tr, ringing); len(got) != 0 {
		t.Errorf("a stale frame gave %q", describe(got, ""))
	}
	if got := describeCalls(observeAll(tr, gone)); !slices.Equal(got, []string{"1002:ended<answered#3", "1003:ringing<#1"}) {
		t.Errorf("events %q", got)
	}
	// 1002 hung up: a frame with it talking is older.
	if got := observeAll(tr, talking); len(got) != 0 {
		t.Errorf("a frame bringing back a hung-up channel gave %q", describe(got, ""))
	}
	if n := tr.Stats().Counts[livecall.ReasonStaleFrame]; n != 2 {
		t.Errorf("%d stale frames counted, want 2", n)
	}
}

// TestTransfersMoveBackToRinging: a blind transfer makes the moved party
// hear ringback again, and an attended one holds it: both are changes.
func TestTransfersMoveBackToRinging(t *testing.T) {
	tr := newTracker(t, livecall.Config{})
	out := observeAll(tr,
		callFrame(t, "2.1", ext("1001", ch1, "ALERT"), ext("1002", ch2, "RING")),
		callFrame(t, "2.1", ext("1001", ch1, "ANSWERED"), ext("1002", ch2, "ANSWER")),
		// 1002 blind-transfers 1001 to 1003.
		callFrame(t, "2.1", ext("1001", ch1, "ALERT"), ext("1002", ch2, "BYE"), ext("1003", ch3, "RING")),
		callFrame(t, "2.1", ext("1001", ch1, "ALERT"), ext("1003", ch3, "RING")),
		callFrame(t, "2.1", ext("1001", ch1, "ANSWERED"), ext("1003", ch3, "ANSWER")),
		callFrame(t, "2.1", ext("1001", ch1, "BYE"), ext("1003", ch3, "BYE")),
	)
	want := []string{"1001:ringing<#1", "1002:ringing<#1", "1001:answered<ringing#2", "1002:answered<ringing#2",
		"1001:ringing<answered#3", "1002:ended<answered#3", "1003:ringing<#1",
		"1001:answered<ringing#4", "1003:answered<ringing#2", "1001:ended<answered#5", "1003:ended<answered#3"}
	if got := describeCalls(out); !slices.Equal(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
	validate(t, out)
	for _, ev := range out {
		if d := ev.Data.(schema.CallEvent); d.ExtNum == "1001" && d.Seq == 4 && (d.Other == nil || d.Other.Number != "1003") {
			t.Errorf("after the transfer, 1001's other party is %+v, want 1003 (1002 hung up)", d.Other)
		}
	}
}

func describeCalls(events []livecall.Event) []string { return describe(events, "call.") }

// TestSeveralPhonesOfOneExtension: an extension ringing on two channels
// rings once; one answering and the other stopping is one answer; it ends
// once, when its last channel does.
func TestSeveralPhonesOfOneExtension(t *testing.T) {
	tr := newTracker(t, livecall.Config{})
	desk, mobile := "PJSIP/1002-0000000a", "PJSIP/1002-0000000b"
	out := observeAll(tr,
		callFrame(t, "3.1", m{"inbound", "5550100", "PJSIP/SIP-Trunk1-01", "ALERT"}, ext("1002", desk, "RING"), ext("1002", mobile, "RING")),
		callFrame(t, "3.1", m{"inbound", "5550100", "PJSIP/SIP-Trunk1-01", "ANSWERED"}, ext("1002", desk, "RING"), ext("1002", mobile, "ANSWER")),
		callFrame(t, "3.1", m{"inbound", "5550100", "PJSIP/SIP-Trunk1-01", "ANSWERED"}, ext("1002", desk, "BYE"), ext("1002", mobile, "ANSWER")),
		callFrame(t, "3.1", m{"inbound", "5550100", "PJSIP/SIP-Trunk1-01", "ANSWERED"}, ext("1002", mobile, "HOLD")),
		callFrame(t, "3.1", m{"inbound", "5550100", "PJSIP/SIP-Trunk1-01", "BYE"}, ext("1002", mobile, "BYE")),
	)
	want := []string{"1002:ringing<#1", "1002:answered<ringing#2", "1002:held<answered#3", "1002:ended<held#4"}
	if got := describeCalls(out); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	validate(t, out)
	d := out[1].Data.(schema.CallEvent)
	if d.ChannelID != mobile || d.Direction != schema.DirectionInbound || d.Trunk != "SIP-Trunk1" ||
		d.Other == nil || *d.Other != (schema.CallParty{Kind: schema.PartyInbound, Number: "5550100", TrunkName: "SIP-Trunk1"}) {
		t.Errorf("answered %+v: want the mobile's channel, inbound on SIP-Trunk1 from 5550100", d)
	}
}

// TestCallEndsWithoutTheMembersBye: a member that leaves the list without
// a BYE, or a CDR before the last 30011, still ends the extension once,
// with a cause; the late 30011 then gives nothing.
func TestCallEndsWithoutTheMembersBye(t *testing.T) {
	tr := newTracker(t, livecall.Config{})
	out := observeAll(tr,
		callFrame(t, "4.1", ext("1001", ch1, "ALERT"), ext("1002", ch2, "RING")),
		callFrame(t, "4.1", ext("1001", ch1, "ANSWERED"), ext("1002", ch2, "ANSWER")),
		frame(t, 30012, map[string]any{"call_id": "4.1", "call_from": "1001", "call_to": "1002", "status": "ANSWERED",
			"type": "Internal", "pin_code": "1234", "src_trunk_name": " ", "call_duration": 30, "talk_duration": 21}),
		callFrame(t, "4.1", ext("1001", ch1, "BYE"), ext("1002", ch2, "BYE")),
	)
	want := []string{"1001:ringing<#1", "1002:ringing<#1", "1001:answered<ringing#2", "1002:answered<ringing#2",
		"1001:ended<answered#3", "1002:ended<answered#3"}
	if got := describeCalls(out); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	validate(t, out)
	for _, ev := range out {
		if d, ok := ev.Data.(schema.CallEvent); ok && d.Event == schema.CallEnded && (d.Cause != schema.CauseCallEnded || d.MemberStatus != "ANSWER" && d.MemberStatus != "ANSWERED") {
			t.Errorf("ended %+v: want cause call_ended and the last status seen", d)
		}
		if d, ok := ev.Data.(schema.CDREnded); ok && (d.CallID != "4.1" || d.Direction != schema.DirectionInternal || d.SrcTrunkName != "" || ev.Ext != "pbx") {
			t.Errorf("cdr %+v", d)
		}
	}
	if n := tr.Stats().Counts[livecall.ReasonLateFrame]; n != 1 {
		t.Errorf("%d late frames, want 1", n)
	}

	// A member gone from the list without its BYE ends with the call.
	out = observeAll(tr,
		callFrame(t, "4.2", ext("1001", ch1, "ALERT"), ext("1002", ch2, "RING"), ext("1003", ch3, "RING")),
		callFrame(t, "4.2", ext("1001", ch1, "BYE"), ext("1002", ch2, "BYE")),
	)
	if got := describeCalls(out); !slices.Contains(got, "1003:ended<ringing#2") || len(got) != 6 {
		t.Errorf("events %q: want 1003 ended with the call", got)
	}
}

// TestIDsAreTheFactsNotTheMoments: the same frames on another clock give
// the same ids; another call, another extension or a later change give
// others.
func TestIDsAreTheFactsNotTheMoments(t *testing.T) {
	frames := func(id string) []*openapi.Event {
		return []*openapi.Event{
			callFrame(t, id, ext("1001", ch1, "ALERT"), ext("1002", ch2, "RING")),
			callFrame(t, id, ext("1001", ch1, "ANSWERED"), ext("1002", ch2, "ANSWER")),
			frame(t, 30009, map[string]any{"extension": "1001", "status": "away"}),
			frame(t, 30009, map[string]any{"extension": "1001", "status": "available"}),
			frame(t, 30009, map[string]any{"extension": "1001", "status": "away"}),
			frame(t, 30036, map[string]any{"event_name": "web_login_fail", "event_type": "security", "event_level": "error",
				"event_content": "3 failed logins", "create_time": "2026/03/02 09:00:00"}),
		}
	}
	clock := newClock()
	a := ids(observeAll(newTracker(t, livecall.Config{Now: clock.Now}), frames("5.1")...))
	clock.Add(time.Hour)
	b := ids(observeAll(newTracker(t, livecall.Config{Now: clock.Now}), frames("5.1")...))
	if !slices.Equal(a, b) {
		t.Errorf("ids on another clock differ:\n%q\n%q", a, b)
	}
	c := ids(observeAll(newTracker(t, livecall.Config{}), frames("5.2")...))
	if slices.Equal(a[:4], c[:4]) || !slices.Equal(a[4:], c[4:]) {
		t.Errorf("another call: ids %q, first %q: want the call's differ and the rest equal", c, a)
	}
	other := ids(observeAll(newTracker(t, livecall.Config{PBX: "pbx2.example.com"}), frames("5.1")...))
	all := append(slices.Clone(a), other...)
	slices.Sort(all)
	if len(slices.Compact(all)) != len(a)+len(other) {
		t.Errorf("ids repeat within a run or across PBXs: %q %q", a, other)
	}
}

func TestBoundsAndFloods(t *testing.T) {
	clock := newClock()
	tr := newTracker(t, livecall.Config{MaxCalls: 50, MaxExtensions: 20, Now: clock.Now})
	for i := range 1000 {
		tr.Observe(callFrame(t, fmt.Sprintf("6.%d", i), ext("1001", fmt.Sprintf("PJSIP/1001-%08x", i), "RING")))
		tr.Observe(frame(t, 30009, map[string]any{"extension": fmt.Sprint(2000 + i), "status": "away"}))
	}
	st := tr.Stats()
	if st.Calls != 50 || st.Counts[livecall.ReasonCallsFull] != 950 || st.Extensions != 20 || st.Counts[livecall.ReasonExtensionsFull] != 980 {
		t.Errorf("stats %+v: want 50 calls and 20 extensions tracked, the rest counted", st)
	}
	// A flood of short calls between two sweeps: the ended calls
	// remembered stay within MaxCalls.
	tr = newTracker(t, livecall.Config{MaxCalls: 50, Now: clock.Now})
	for i := range 1000 {
		id := fmt.Sprintf("6.s%d", i)
		observeAll(tr, callFrame(t, id, ext("1001", ch1, "RING")), callFrame(t, id, ext("1001", ch1, "BYE")))
	}
	if st := tr.Stats(); st.Ended != 50 {
		t.Errorf("stats %+v: want the 50 latest ended calls remembered", st)
	}
	// Large calls: the channels of all calls stay within
	// ChannelsPerCall * MaxCalls.
	tr = newTracker(t, livecall.Config{MaxCalls: 10, Now: clock.Now})
	for i := range 20 {
		var big []m
		for j := range 10 {
			big = append(big, ext(fmt.Sprint(4000+j), fmt.Sprintf("PJSIP/%d-%d", 4000+j, i), "RING"))
		}
		tr.Observe(callFrame(t, fmt.Sprintf("6.b%d", i), big...))
	}
	if st := tr.Stats(); st.Channels != livecall.ChannelsPerCall*10 || st.Calls != livecall.ChannelsPerCall ||
		st.Counts[livecall.ReasonMembersFull] != 200-livecall.ChannelsPerCall*10 {
		t.Errorf("stats %+v: want %d channels in all, and no call kept without one", st, livecall.ChannelsPerCall*10)
	}
	if state, _ := tr.Export(); newTracker(t, livecall.Config{}).Import(state) != nil {
		t.Errorf("the state of a full tracker does not import: %s", state)
	}
	// One call listing more channels than MaxMembers.
	var many []m
	for i := range livecall.MaxMembers + 10 {
		many = append(many, ext(fmt.Sprint(3000+i), fmt.Sprintf("PJSIP/%d-1", 3000+i), "RING"))
	}
	tr = newTracker(t, livecall.Config{Now: clock.Now})
	out := tr.Observe(callFrame(t, "6.x", many...))
	if len(out) != livecall.MaxMembers || tr.Stats().Counts[livecall.ReasonMembersFull] != 10 {
		t.Errorf("%d events, stats %+v: want MaxMembers and 10 skipped", len(out), tr.Stats())
	}
	// Calls silent for CallTTL are forgotten, without events.
	tr = newTracker(t, livecall.Config{Now: clock.Now, CallTTL: time.Hour})
	tr.Observe(callFrame(t, "6.y", ext("1001", ch1, "RING")))
	clock.Add(59 * time.Minute)
	tr.Observe(callFrame(t, "6.z", ext("1002", ch2, "RING")))
	clock.Add(2 * time.Minute)
	if out := tr.Observe(frame(t, 30009, map[string]any{"extension": "1003", "status": "away"})); len(out) != 1 {
		t.Fatalf("events %q", describe(out, ""))
	}
	if st := tr.Stats(); st.Calls != 1 || st.Counts[livecall.ReasonExpired] != 1 {
		t.Errorf("stats %+v: want 6.y expired, 6.z kept", st)
	}
}

// TestHostileFrames: what the decoder lets through but cannot be
// tracked is counted, never published, never a panic.
func TestHostileFrames(t *testing.T) {
	tr := newTracker(t, livecall.Config{})
	cases := []struct {
		ev     *openapi.Event
		reason livecall.Reason
	}{
		{callFrame(t, "7.1", ext("10.01", "PJSIP/x-1", "RING")), livecall.ReasonUnsafeExtension},
		{callFrame(t, "7.2", ext("pbx", "PJSIP/x-2", "RING")), livecall.ReasonUnsafeExtension},
		{callFrame(t, "7.3", ext("1001", "PJSIP/1001-3", "RING"), ext("1002", "PJSIP/1001-3", "RING")), livecall.ReasonBadMember},
		{callFrame(t, "7.4", ext("1001", ch1, "SPEAKING")), livecall.ReasonUnknownStatus},
		{frame(t, 30009, map[string]any{"extension": "1001 ", "status": "away"}), ""}, // trimmed by the decoder
		{frame(t, 30009, map[string]any{"extension": "a>b", "status": "away"}), livecall.ReasonUnsafeExtension},
		{frame(t, 30016, map[string]any{"anything": 1}), livecall.ReasonUnknownType},
		{&openapi.Event{Type: openapi.EventCallState}, livecall.ReasonBadEvent},
		{&openapi.Event{Type: openapi.EventCallState, Data: &openapi.CallState{CallID: "7.5", Members: []openapi.CallMember{{Kind: "conference", ChannelID: "x", Status: "RING"}}}}, livecall.ReasonBadMember},
		{&openapi.Event{Type: openapi.EventSystemInfo, Data: &openapi.SystemEvent{}}, livecall.ReasonBadEvent},
		{&openapi.Event{Type: openapi.EventCallState, Data: &openapi.PresenceChange{Extension: "1001", Status: ""}}, livecall.ReasonBadEvent},
		{callFrame(t, "7.6", ext("1001", "PJSIP/"+strings.Repeat("x", livecall.MaxFieldBytes), "RING")), livecall.ReasonBadMember},
		{callFrame(t, strings.Repeat("7", livecall.MaxFieldBytes+1), ext("1001", ch1, "RING")), livecall.ReasonBadEvent},
		{frame(t, 30009, map[string]any{"extension": "1001", "status": strings.Repeat("a", livecall.MaxFieldBytes+1)}), livecall.ReasonBadEvent},
		{frame(t, 30007, map[string]any{"extension": "1001", "status": "Registered", "registered_ip": strings.Repeat("1", 200)}), livecall.ReasonBadEvent},
		{nil, ""},
	}
	for i, c := range cases {
		before := tr.Stats().Counts[c.reason]
		out := tr.Observe(c.ev)
		validate(t, out)
		if c.reason != "" && tr.Stats().Counts[c.reason] != before+1 {
			t.Errorf("case %d: %s not counted (%+v); events %q", i, c.reason, tr.Stats(), describe(out, ""))
		}
		for _, ev := range out {
			if ev.Ext != "1001" && ev.Ext != "1002" {
				t.Errorf("case %d: event for %q", i, ev.Ext)
			}
		}
	}
}

// TestReconcileAfterAGap: a call missing from the PBX's live calls after a
// gap ends with cause gap; one that saw a frame after the query was sent
// is newer than the answer and left alone; one the PBX lists is applied.
func TestReconcileAfterAGap(t *testing.T) {
	clock := newClock()
	tr := newTracker(t, livecall.Config{Now: clock.Now})
	observeAll(tr,
		callFrame(t, "8.1", ext("1001", ch1, "ANSWERED"), ext("1002", ch2, "ANSWER")),
		callFrame(t, "8.2", ext("1003", ch3, "RING")))
	clock.Add(time.Second)
	asOf := clock.Now()
	clock.Add(time.Second)
	observeAll(tr, callFrame(t, "8.3", ext("1004", "PJSIP/1004-1", "RING")))
	live := []openapi.CallState{{CallID: "8.2", Members: []openapi.CallMember{{Kind: openapi.MemberExtension, Number: "1003", ChannelID: ch3, Status: openapi.StatusAnswer}}}}
	got := describeCalls(tr.Reconcile(live, asOf))
	want := []string{"1003:answered<ringing#2", "1001:ended<answered#2", "1002:ended<answered#2"}
	if !slices.Equal(got, want) {
		t.Errorf("Reconcile gave %q, want %q", got, want)
	}
	if _, ok := tr.Call("8.3"); !ok {
		t.Error("8.3, newer than the query, was ended")
	}
}

func TestImportRefusesWhatItCannotTrack(t *testing.T) {
	tr := newTracker(t, livecall.Config{})
	observeAll(tr, callFrame(t, "9.1", ext("1001", ch1, "RING")))
	good, err := tr.Export()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"version":1}`,
		strings.Replace(string(good), `"version":1`, `"version":2`, 1),
		strings.Replace(string(good), testPBX, "other.example.com", 1),
		strings.Replace(string(good), `"phase":"ringing"`, `"phase":"dancing"`, 1),
		strings.Replace(string(good), `"channel_id":"`+ch1+`"`, `"channel_id":""`, 1),
		strings.Replace(string(good), `"seq":1`, `"seq":-1`, 1),
		strings.Replace(string(good), `"version"`, `"extra":1,"version"`, 1),
		strings.Replace(string(good), `"calls":[`, `"calls":[{"call_id":"9.1","members":[]},`, 1),
	} {
		dst := newTracker(t, livecall.Config{})
		observeAll(dst, callFrame(t, "9.9", ext("1002", ch2, "RING")))
		if err := dst.Import([]byte(bad)); err == nil {
			t.Errorf("Import(%.120s) accepted", bad)
		}
		if _, ok := dst.Call("9.9"); !ok {
			t.Errorf("a refused Import(%.60s) changed the state", bad)
		}
	}
	small := newTracker(t, livecall.Config{MaxCalls: 1})
	observeAll(tr, callFrame(t, "9.2", ext("1002", ch2, "RING")))
	state, _ := tr.Export()
	if err := small.Import(state); err != nil || small.Stats().Calls != 1 || small.Stats().Counts[livecall.ReasonCallsFull] != 1 {
		t.Errorf("Import into a smaller tracker = %v, stats %+v", err, small.Stats())
	}
}

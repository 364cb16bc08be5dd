package livecall_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// internalCall drives an internal call 1001 -> 1002 on the simulator: it
// rings, is answered, each side holds and resumes in turn, and 1001 hangs
// up. It returns the call_id once the last event is in.
func internalCall(t *testing.T, srv *pbxtest.Server, r *recorder) string {
	t.Helper()
	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		act  func() error
		want []string
	}{
		{func() error { return nil }, []string{"1001:ringing<#1", "1002:ringing<#1"}},
		{func() error { return srv.AnswerCall(id) }, []string{"1001:answered<ringing#2", "1002:answered<ringing#2"}},
		{func() error { return srv.Hold(channel(t, r, "1001")) }, []string{"1001:held<answered#3"}},
		{func() error { return srv.Unhold(channel(t, r, "1001")) }, []string{"1001:resumed<held#4"}},
		{func() error { return srv.Hold(channel(t, r, "1002")) }, []string{"1002:held<answered#3"}},
		{func() error { return srv.Unhold(channel(t, r, "1002")) }, []string{"1002:resumed<held#4"}},
		{func() error { return srv.Hangup(channel(t, r, "1001")) }, []string{"1001:ended<answered#5", "1002:ended<answered#5"}},
	}
	var want []string
	for _, s := range steps {
		if err := s.act(); err != nil {
			t.Fatal(err)
		}
		want = append(want, s.want...)
		r.awaitEvents(t, "call.", want...)
	}
	r.awaitEvents(t, "cdr.", "pbx:cdr.ended")
	return id
}

// TestInternalCallOverEventSocket: a call on the simulator, through its
// real event socket and the pbx package's stream, gives each extension
// ringing, answered, held, resumed, ended exactly once each, in order,
// with the data a consumer needs.
func TestInternalCallOverEventSocket(t *testing.T) {
	r := &recorder{tr: newTracker(t, livecall.Config{})}
	srv, _ := livePBX(t, r, "1001", "1002")
	id := internalCall(t, srv, r)

	_, events := r.snapshot()
	validate(t, events)
	seen := map[string]bool{}
	for _, ev := range events {
		if seen[ev.ID] {
			t.Errorf("id %s twice", ev.ID)
		}
		seen[ev.ID] = true
		d, ok := ev.Data.(schema.CallEvent)
		if !ok {
			continue
		}
		peer := map[string]string{"1001": "1002", "1002": "1001"}[d.ExtNum]
		switch {
		case ev.Ext != d.ExtNum || ev.Suffix != "call."+d.Event || ev.Subject("pbx") != "pbx."+d.ExtNum+".call."+d.Event:
			t.Errorf("event %+v: subject parts disagree with its data", ev)
		case d.CallID != id || d.Direction != schema.DirectionInternal || d.Trunk != "" || d.PBX != testPBX:
			t.Errorf("%s %s: call %s direction %s trunk %q", d.ExtNum, d.Event, d.CallID, d.Direction, d.Trunk)
		case d.Other == nil || d.Other.Kind != schema.PartyExtension || d.Other.Number != peer:
			t.Errorf("%s %s: other %+v, want extension %s", d.ExtNum, d.Event, d.Other, peer)
		case !strings.HasPrefix(d.ChannelID, "PJSIP/"+d.ExtNum+"-"):
			t.Errorf("%s %s: channel %s", d.ExtNum, d.Event, d.ChannelID)
		case d.Cause != "":
			t.Errorf("%s %s: cause %q on a BYE seen", d.ExtNum, d.Event, d.Cause)
		}
		if d.ExtNum == "1001" && d.Event == schema.CallRinging && d.MemberStatus != "ALERT" ||
			d.ExtNum == "1002" && d.Event == schema.CallAnswered && d.MemberStatus != "ANSWER" ||
			d.Event == schema.CallEnded && d.MemberStatus != "BYE" {
			t.Errorf("%s %s: member status %s, not as the PBX sent it", d.ExtNum, d.Event, d.MemberStatus)
		}
	}
	// 30008 as the simulator sends it, once per change.
	r.awaitEvents(t, "call_status.", "1001:call_status.changed", "1002:call_status.changed",
		"1002:call_status.changed", "1001:call_status.changed", "1002:call_status.changed")
	if st := r.tr.Stats(); st.Calls != 0 || st.Ended != 1 || len(st.Counts) != 0 {
		t.Errorf("stats %+v: want the call forgotten, remembered as ended, nothing dropped", st)
	}
}

// TestReplayedFramesYieldNothing: every frame of a call delivered again,
// to the tracker that saw them, gives nothing; to a fresh tracker, the
// same events with the same ids (the id is the fact, not the moment).
func TestReplayedFramesYieldNothing(t *testing.T) {
	r := &recorder{tr: newTracker(t, livecall.Config{})}
	srv, _ := livePBX(t, r, "1001", "1002")
	internalCall(t, srv, r)
	frames, events := r.snapshot()

	calls := func(evs []livecall.Event) []livecall.Event {
		return slices.DeleteFunc(slices.Clone(evs), func(ev livecall.Event) bool { return !strings.HasPrefix(ev.Suffix, "call.") })
	}
	if again := calls(observeAll(r.tr, frames...)); len(again) != 0 {
		t.Errorf("replay to the same tracker gave %q", describe(again, ""))
	}
	if st := r.tr.Stats(); st.Counts[livecall.ReasonLateFrame] == 0 {
		t.Errorf("stats %+v: no late frame counted", st)
	}
	fresh := newTracker(t, livecall.Config{})
	if got, want := ids(calls(observeAll(fresh, frames...))), ids(calls(events)); !slices.Equal(got, want) {
		t.Errorf("a fresh tracker gave ids\n%q\nthe live one\n%q", got, want)
	}
	// Each frame twice in a row: 30011 repeats, 30008 repeats.
	twice := newTracker(t, livecall.Config{})
	var doubled []*openapi.Event
	for _, f := range frames {
		doubled = append(doubled, f, f)
	}
	out := observeAll(twice, doubled...)
	if got, want := ids(slices.DeleteFunc(out, func(ev livecall.Event) bool { return ev.Suffix == "cdr.ended" })),
		ids(slices.DeleteFunc(slices.Clone(events), func(ev livecall.Event) bool { return ev.Suffix == "cdr.ended" })); !slices.Equal(got, want) {
		t.Errorf("every frame twice gave\n%q\nwant\n%q", got, want)
	}
}

// TestRestoredTrackerContinuesWithTheSameIDs: a tracker that imports the
// state another exported after any frame gives, for the frames after it,
// exactly the events (and ids) the first gave; and one that imports a
// state older than what was published gives those again with the same
// ids, for the stream to drop.
func TestRestoredTrackerContinuesWithTheSameIDs(t *testing.T) {
	r := &recorder{tr: newTracker(t, livecall.Config{})}
	srv, _ := livePBX(t, r, "1001", "1002", "1003")
	internalCall(t, srv, r)
	frames, _ := r.snapshot()
	full := ids(observeAll(newTracker(t, livecall.Config{}), frames...))

	for k := 0; k <= len(frames); k++ {
		a := newTracker(t, livecall.Config{})
		before := ids(observeAll(a, frames[:k]...))
		state, err := a.Export()
		if err != nil {
			t.Fatal(err)
		}
		b := newTracker(t, livecall.Config{})
		if err := b.Import(state); err != nil {
			t.Fatalf("after %d frames: Import: %v\n%s", k, err, state)
		}
		after := ids(observeAll(b, frames[k:]...))
		if got := append(before, after...); !slices.Equal(got, full) {
			t.Fatalf("split after %d frames: ids\n%q\nwant\n%q", k, got, full)
		}
		again, _ := b.Export()
		if k == len(frames) && string(again) != string(state) {
			t.Errorf("import then export changed the state:\n%s\n%s", state, again)
		}
	}
}

// TestUnknownStatusAndMissingFieldsOverTheSocket: a PBX that sends a
// status the reference does not list for talking members, and one that
// leaves a field out of a member: nothing is published for what cannot be
// read, the rest still is, and both are counted.
func TestUnknownStatusAndMissingFieldsOverTheSocket(t *testing.T) {
	r := &recorder{tr: newTracker(t, livecall.Config{})}
	srv, _ := livePBX(t, r, "1001", "1002")
	srv.SetEventQuirks(pbxtest.EventQuirks{UnknownStatus: "TALKING", ExtraFields: true})
	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	r.awaitEvents(t, "call.", "1001:ringing<#1", "1002:ringing<#1")
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	checkFor(t, func() error {
		if n := r.tr.Stats().Counts[livecall.ReasonUnknownStatus]; n != 2 {
			return fmt.Errorf("%d unknown statuses counted, want 2 (one per member)", n)
		}
		return nil
	})
	if err := srv.EndCall(id); err != nil {
		t.Fatal(err)
	}
	r.awaitEvents(t, "call.", "1001:ringing<#1", "1002:ringing<#1", "1001:ended<ringing#2", "1002:ended<ringing#2")

	srv.SetEventQuirks(pbxtest.EventQuirks{DropMemberField: "channel_id"})
	id, err = srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1001:ringing<#1", "1002:ringing<#1", "1001:ended<ringing#2", "1002:ended<ringing#2", "1002:ringing<#1"}
	r.awaitEvents(t, "call.", want...)
	if err := srv.EndCall(id); err != nil {
		t.Fatal(err)
	}
	// 1001's member never had a channel, so 1001 never took part here.
	r.awaitEvents(t, "call.", append(want, "1002:ended<ringing#2")...)
	if n := r.tr.Stats().Counts[livecall.ReasonBadMember]; n != 2 {
		t.Errorf("%d bad members counted, want 2 (one per frame)", n)
	}
	_, events := r.snapshot()
	validate(t, events)
}

// TestPresenceRegistrationSystemOverTheSocket: the other events, from the
// simulator's knobs.
func TestPresenceRegistrationSystemOverTheSocket(t *testing.T) {
	r := &recorder{tr: newTracker(t, livecall.Config{Served: func(ext string) bool { return ext != "1003" }})}
	srv, _ := livePBX(t, r, "1001", "1002", "1003")
	srv.SetPresence("1001", "away")
	srv.SetPresence("1001", "away")
	srv.SetPresence("1003", "lunch")
	srv.SetPresence("1001", "available")
	srv.NotifyRegistration("1001", "Mobile", "Registered", "223.104.45.163")
	srv.NotifyRegistration("1001", "Sip", "Registered", "10.0.0.7")
	srv.NotifyRegistration("1001", "Mobile", "Registered", "223.104.45.163")
	srv.NotifyRegistration("1001", "Mobile", "Unregistered", "")
	srv.NotifySystemEvent(30035, "sip_trunk_disconnect", "telephony", "warn", "Trunk SIP-Trunk1 is unreachable.")
	r.awaitEvents(t, "", "1001:presence.changed", "1001:presence.changed", "1001:registration.changed",
		"1001:registration.changed", "1001:registration.changed", "pbx:system.warning")
	_, events := r.snapshot()
	validate(t, events)
	p := events[1].Data.(schema.PresenceChanged)
	reg := events[4].Data.(schema.RegistrationChanged)
	sys := events[5].Data.(schema.SystemEvent)
	if p.Status != "available" || p.Previous != "away" || p.Seq != 2 ||
		reg.Kind != "Mobile" || reg.Status != "Unregistered" || reg.Previous != "Registered" || reg.Seq != 2 ||
		sys.Level != schema.SystemLevelWarning || sys.EventLevel != "warn" || events[5].Subject("pbx") != "pbx.pbx.system.warning" {
		t.Errorf("events %+v", events)
	}
	if st := r.tr.Stats(); st.Counts[livecall.ReasonNotServed] != 1 || st.Extensions != 2 {
		t.Errorf("stats %+v: want 1003's presence kept but not published", st)
	}
}

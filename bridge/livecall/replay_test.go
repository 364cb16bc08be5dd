package livecall_test

import (
	"slices"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// replayAll replays every call event of evs into tr.
func replayAll(tr *livecall.Tracker, evs []livecall.Event, at time.Time) {
	for _, ev := range evs {
		if d, ok := ev.Data.(schema.CallEvent); ok {
			tr.Replay(d, at)
		}
	}
}

// TestReplayContinuesFromThePublished: a holder saved its state after a
// call rang, published the answer, and died. Its successor imports the
// state, replays the events published after it, and reconciles with the
// PBX's live calls: 1001 put the call on hold meanwhile, and the held
// event is the one the first holder would have published (held#3, the
// same id), not a second event numbered 2. A call that started after the
// save and ended while no one watched ends with the next seq.
func TestReplayContinuesFromThePublished(t *testing.T) {
	clock := newClock()
	first := newTracker(t, livecall.Config{Now: clock.Now})
	observeAll(first, callFrame(t, "9.1", ext("1001", ch1, "ALERT"), ext("1002", ch2, "RING")))
	saved, err := first.Export()
	if err != nil {
		t.Fatal(err)
	}
	published := observeAll(first,
		callFrame(t, "9.1", ext("1001", ch1, "ANSWERED"), ext("1002", ch2, "ANSWER")),
		callFrame(t, "9.2", ext("1003", ch3, "RING")),
		callFrame(t, "9.2", ext("1003", ch3, "ANSWER")))
	clock.Add(time.Second)
	wantHeld := observeAll(first, callFrame(t, "9.1", ext("1001", ch1, "HOLD"), ext("1002", ch2, "ANSWER")))

	for _, replay := range []bool{true, false} {
		next := newTracker(t, livecall.Config{Now: clock.Now})
		if err := next.Import(saved); err != nil {
			t.Fatal(err)
		}
		if replay {
			replayAll(next, published, clock.Now().Add(-time.Second))
		}
		asOf := clock.Now()
		live := []openapi.CallState{{CallID: "9.1", Members: []openapi.CallMember{
			{Kind: openapi.MemberExtension, Number: "1001", ChannelID: ch1, Status: openapi.StatusHold},
			{Kind: openapi.MemberExtension, Number: "1002", ChannelID: ch2, Status: openapi.StatusAnswer}}}}
		got := next.Reconcile(live, asOf)
		if !replay {
			if slices.Equal(ids(got), ids(wantHeld)) {
				t.Error("without the replay the successor still derived the first holder's events: the test proves nothing")
			}
			continue
		}
		want := append(ids(wantHeld), ids(endedByGap(t))...)
		if g := describeCalls(got); !slices.Equal(ids(got), want) {
			t.Errorf("after the replay Reconcile gave %q (ids %q), want ids %q", g, ids(got), want)
		}
	}
}

// endedByGap is what a tracker that saw 9.2 ring and answer gives when it
// ends in a gap: 1003's ended event, at seq 3.
func endedByGap(t *testing.T) []livecall.Event {
	t.Helper()
	tr := newTracker(t, livecall.Config{})
	observeAll(tr, callFrame(t, "9.2", ext("1003", ch3, "RING")), callFrame(t, "9.2", ext("1003", ch3, "ANSWER")))
	return tr.Reconcile(nil, time.Now().Add(time.Hour))
}

// TestReplayIgnoresWhatItKnows: an event no newer than the tracker's
// state, one of another PBX and one without a call changes nothing.
func TestReplayIgnoresWhatItKnows(t *testing.T) {
	tr := newTracker(t, livecall.Config{})
	evs := observeAll(tr,
		callFrame(t, "9.3", ext("1001", ch1, "RING")),
		callFrame(t, "9.3", ext("1001", ch1, "ANSWER")))
	d := evs[0].Data.(schema.CallEvent) // ringing#1
	if tr.Replay(d, time.Now()) {
		t.Error("an older event moved the tracker")
	}
	other := evs[1].Data.(schema.CallEvent)
	other.PBX, other.Seq = "elsewhere:443", 9
	if tr.Replay(other, time.Now()) {
		t.Error("another PBX's event moved the tracker")
	}
	none := evs[1].Data.(schema.CallEvent)
	none.CallID, none.Seq = "", 9
	if tr.Replay(none, time.Now()) {
		t.Error("an event without a call moved the tracker")
	}
	if n := tr.Stats().Counts[livecall.ReasonBadEvent]; n != 2 {
		t.Errorf("%d bad events counted, want 2", n)
	}
}

package openapi_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// Hostile frames are counted and dropped, each for its reason; nothing
// wedges: a good call still comes through afterwards, on the same socket.
func TestEventStreamHostileFramesCountedAndDropped(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.AddExtension(pbxtest.Extension{Number: "1002"})
	var r eventRecorder
	_, s := newStream(t, srv, &r, streamConfig(&r, liveTopics...))

	const n = 2000
	srv.FloodEvents(n, "garbage \x00\xff")
	srv.SendEventRaw(`{"type":"30011","sn":"X","msg":{}}`)
	srv.SendEventRaw(`{"type":30011,"sn":42,"msg":{}}`)
	srv.SendEventRaw(`{"type":30011,"sn":"X","msg":"{not json"}`)
	srv.SendEventRaw(`{"type":30011,"sn":"X","msg":[1]}`)
	srv.SendEventRaw(`{"type":30012,"sn":"X","msg":{"call_id":"1.1","call_duration":"24"}}`)
	srv.SendEventRaw(`{"errcode":40002,"errmsg":"PARAMETER ERROR"}`)
	want := map[pbx.DropReason]uint64{pbx.DropNotJSON: n, openapi.DropBadEnvelope: 2, pbx.DropBadMsg: 2, openapi.DropBadEvent: 1}
	checkFor(t, func() error {
		got := s.Stats().Dropped
		for reason, w := range want {
			if got[reason] != w || uint64(r.dropped(reason)) != w {
				return fmt.Errorf("dropped %v (OnDrop %d for %s), want %v", got, r.dropped(reason), reason, want)
			}
		}
		return nil
	})

	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING")
	if st := s.Stats(); st.Connects != 1 {
		t.Errorf("stats %+v: the garbage cost the socket", st)
	}
}

// Firmware differences the decoder must take: msg as string or object in
// turn, unknown fields, an unknown status kept raw, a member without a
// required field dropped alone, an sn that is no sequence, a pin_code.
func TestEventStreamFirmwareQuirks(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.AddExtension(pbxtest.Extension{Number: "1002"})
	var r eventRecorder
	_, s := newStream(t, srv, &r, streamConfig(&r, liveTopics...))
	srv.SetEventQuirks(pbxtest.EventQuirks{MsgStyle: pbxtest.MsgAlternating, ExtraFields: true, VaryingSN: true,
		UnknownStatus: "TALKING", PinCode: "8812"})

	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING", "1001:TALKING 1002:TALKING")
	if st := r.lastCall(id).Members[0].Status; st.Known() {
		t.Errorf("status %q reported as known", st)
	}

	srv.SetEventQuirks(pbxtest.EventQuirks{MsgStyle: pbxtest.MsgAsObject, DropMemberField: "channel_id", PinCode: "8812"})
	if err := srv.EndCall(id); err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING", "1001:TALKING 1002:TALKING", "1002:BYE")
	if errs := r.lastCall(id).MemberErrors; len(errs) != 1 || errs[0].Index != 0 || !strings.Contains(errs[0].Error(), "channel_id") {
		t.Errorf("member errors %v, want member 0 without channel_id", errs)
	}
	checkFor(t, func() error {
		events, _ := r.snapshot()
		sns := map[string]bool{}
		for _, ev := range events {
			sns[ev.SN] = true
			if strings.Contains(string(ev.Msg), "8812") || strings.Contains(string(ev.Msg), "pin_code") {
				return fmt.Errorf("event %d keeps the pin: %s", ev.Type, ev.Msg)
			}
		}
		if cdr := lastCDR(events); cdr == nil || cdr.CallID != id {
			return errors.New("no 30012 yet")
		}
		if len(sns) < 3 {
			return fmt.Errorf("sns %v: the varying sn did not vary, or events were dropped by it", sns)
		}
		return nil
	})
	if st := s.Stats(); st.Dropped[openapi.DropBadMember] != 1 || len(st.Dropped) != 1 {
		t.Errorf("dropped %v, want one bad member and nothing else", st.Dropped)
	}
}

func lastCDR(events []*openapi.Event) *openapi.NewCDR {
	for i := len(events) - 1; i >= 0; i-- {
		if d, ok := events[i].Data.(*openapi.NewCDR); ok {
			return d
		}
	}
	return nil
}

// A flood while the consumer is stuck costs at most Buffer events of
// memory: the rest are dropped, counted, and reported once it catches up.
func TestEventStreamFloodIsBounded(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	var r eventRecorder
	r.gate = make(chan struct{})
	cfg := streamConfig(&r, openapi.EventPresence)
	cfg.Buffer = 16
	o := newOpenAPI(t, realClockConfig(t, srv))
	s, err := o.NewEventStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runStream(t, s)
	// Registered after runStream's, so it runs first: a failing check must
	// not leave Run waiting behind the stuck consumer.
	gateOpen := false
	t.Cleanup(func() {
		if !gateOpen {
			close(r.gate)
		}
	})
	checkFor(t, func() error {
		if srv.EventSockets() != 1 || len(srv.EventTopicLists()) != 1 {
			return errors.New("not subscribed yet")
		}
		return nil
	})
	// 1,000 frames against a buffer of 16: the bound is what is tested.
	// (A CI run under load once saw the read stop after 1,258 of 5,000:
	// the cause is not known; see the closing note of 2026-12-07.)
	const n = 1000
	srv.FloodEvents(n, `{"type":30009,"sn":"X","msg":"{\"extension\":\"1001\",\"status\":\"away\"}"}`)
	checkFor(t, func() error {
		if st := s.Stats(); st.Frames < n {
			return fmt.Errorf("read %d of %d frames", st.Frames, n)
		}
		return nil
	})
	overflow := s.Stats().Dropped[pbx.DropOverflow]
	close(r.gate) // the consumer catches up
	gateOpen = true
	srv.SetPresence("1001", "lunch")
	checkFor(t, func() error {
		events, _ := r.snapshot()
		if len(events) == 0 || events[len(events)-1].Data.(*openapi.PresenceChange).Status != "lunch" {
			return fmt.Errorf("%d events, the last one not yet the one after the flood", len(events))
		}
		return nil
	})
	events, _ := r.snapshot()
	// The up state and at most Buffer events waited; one more was in
	// OnEvent.
	if delivered := len(events) - 1; delivered > cfg.Buffer+1 || delivered < 1 {
		t.Errorf("%d flood events delivered, want 1..%d", delivered, cfg.Buffer+1)
	}
	r.mu.Lock()
	lost := r.lost
	r.mu.Unlock()
	if overflow == 0 || uint64(lost) != overflow || uint64(len(events)-1)+overflow != n {
		t.Errorf("overflow %d, OnLost %d, delivered %d: want every flood event delivered or counted lost", overflow, lost, len(events)-1)
	}
}

// A frame over MaxFrameBytes closes the socket (counted); Run reconnects.
func TestEventStreamTooLargeFrame(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	var r eventRecorder
	cfg := streamConfig(&r, openapi.EventPresence)
	cfg.MaxFrameBytes = 4096
	_, s := newStream(t, srv, &r, cfg)
	srv.SendEventRaw(`{"type":30009,"sn":"X","msg":"` + strings.Repeat("x", 10000) + `"}`)
	checkFor(t, func() error {
		if st := s.Stats(); st.Dropped[pbx.DropTooLarge] != 1 || st.Connects != 2 {
			return fmt.Errorf("stats %+v, want one too_large and a reconnect", st)
		}
		return nil
	})
	srv.SetPresence("1001", "away")
	checkFor(t, func() error {
		if events, _ := r.snapshot(); len(events) != 1 {
			return fmt.Errorf("%d events, want the one after the reconnect", len(events))
		}
		return nil
	})
}

func TestNewEventStreamValidates(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	o := newOpenAPI(t, realClockConfig(t, srv))
	on := func(*openapi.Event) {}
	for _, cfg := range []openapi.EventStreamConfig{
		{OnEvent: on},
		{Topics: []openapi.EventType{30011}},
		{Topics: []openapi.EventType{30011, 30011}, OnEvent: on},
		{Topics: []openapi.EventType{-1}, OnEvent: on},
		{Topics: []openapi.EventType{30011}, OnEvent: on, HeartbeatEvery: -1},
		{Topics: []openapi.EventType{30011}, OnEvent: on, Buffer: -1},
	} {
		if _, err := o.NewEventStream(cfg); !errors.Is(err, pbx.ErrInvalidConfig) {
			t.Errorf("NewEventStream(%+v) = %v, want pbx.ErrInvalidConfig", cfg, err)
		}
	}
}

// The simulator's other events reach the client decoded, 30035's msg an
// object as in the reference's example.
func TestEventStreamOtherEvents(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	var r eventRecorder
	newStream(t, srv, &r, streamConfig(&r, openapi.EventRegistration, openapi.EventPresence, openapi.EventSystemWarning))
	srv.NotifyRegistration("1001", "Sip", "Registered", "192.0.2.7")
	srv.SetPresence("1001", "do_not_disturb")
	srv.NotifySystemEvent(30035, "sip_trunk_disconnect", "telephony", "warn", "Trunk SIM-TRUNK unreachable")
	srv.NotifySystemEvent(30034, "not subscribed", "system", "info", "")
	checkFor(t, func() error {
		events, _ := r.snapshot()
		var got []string
		for _, ev := range events {
			got = append(got, fmt.Sprintf("%d %+v", ev.Type, ev.Data))
		}
		want := []string{
			"30007 &{Extension:1001 Kind:Sip Status:Registered RegisteredIP:192.0.2.7}",
			"30009 &{Extension:1001 Status:do_not_disturb}",
		}
		if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || !strings.HasPrefix(got[2], "30035 &{EventName:sip_trunk_disconnect EventType:telephony EventLevel:warn") {
			return fmt.Errorf("events %q", got)
		}
		return nil
	})
}

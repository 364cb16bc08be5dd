package pbxtest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// A call load sends each call's three 30011 frames in order (ringing,
// answered, ended, each with the whole member list), and times each.
func TestCallLoadFramesAndTimes(t *testing.T) {
	p := start(t, pbxtest.Options{})
	exts := []string{"1001", "1002", "1003", "1004", "1005", "1006"}
	for _, e := range exts {
		p.AddExtension(pbxtest.Extension{Number: e})
	}
	s := p.events(30011)
	type outcome struct {
		res pbxtest.CallLoadResult
		err error
	}
	done := make(chan outcome, 1)
	before := time.Now().UnixNano()
	go func() {
		res, err := p.RunCallLoad(context.Background(), pbxtest.CallLoad{Exts: exts, Rate: 100, Duration: 45 * time.Millisecond,
			Ring: 5 * time.Millisecond, Talk: 5 * time.Millisecond})
		done <- outcome{res, err}
	}()
	// Frames as the socket got them: call_id -> the member statuses of
	// each of its frames.
	got := map[string][][]string{}
	for range 4 * 3 {
		typ, msg := s.event(true)
		if typ != 30011 {
			t.Fatalf("frame of type %d, want only 30011", typ)
		}
		var statuses []string
		for _, m := range msg["members"].([]any) {
			for _, inner := range m.(map[string]any) {
				statuses = append(statuses, inner.(map[string]any)["member_status"].(string))
			}
		}
		id := msg["call_id"].(string)
		got[id] = append(got[id], statuses)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if len(o.res.Calls) != 4 || o.res.Frames != 12 {
		t.Fatalf("%d calls, %d frames; want 4 and 12", len(o.res.Calls), o.res.Frames)
	}
	want := [][]string{{"ALERT", "RING"}, {"ANSWERED", "ANSWER"}, {"BYE", "BYE"}}
	for i, c := range o.res.Calls {
		if !slices.EqualFunc(got[c.ID], want, slices.Equal) {
			t.Errorf("call %d (%s): frames %v, want %v", i, c.ID, got[c.ID], want)
		}
		if wantExts := 2 - i%2; len(c.Exts) != wantExts {
			t.Errorf("call %d: extensions %v, want %d (internal, then inbound)", i, c.Exts, wantExts)
		}
		if !(before < c.Sent[0] && c.Sent[0] <= c.Sent[1] && c.Sent[1] <= c.Sent[2]) {
			t.Errorf("call %d: send times %v not in order after %d", i, c.Sent, before)
		}
	}
	// The extensions were taken in turn: 1001+1002, 1003, 1004+1005, 1006.
	if o.res.Calls[2].Exts[0] != "1004" || o.res.Calls[3].Exts[0] != "1006" {
		t.Errorf("extensions not taken in turn: %v %v", o.res.Calls[2].Exts, o.res.Calls[3].Exts)
	}
	if live := p.LiveCalls(); len(live) != 0 {
		t.Errorf("%d calls still live after the load", len(live))
	}
}

func TestCallLoadRefusesBadLoads(t *testing.T) {
	p := start(t, pbxtest.Options{})
	p.AddExtension(pbxtest.Extension{Number: "1001"})
	p.AddExtension(pbxtest.Extension{Number: "1002"})
	ok := pbxtest.CallLoad{Exts: []string{"1001", "1002"}, Rate: 10, Duration: time.Millisecond}
	for name, l := range map[string]pbxtest.CallLoad{
		"no rate":           {Exts: ok.Exts, Duration: ok.Duration},
		"one extension":     {Exts: ok.Exts[:1], Rate: 10, Duration: ok.Duration},
		"unknown extension": {Exts: []string{"1001", "9999"}, Rate: 10, Duration: ok.Duration},
		"negative ring":     {Exts: ok.Exts, Rate: 10, Duration: ok.Duration, Ring: -1},
	} {
		if _, err := p.RunCallLoad(context.Background(), l); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Without a socket the calls are made all the same, and no frame is
	// timed.
	res, err := p.RunCallLoad(context.Background(), ok)
	if err != nil || len(res.Calls) != 1 || res.Frames != 0 || res.Calls[0].Sent != [3]int64{} {
		t.Errorf("without a socket: %+v, %v; want one call, no frame", res, err)
	}
}

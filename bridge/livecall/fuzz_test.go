package livecall_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// FuzzTracker feeds arbitrary frames, one a line, through the event
// socket's decoder to a tracker with small bounds. Whatever they hold:
// no panic, the bounds hold, every event published is valid against its
// schema, and the exported state imports into a fresh tracker that
// exports it the same.
//
//	go test -run '^$' -fuzz FuzzTracker -fuzztime 30s ./bridge/livecall/
func FuzzTracker(f *testing.F) {
	for _, seed := range []string{
		`{"type":30011,"sn":"x","msg":"{\"call_id\":\"1.1\",\"members\":[{\"extension\":{\"number\":\"1001\",\"channel_id\":\"PJSIP/1001-1\",\"member_status\":\"ALERT\"}},{\"extension\":{\"number\":\"1002\",\"channel_id\":\"PJSIP/1002-2\",\"member_status\":\"RING\"}}]}"}` + "\n" +
			`{"type":30011,"sn":"x","msg":{"call_id":"1.1","members":[{"extension":{"number":"1001","channel_id":"PJSIP/1001-1","member_status":"ANSWERED"}},{"extension":{"number":"1002","channel_id":"PJSIP/1002-2","member_status":"HOLD"}}]}}` + "\n" +
			`{"type":30011,"sn":"x","msg":{"call_id":"1.1","members":[{"extension":{"number":"1001","channel_id":"PJSIP/1001-1","member_status":"BYE"}},{"inbound":{"from":"555","channel_id":"PJSIP/t-3","member_status":"BYE"}}]}}`,
		`{"type":30012,"sn":"x","msg":{"call_id":"1.1","call_duration":-3,"type":"Inbound"}}` + "\n" +
			`{"type":30011,"sn":"x","msg":{"call_id":"1.1","members":[{"extension":{"number":"1001","channel_id":"c","member_status":"RING"}}]}}`,
		`{"type":30009,"sn":"x","msg":{"extension":"1001","status":"away"}}` + "\n" +
			`{"type":30007,"sn":"x","msg":{"extension":"1001","kind":"Sip","status":"Registered"}}` + "\n" +
			`{"type":30008,"sn":"x","msg":{"extension":"1001","status":"Busy"}}` + "\n" +
			`{"type":30035,"sn":"x","msg":{"event_name":"n","event_level":"warn"}}`,
		`{"type":30015,"sn":"x","msg":{"call_id":"2","reason":"DND","members":[{"outbound":{"to":"9","channel_id":"o","member_status":"EARLYMEDIA"}}]}}`,
		`{"type":30011,"sn":"x","msg":{"call_id":"3","members":[{"extension":{"number":"a.b","channel_id":"c","member_status":"??"}}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		clock := newClock()
		cfg := livecall.Config{MaxCalls: 4, MaxExtensions: 4, CallTTL: time.Minute, EndedTTL: time.Minute, Now: clock.Now}
		tr := newTracker(t, cfg)
		for _, line := range bytes.Split(data, []byte("\n")) {
			fr, err := openapi.DecodeEventFrame(line)
			if err != nil || fr.Event == nil {
				continue
			}
			clock.Add(7 * time.Second)
			validate(t, tr.Observe(fr.Event))
			if st := tr.Stats(); st.Calls > cfg.MaxCalls || st.Extensions > cfg.MaxExtensions || st.Ended > cfg.MaxCalls ||
				st.Channels > livecall.ChannelsPerCall*cfg.MaxCalls || st.Channels < st.Calls {
				t.Fatalf("bounds broken: %+v", st)
			}
		}
		state, err := tr.Export()
		if err != nil {
			t.Fatal(err)
		}
		again := newTracker(t, cfg)
		if err := again.Import(state); err != nil {
			t.Fatalf("Import of an exported state: %v\n%s", err, state)
		}
		if a, b := tr.Stats(), again.Stats(); a.Channels != b.Channels || a.Calls != b.Calls {
			t.Fatalf("imported %+v, exported %+v", b, a)
		}
		if back, _ := again.Export(); !bytes.Equal(back, state) {
			t.Fatalf("export, import, export changed the state:\n%s\n%s", state, back)
		}
	})
}

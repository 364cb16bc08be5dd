package livecall_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// BenchmarkObserveCall runs whole two-party calls (ring, answer, hold,
// resume, hang up, CDR) through a tracker holding 1,000 other live calls,
// and reports the cost per frame. The frames are built decoded (the
// decoder's cost is pbx's), each call with its own id, as a PBX sends
// them.
//
//	go test -run '^$' -bench BenchmarkObserveCall -benchtime 2s ./bridge/livecall/
func BenchmarkObserveCall(b *testing.B) {
	tr := newTracker(b, livecall.Config{})
	for i := range 1000 {
		tr.Observe(callFrame(b, fmt.Sprintf("bg.%d", i), ext(fmt.Sprint(2000+i), fmt.Sprintf("PJSIP/%d-1", 2000+i), "RING")))
	}
	member := func(number, channel string, st openapi.MemberStatus) openapi.CallMember {
		return openapi.CallMember{Kind: openapi.MemberExtension, Number: number, ChannelID: channel, Status: st}
	}
	steps := [][2]openapi.MemberStatus{{"ALERT", "RING"}, {"ANSWERED", "ANSWER"}, {"ANSWERED", "HOLD"}, {"ANSWERED", "ANSWER"}, {"BYE", "BYE"}}
	b.ReportAllocs()
	b.ResetTimer()
	n, events := 0, 0
	for i := 0; i < b.N; i++ {
		id := "b." + strconv.Itoa(i)
		for _, st := range steps {
			events += len(tr.Observe(&openapi.Event{Type: openapi.EventCallState, Data: &openapi.CallState{CallID: id,
				Members: []openapi.CallMember{member("1001", ch1, st[0]), member("1002", ch2, st[1])}}}))
		}
		events += len(tr.Observe(&openapi.Event{Type: openapi.EventNewCDR, Data: &openapi.NewCDR{CallID: id, Status: "ANSWERED", Type: "Internal"}}))
		n += len(steps) + 1
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
	b.ReportMetric(float64(events)/float64(b.N), "events/call")
	if events != 9*b.N {
		b.Fatalf("%d events for %d calls, want 9 a call (8 call events and the CDR)", events, b.N)
	}
}

// TestStateSize measures what Export writes per live call and per
// extension, the figures docs/live-calls.md gives for sizing the KV value.
func TestStateSize(t *testing.T) {
	empty, _ := newTracker(t, livecall.Config{}).Export()
	tr := newTracker(t, livecall.Config{})
	const calls = 1000
	for i := range calls {
		id := fmt.Sprintf("1772442000.%d", 1000+i)
		a, b := fmt.Sprint(1000+i), fmt.Sprint(3000+i)
		tr.Observe(callFrame(t, id, ext(a, fmt.Sprintf("PJSIP/%s-%08x", a, 2*i), "ANSWERED"), ext(b, fmt.Sprintf("PJSIP/%s-%08x", b, 2*i+1), "ANSWER")))
	}
	withCalls, _ := tr.Export()
	for i := range calls {
		x := fmt.Sprint(1000 + i)
		tr.Observe(frame(t, 30009, map[string]any{"extension": x, "status": "available"}))
		tr.Observe(frame(t, 30008, map[string]any{"extension": x, "status": "Busy"}))
		tr.Observe(frame(t, 30007, map[string]any{"extension": x, "kind": "Sip", "status": "Registered", "registered_ip": "10.0.0.7"}))
	}
	withExts, _ := tr.Export()
	perCall := float64(len(withCalls)-len(empty)) / calls
	perExt := float64(len(withExts)-len(withCalls)) / calls
	t.Logf("state: %.0f bytes per two-party call, %.0f per extension with presence, call status and one registration", perCall, perExt)
	if perCall > 450 || perExt > 200 {
		t.Errorf("state grew: %.0f bytes per call, %.0f per extension (docs/live-calls.md says about 390 and 175)", perCall, perExt)
	}
}

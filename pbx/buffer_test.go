package pbx_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestDefaultEventBufferLimit: the buffer grows as events wait, but never
// beyond the default EventBuffer (256): a consumer that takes nothing gets
// exactly the first 256 notifications, in order, then the count of those
// dropped (each counted as "overflow") before the next one.
func TestDefaultEventBufferLimit(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.DeliverTimeout = 20 * time.Millisecond
	var drops recorder
	cfg.Hooks.FrameDropped = func(reason string) { drops.Add(reason) }
	s := open(t, srv, cfg)

	const sent = 300
	const lost = sent - pbx.DefaultEventBuffer
	for i := range sent {
		srv.Notify("1001", pbx.TypeRecordFeatureCode, map[string]string{"record_feature_code": fmt.Sprint(i)})
	}
	eventually(t, "the drops", func() bool { return drops.Count("overflow") >= lost })
	for i := range pbx.DefaultEventBuffer {
		ev, _ := nextEvent(t, s)
		if n, ok := ev.(*pbx.Notice); !ok || !jsonEqual(t, n.Msg, []byte(fmt.Sprintf(`{"record_feature_code":"%d"}`, i))) {
			t.Fatalf("buffered event %d = %s", i, describe(ev))
		}
	}
	if ev, open := s.Next(); ev != nil || !open {
		t.Fatalf("after %d events: %s, %v; want none waiting", pbx.DefaultEventBuffer, describe(ev), open)
	}
	srv.Notify("1001", pbx.TypeRecordFeatureCode, map[string]string{"record_feature_code": "after"})
	ev, _ := nextEvent(t, s)
	if o, ok := ev.(*pbx.Overflow); !ok || o.Dropped != lost {
		t.Fatalf("event after the gap = %s, want Overflow{Dropped: %d}", describe(ev), lost)
	}
	ev, _ = nextEvent(t, s)
	if n, ok := ev.(*pbx.Notice); !ok || !jsonEqual(t, n.Msg, []byte(`{"record_feature_code":"after"}`)) {
		t.Fatalf("event after the overflow = %s, want the newest notice", describe(ev))
	}
	if got := drops.Count("overflow"); got != lost {
		t.Errorf("%d overflow drops counted, want %d", got, lost)
	}
}

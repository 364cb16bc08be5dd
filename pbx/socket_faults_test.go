package pbx_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestMalformedFramesDropped(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	var drops recorder
	cfg.Hooks.FrameDropped = func(reason string) { drops.Add(reason) }
	s := open(t, srv, cfg)

	frames := []struct{ frame, reason string }{
		{"this is not JSON", "not_json"},
		{`{"type":20049,"msg":"{}","errcode":-2}`, "errcode_-2"},
		{`{"type":20049,"msg":{"ext_num":"1001"}}`, "bad_msg"},
		{`{"type":20008,"msg":"{\"record_feature_code\":"}`, "bad_msg"},
		{`{"type":30000,"msg":"{}"}`, "unknown_type"},
		{`{"type":20010,"msg":"{}`, "not_json"}, // a truncated 20010 must not end the session
	}
	var want []string
	for _, f := range frames {
		srv.SendRaw("1001", f.frame)
		want = append(want, f.reason)
	}
	sentinel(t, srv, s, "*6")
	if got := drops.List(); !slices.Equal(got, want) {
		t.Errorf("dropped %v, want %v", got, want)
	}
	if s.Err() != nil || len(srv.TopicLists("1001")) != 1 {
		t.Errorf("session err %v, %d topic lists: malformed frames must only be dropped", s.Err(), len(srv.TopicLists("1001")))
	}
}

func TestFrameTooLarge(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.MaxFrameBytes = 1024
	var drops recorder
	cfg.Hooks.FrameDropped = func(reason string) { drops.Add(reason) }
	s := open(t, srv, cfg)

	srv.Notify("1001", pbx.TypeRecordStatus, map[string]string{"padding": strings.Repeat("x", 4096)})
	down := awaitEvent(t, s, func(*pbx.SocketState) bool { return true })
	if down.Up {
		t.Fatalf("state = %+v, want down", down)
	}
	if up := awaitEvent(t, s, func(*pbx.SocketState) bool { return true }); !up.Up || !up.Reconnect {
		t.Fatalf("state = %+v, want up, a reconnect", up)
	}
	subscribed(t, srv, "1001", 2)
	if got := drops.List(); !slices.Equal(got, []string{"too_large"}) {
		t.Errorf("dropped %v, want [too_large]", got)
	}
	sentinel(t, srv, s, "*7")
}

// TestSlowConsumer: with a consumer that does not read, the reader drops
// (one DeliverTimeout, then at once), keeps reading, and heartbeats keep
// being answered; the next event that gets through is preceded by the
// count of what was lost.
func TestSlowConsumer(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.EventBuffer = 2
	cfg.DeliverTimeout = 20 * time.Millisecond
	cfg.PingAfter = 20 * time.Millisecond
	var drops recorder
	cfg.Hooks.FrameDropped = func(reason string) { drops.Add(reason) }
	s := open(t, srv, cfg)

	const sent = 30
	for i := range sent {
		srv.Notify("1001", pbx.TypeRecordFeatureCode, map[string]string{"record_feature_code": fmt.Sprint(i)})
	}
	const lost = sent - 2 // two fit in the buffer
	eventually(t, "the drops", func() bool { return drops.Count("overflow") >= lost })
	// The reader is not wedged: heartbeats go on being answered and read
	// while nobody consumes, with no reconnect.
	hb := srv.Heartbeats("1001")
	eventually(t, "heartbeats while the consumer sleeps", func() bool { return srv.Heartbeats("1001") >= hb+3 })
	if n := len(srv.TopicLists("1001")); n != 1 {
		t.Fatalf("%d topic lists: the socket was reconnected", n)
	}

	for i := range 2 {
		ev, _ := nextEvent(t, s)
		if n, ok := ev.(*pbx.Notice); !ok || !jsonEqual(t, n.Msg, []byte(fmt.Sprintf(`{"record_feature_code":"%d"}`, i))) {
			t.Fatalf("buffered event %d = %s", i, describe(ev))
		}
	}
	srv.Notify("1001", pbx.TypeRecordFeatureCode, map[string]string{"record_feature_code": "after"})
	ev, _ := nextEvent(t, s)
	over, ok := ev.(*pbx.Overflow)
	if !ok || over.Dropped != lost {
		t.Fatalf("event after the gap = %s, want Overflow{Dropped: %d}", describe(ev), lost)
	}
	ev, _ = nextEvent(t, s)
	if n, ok := ev.(*pbx.Notice); !ok || !jsonEqual(t, n.Msg, []byte(`{"record_feature_code":"after"}`)) {
		t.Fatalf("event after the overflow = %s, want the newest notice", describe(ev))
	}
	if got := drops.Count("overflow"); got != lost {
		t.Errorf("%d overflow drops counted, want %d", got, lost)
	}
	if s.Err() != nil {
		t.Fatalf("session ended: %v", s.Err())
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))
	probes := srv.Requests("/api/v1.0/extension/getpersonal")
	srv.RevokeTokens("1001")
	_, err := awaitEnd(t, s)
	if !errors.Is(err, pbx.ErrTokenRejected) {
		t.Fatalf("Err = %v, want ErrTokenRejected", err)
	}
	if !strings.Contains(err.Error(), "10004") {
		t.Errorf("Err %q does not give the PBX's errcode", err)
	}
	if srv.Requests("/api/v1.0/extension/getpersonal") <= probes {
		t.Error("no token probe")
	}
	if srv.Logins("1001") != 1 {
		t.Errorf("logins = %d: the session must leave the new login to its owner", srv.Logins("1001"))
	}
}

// TestRefusedUpgradesKeepReconnecting: a PBX that refuses sockets (HTTP 503)
// while its API accepts the token is waited out, with backoff, never in a
// tight loop.
func TestRefusedUpgradesKeepReconnecting(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	var reconnects recorder
	cfg.Hooks.Reconnect = func() { reconnects.Add("reconnect") }
	s := open(t, srv, cfg)
	probes := srv.Requests("/api/v1.0/extension/getpersonal")

	srv.CloseUpgrades(true)
	srv.DropSockets("1001")
	eventually(t, "five reconnect attempts", func() bool { return reconnects.Count("reconnect") >= 5 })
	if srv.Requests("/api/v1.0/extension/getpersonal") <= probes {
		t.Error("repeated failures did not probe the token")
	}
	if s.Err() != nil {
		t.Fatalf("session ended: %v", s.Err())
	}
	stamps := reconnects.Stamps()
	for i := 1; i < len(stamps); i++ {
		// The delay is at least ReconnectMin less the jitter (25%).
		if gap := stamps[i].Sub(stamps[i-1]); gap < cfg.ReconnectMin*3/4 {
			t.Errorf("reconnect %d came %v after the previous one, below the backoff", i, gap)
		}
	}
	srv.CloseUpgrades(false)
	up := awaitEvent(t, s, func(st *pbx.SocketState) bool { return st.Up })
	if !up.Reconnect {
		t.Errorf("state = %+v, want a reconnect", up)
	}
	subscribed(t, srv, "1001", 2)
	sentinel(t, srv, s, "*8")
}

// TestSocketStateNeverDropped: a consumer stuck long enough to lose
// notifications still learns that the socket went down and came back up,
// after the overflow marker.
func TestSocketStateNeverDropped(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.EventBuffer = 1
	cfg.DeliverTimeout = 10 * time.Millisecond
	var drops recorder
	cfg.Hooks.FrameDropped = func(reason string) { drops.Add(reason) }
	s := open(t, srv, cfg)
	lists := len(srv.TopicLists("1001"))
	for i := range 5 {
		srv.Notify("1001", pbx.TypeRecordFeatureCode, map[string]string{"record_feature_code": fmt.Sprint(i)})
	}
	eventually(t, "drops", func() bool { return drops.Count("overflow") >= 4 })
	before := drops.Count("overflow")
	srv.DropSockets("1001")
	// Nobody consumes yet. A reader that dropped state changes would now
	// drop "down", reconnect and drop "up" within a few DeliverTimeouts;
	// give it ample time to do so before consuming. (A correct reader waits
	// on "down" meanwhile, so this is a bounded wait for a non-event.)
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) && drops.Count("overflow") == before && len(srv.TopicLists("1001")) == lists {
		time.Sleep(5 * time.Millisecond)
	}
	var got []string
	for len(got) == 0 || got[len(got)-1] != "up-reconnect" {
		ev, ok := nextEvent(t, s)
		if !ok {
			t.Fatalf("events closed: %v", s.Err())
		}
		switch e := ev.(type) {
		case *pbx.Overflow:
			got = append(got, "overflow")
		case *pbx.SocketState:
			switch {
			case !e.Up:
				got = append(got, "down")
			case e.Reconnect:
				got = append(got, "up-reconnect")
			default:
				got = append(got, "up")
			}
		}
	}
	if want := []string{"overflow", "down", "up-reconnect"}; !slices.Equal(got, want) {
		t.Fatalf("state events %v, want %v", got, want)
	}
	subscribed(t, srv, "1001", lists+1)
}

// TestReconnectDelaysCapped: the jitter never takes a delay above
// ReconnectMax, nor below three quarters of ReconnectMin.
func TestReconnectDelaysCapped(t *testing.T) {
	for _, b := range []struct{ min, max time.Duration }{
		{20 * time.Millisecond, 200 * time.Millisecond},
		{5 * time.Second, 60 * time.Second},
		{time.Second, time.Second},
	} {
		delays := pbx.ReconnectDelays(b.min, b.max, 500)
		reachedMax := false
		for i, d := range delays {
			if d > b.max || d < b.min*3/4 {
				t.Fatalf("bounds %v..%v: delay %d is %v", b.min, b.max, i, d)
			}
			reachedMax = reachedMax || d >= b.max*3/4
		}
		if !reachedMax {
			t.Errorf("bounds %v..%v: the delays never grew towards the cap", b.min, b.max)
		}
	}
}

// TestTokenProbeInconclusive: a probe answered with an API error that says
// nothing about the token (10001, a PBX's internal error) does not end the
// session: it keeps reconnecting, and comes back once the PBX does.
func TestTokenProbeInconclusive(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))
	probes := srv.Requests("/api/v1.0/extension/getpersonal")
	srv.FailEndpoint("/api/v1.0/extension/getpersonal", 10001, "INTERFACE NOT EXIST")
	srv.CloseUpgrades(true)
	srv.DropSockets("1001")
	eventually(t, "three token probes", func() bool { return srv.Requests("/api/v1.0/extension/getpersonal") >= probes+3 })
	if err := s.Err(); err != nil {
		t.Fatalf("session ended on an inconclusive probe: %v", err)
	}
	srv.FailEndpoint("/api/v1.0/extension/getpersonal", 0, "")
	srv.CloseUpgrades(false)
	awaitEvent(t, s, func(st *pbx.SocketState) bool { return st.Up && st.Reconnect })
	subscribed(t, srv, "1001", 2)
	sentinel(t, srv, s, "*2")
}

// TestEndlessHandshake: a PBX that answers the upgrade with a header that
// never ends makes the dial fail at once, with a clear error and bounded
// memory, long before the handshake timeout; the session keeps trying.
func TestEndlessHandshake(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.SetEndlessHandshake(true)
	cfg := fastConfig(t, srv, ext)
	cfg.RequestTimeout = time.Minute // a timeout must not be what ends the dial
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	var reconnects recorder
	cfg.Hooks.Reconnect = func() { reconnects.Add("reconnect") }

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	s, err := pbx.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	eventually(t, "a failed dial", func() bool { return strings.Contains(logs.String(), "pbx socket dial failed") })
	elapsed := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	if !strings.Contains(logs.String(), "handshake answer larger than 64 KiB") {
		t.Errorf("the dial failed without saying why:\n%s", logs.String())
	}
	if elapsed > 10*time.Second {
		t.Errorf("the dial took %v to fail", elapsed)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("%d MiB allocated until the dial failed", alloc>>20)
	}
	eventually(t, "another attempt", func() bool { return reconnects.Count("reconnect") >= 1 })
	if s.Err() != nil {
		t.Errorf("session ended: %v", s.Err())
	}
	srv.SetEndlessHandshake(false)
	awaitEvent(t, s, func(st *pbx.SocketState) bool { return st.Up })
}

// TestFloodOfGarbage: 5,000 garbage frames are each counted, but give a
// handful of warnings, the later ones saying how many were held back.
func TestFloodOfGarbage(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	var drops recorder
	cfg.Hooks.FrameDropped = func(reason string) { drops.Add(reason) }
	s := open(t, srv, cfg)

	const n = 5000
	srv.Flood("1001", n, "garbage, not JSON")
	srv.Flood("1001", n, `{"type":30000,"msg":"{}"}`)
	sentinel(t, srv, s, "*1")
	if got := drops.Count("not_json"); got != n {
		t.Errorf("%d not_json drops counted, want %d", got, n)
	}
	if got := drops.Count("unknown_type"); got != n {
		t.Errorf("%d unknown_type drops counted, want %d", got, n)
	}
	lines := strings.Count(logs.String(), "pbx frame dropped")
	if lines < 2 || lines > 6 {
		t.Errorf("%d warning lines for %d dropped frames, want a handful:\n%s", lines, 2*n, logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What was held back is said at the end.
	if !strings.Contains(logs.String(), `msg="pbx warnings suppressed" ext=1001 kind="frame dropped: not_json" suppressed=`) {
		t.Errorf("the session ended without counting the suppressed warnings:\n%s", logs.String())
	}
}

// TestNotificationDecodeProblem: a 20049 whose summary has a field of an
// unusable type is still delivered (it says "query again"), and the field
// is reported against the socket.
func TestNotificationDecodeProblem(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	var problems recorder
	cfg.Hooks.DecodeProblem = func(endpoint, field string) { problems.Add(endpoint + " " + field) }
	s := open(t, srv, cfg)
	srv.Notify("1001", pbx.TypeCDRChanged, map[string]any{"ext_num": "1001", "personal_cdr": map[string]any{"timestamp": map[string]any{}, "talk_duration": "12"}})
	changed := awaitEvent(t, s, func(*pbx.CDRChanged) bool { return true })
	if changed.ExtNum != "1001" || changed.PersonalCDR.Timestamp != 0 || changed.PersonalCDR.TalkDuration != 12 {
		t.Errorf("CDRChanged = %+v", changed)
	}
	if got := problems.List(); !slices.Equal(got, []string{"socket:20049 personal_cdr.timestamp"}) {
		t.Errorf("problems %v", got)
	}
}

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

// sentinel sends a Notice and awaits it as the very next event: whatever
// the test did before produced no event (no reconnect, no delivered frame).
func sentinel(t *testing.T, srv *pbxtest.Server, s *pbx.Session, code string) {
	t.Helper()
	srv.Notify("1001", pbx.TypeRecordFeatureCode, map[string]string{"record_feature_code": code})
	ev, ok := nextEvent(t, s)
	n, isNotice := ev.(*pbx.Notice)
	if !ok || !isNotice || n.Type != pbx.TypeRecordFeatureCode || !jsonEqual(t, n.Msg, []byte(`{"record_feature_code":"`+code+`"}`)) {
		t.Fatalf("next event = %s, want the sentinel notice %s", describe(ev), code)
	}
}

func TestHeartbeatAnswered(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.PingAfter = 20 * time.Millisecond
	s := open(t, srv, cfg)
	// Each ping must be answered and the answer read, or the socket would
	// be closed and subscribed again.
	eventually(t, "five heartbeats", func() bool { return srv.Heartbeats("1001") >= 5 })
	if n := len(srv.TopicLists("1001")); n != 1 {
		t.Fatalf("%d topic lists: the socket was reconnected although heartbeats were answered", n)
	}
	sentinel(t, srv, s, "*5")
}

// TestTopicListIsTheFirstFrame: a heartbeat due at once (PingAfter 1ns)
// must still wait for the topic list, on every socket; the PBX refuses a
// heartbeat that comes before it (policy violation, then the socket is
// closed). Heartbeats go unanswered here, so each socket sends one ping and
// the test stays quiet.
func TestTopicListIsTheFirstFrame(t *testing.T) {
	var simLog syncBuffer
	srv := newPBX(t, pbxtest.Options{Logger: slog.New(slog.NewTextHandler(&simLog, nil))})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.StallHeartbeats("1001", true)
	cfg := fastConfig(t, srv, ext)
	cfg.PingAfter = time.Nanosecond
	cfg.PongTimeout = time.Hour
	cfg.KeepaliveEvery = time.Hour
	s := open(t, srv, cfg)
	const sockets = 20
	for i := 1; i <= sockets; i++ {
		if i > 1 {
			srv.DropSockets("1001")
			awaitEvent(t, s, func(st *pbx.SocketState) bool { return st.Up })
			subscribed(t, srv, "1001", i)
		}
		eventually(t, fmt.Sprintf("the ping of socket %d", i), func() bool { return srv.Heartbeats("1001") >= i })
	}
	if strings.Contains(simLog.String(), "protocol violation") {
		t.Errorf("the PBX saw a protocol violation:\n%s", simLog.String())
	}
	if n := srv.Requests("/api/v1.0/subscribe"); n != sockets {
		t.Errorf("%d subscribe requests for %d sockets: some sockets were refused", n, sockets)
	}
}

func TestHeartbeatTimeoutReconnects(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.PingAfter = 20 * time.Millisecond
	cfg.PongTimeout = 60 * time.Millisecond
	var reconnects recorder
	cfg.Hooks.Reconnect = func() { reconnects.Add("reconnect") }
	s := open(t, srv, cfg)

	srv.StallHeartbeats("1001", true)
	down := awaitEvent(t, s, func(st *pbx.SocketState) bool { return !st.Up })
	if !errors.Is(down.Err, pbx.ErrHeartbeatTimeout) {
		t.Fatalf("socket down with %v, want ErrHeartbeatTimeout", down.Err)
	}
	if srv.Heartbeats("1001") == 0 {
		t.Fatal("the socket went down without a heartbeat sent")
	}
	srv.StallHeartbeats("1001", false)
	up := awaitEvent(t, s, func(st *pbx.SocketState) bool { return st.Up })
	if !up.Reconnect || up.Err != nil {
		t.Fatalf("socket state after the timeout = %+v, want up, a reconnect", up)
	}
	subscribed(t, srv, "1001", 2)
	if reconnects.Count("reconnect") == 0 {
		t.Error("Hooks.Reconnect was not called")
	}
	if n := srv.MaxLiveSockets("1001"); n != 1 {
		t.Errorf("up to %d sockets at once, want 1", n)
	}
	if s.Err() != nil {
		t.Fatalf("session ended: %v", s.Err())
	}
}

// TestKeepaliveOnBusySocket: the second timer sends heartbeats after an
// incoming frame, again and again until one is answered, even though the
// ping timer (PingAfter) is far away.
func TestKeepaliveOnBusySocket(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.PingAfter = time.Hour
	cfg.PongTimeout = time.Hour
	cfg.KeepaliveEvery = 20 * time.Millisecond
	s := open(t, srv, cfg)
	if n := srv.Heartbeats("1001"); n != 0 {
		t.Fatalf("%d heartbeats before any incoming frame", n)
	}
	srv.StallHeartbeats("1001", true)
	sentinel(t, srv, s, "*1")
	eventually(t, "repeated keepalive heartbeats", func() bool { return srv.Heartbeats("1001") >= 3 })
	srv.StallHeartbeats("1001", false)
	before := srv.Heartbeats("1001")
	eventually(t, "an answered keepalive", func() bool { return srv.Heartbeats("1001") > before })
	if n := len(srv.TopicLists("1001")); n != 1 {
		t.Errorf("%d topic lists, want 1", n)
	}
}

func TestReconnectResubscribes(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))

	for i := 2; i <= 3; i++ {
		srv.DropSockets("1001")
		down := awaitEvent(t, s, func(*pbx.SocketState) bool { return true })
		if down.Up || down.Err == nil {
			t.Fatalf("after the drop: %+v, want down with a reason", down)
		}
		up := awaitEvent(t, s, func(*pbx.SocketState) bool { return true })
		if !up.Up || !up.Reconnect {
			t.Fatalf("after the reconnect: %+v, want up, a reconnect", up)
		}
		subscribed(t, srv, "1001", i)
		lists := srv.TopicLists("1001")
		if !slices.Equal(lists[i-1], lists[0]) {
			t.Errorf("topic list %d = %v, want %v", i, lists[i-1], lists[0])
		}
	}
	if srv.Logins("1001") != 1 {
		t.Errorf("logins = %d: reconnects must reuse the token", srv.Logins("1001"))
	}
	if n := srv.MaxLiveSockets("1001"); n != 1 {
		t.Errorf("up to %d sockets at once, want 1", n)
	}
	if _, err := srv.Call("1001", pbxtest.Call{Kind: pbxtest.Outgoing, Peer: "2000", TalkDuration: 1}); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, s, func(*pbx.CDRChanged) bool { return true })
}

func TestErrcodeMinus3Resubscribes(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))
	srv.SendRaw("1001", `{"type":20049,"msg":"{\"ext_num\":\"1001\"}","errcode":-3}`)
	subscribed(t, srv, "1001", 2)
	// Subscribed again on the same socket: no reconnect, the -3 frame itself
	// is not a CDRChanged, and the gap is reported.
	resubscribed(t, s)
	sentinel(t, srv, s, "*3")
	if srv.LiveSockets("1001") != 1 || srv.MaxLiveSockets("1001") != 1 {
		t.Errorf("live sockets %d, max %d; want 1, 1", srv.LiveSockets("1001"), srv.MaxLiveSockets("1001"))
	}
	lists := srv.TopicLists("1001")
	if !slices.Equal(lists[1], lists[0]) {
		t.Errorf("second topic list %v, want %v", lists[1], lists[0])
	}
}

func TestHotStandbyResubscribes(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))
	srv.Notify("1001", pbx.TypeHotStandby, map[string]any{})
	// The gap is reported first: the topic list went out before the notice
	// is delivered.
	resubscribed(t, s)
	ev, _ := nextEvent(t, s)
	n, ok := ev.(*pbx.Notice)
	if !ok || n.Type != pbx.TypeHotStandby {
		t.Fatalf("event after the state = %s, want the 20104 notice", describe(ev))
	}
	if !jsonEqual(t, n.Msg, []byte(`{}`)) {
		t.Errorf("notice msg = %s", n.Msg)
	}
	subscribed(t, srv, "1001", 2)
	sentinel(t, srv, s, "*4")
	if srv.MaxLiveSockets("1001") != 1 {
		t.Errorf("max live sockets %d, want 1", srv.MaxLiveSockets("1001"))
	}
}

// resubscribed asserts that the next event reports a resubscription: a gap
// on a socket that stayed up.
func resubscribed(t *testing.T, s *pbx.Session) {
	t.Helper()
	ev, _ := nextEvent(t, s)
	if st, ok := ev.(*pbx.SocketState); !ok || *st != (pbx.SocketState{Up: true, Reconnect: true, Resubscribed: true}) {
		t.Fatalf("next event = %s, want SocketState{Up, Reconnect, Resubscribed}", describe(ev))
	}
}

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

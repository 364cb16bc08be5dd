package pbx_test

import (
	"errors"
	"fmt"
	"log/slog"
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

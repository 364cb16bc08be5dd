package pbx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/testrig"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// wait bounds every await.
const wait = testrig.Wait

// TestMain fails the run if any goroutine of package pbx outlives the
// tests.
func TestMain(m *testing.M) { testrig.RunChecked(m, "github.com/pbx-bridge/pbx-bridge/pbx") }

// newPBX starts a simulator that the test closes.
func newPBX(t *testing.T, opts pbxtest.Options) *pbxtest.Server { return testrig.NewPBX(t, opts) }

// testLogger sends the package's logs to the test's log, shown on failure.
func testLogger(t *testing.T) *slog.Logger { return testrig.Logger(t) }

// fastConfig is a config for ext on srv with test timings: heartbeats and
// reconnects in tens of milliseconds, and a pong timeout that a loaded
// machine does not trip by accident.
func fastConfig(t *testing.T, srv *pbxtest.Server, ext pbxtest.Extension) pbx.Config {
	return pbx.Config{
		URL:            srv.URL(),
		Username:       ext.Number,
		Secret:         ext.Secret,
		RootCAs:        srv.CertPool(),
		RequestTimeout: 5 * time.Second,
		PingAfter:      50 * time.Millisecond,
		PongTimeout:    2 * time.Second,
		KeepaliveEvery: 80 * time.Millisecond,
		ReconnectMin:   20 * time.Millisecond,
		ReconnectMax:   200 * time.Millisecond,
		DeliverTimeout: 2 * time.Second,
		Logger:         testLogger(t),
	}
}

// open opens a session that the test closes, and awaits its first
// SocketState{Up: true} and the PBX's record of its topic list: from then on
// the PBX sends it notifications.
func open(t *testing.T, srv *pbxtest.Server, cfg pbx.Config) *pbx.Session {
	t.Helper()
	lists := len(srv.TopicLists(cfg.Username))
	s, err := pbx.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	st := awaitEvent(t, s, func(*pbx.SocketState) bool { return true })
	if !st.Up || st.Reconnect {
		t.Fatalf("first socket state = %+v, want up, not a reconnect", st)
	}
	subscribed(t, srv, cfg.Username, lists+1)
	return s
}

// subscribed awaits the PBX's n-th topic list of ext: a topic list is sent
// before SocketState{Up} is delivered, but the PBX may read it later.
func subscribed(t *testing.T, srv *pbxtest.Server, ext string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("topic list #%d of %s", n, ext), func() bool { return len(srv.TopicLists(ext)) >= n })
}

// receive waits for the session's next event as a consumer does (Ready,
// then Next) until deadline: ok is false once the session ended and its
// events were taken, timedOut true if deadline came first.
func receive(s *pbx.Session, deadline <-chan time.Time) (ev pbx.Event, ok, timedOut bool) {
	for {
		if ev, open := s.Next(); ev != nil || !open {
			return ev, open, false
		}
		select {
		case <-s.Ready():
		case <-deadline:
			return nil, false, true
		}
	}
}

// nextEvent returns the session's next event; ok is false once the session
// ended and its events were taken.
func nextEvent(t *testing.T, s *pbx.Session) (ev pbx.Event, ok bool) {
	t.Helper()
	ev, ok, timedOut := receive(s, time.After(wait))
	if timedOut {
		t.Fatalf("no event within %v", wait)
	}
	return ev, ok
}

// awaitEvent skips events until one of type T matches; it fails the test if
// Events closes first.
func awaitEvent[T pbx.Event](t *testing.T, s *pbx.Session, match func(T) bool) T {
	t.Helper()
	deadline := time.After(wait)
	for {
		ev, ok, timedOut := receive(s, deadline)
		var zero T
		switch {
		case timedOut:
			t.Fatalf("no matching %T within %v", zero, wait)
			return zero
		case !ok:
			t.Fatalf("events ended (err %v) while awaiting a %T", s.Err(), zero)
			return zero
		}
		if e, ok := ev.(T); ok && match(e) {
			return e
		}
		t.Logf("skipping event %s", describe(ev))
	}
}

// awaitNotice awaits the Notice of type typ.
func awaitNotice(t *testing.T, s *pbx.Session, typ int) *pbx.Notice {
	t.Helper()
	return awaitEvent(t, s, func(n *pbx.Notice) bool { return n.Type == typ })
}

// awaitEnd awaits the end of the session and returns every event it
// delivered until its events ended, and its Err.
func awaitEnd(t *testing.T, s *pbx.Session) ([]pbx.Event, error) {
	t.Helper()
	var events []pbx.Event
	deadline := time.After(wait)
	for {
		ev, ok, timedOut := receive(s, deadline)
		switch {
		case timedOut:
			t.Fatalf("session did not end within %v", wait)
		case !ok:
			select {
			case <-s.Done():
			default:
				t.Fatal("events ended before Done")
			}
			if s.Err() == nil {
				t.Fatal("session ended with a nil Err")
			}
			return events, s.Err()
		}
		events = append(events, ev)
	}
}

// eventually polls cond until it holds, failing the test after the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testrig.Eventually(t, what, cond)
}

func describe(ev pbx.Event) string {
	switch e := ev.(type) {
	case *pbx.Notice:
		return fmt.Sprintf("Notice{%d %s}", e.Type, e.Msg)
	default:
		return fmt.Sprintf("%T%+v", ev, ev)
	}
}

// jsonEqual reports whether two JSON documents are equal as values.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// recorder collects strings from hooks and loggers on several goroutines.
type recorder = testrig.Recorder

// syncBuffer is a bytes.Buffer for a logger on several goroutines.
type syncBuffer = testrig.SyncBuffer

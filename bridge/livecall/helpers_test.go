package livecall_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// wait bounds every wait for a condition.
const wait = 10 * time.Second

// checkFor polls cond until it returns nil, failing the test with its last
// error after the deadline.
func checkFor(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v: %v", wait, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const testPBX = "pbx.example.com:8088"

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTracker(t testing.TB, cfg livecall.Config) *livecall.Tracker {
	t.Helper()
	if cfg.PBX == "" {
		cfg.PBX = testPBX
	}
	tr, err := livecall.NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// recorder feeds what an event stream delivers to a tracker, and keeps
// both the frames and the tracker's events.
type recorder struct {
	tr     *livecall.Tracker
	mu     sync.Mutex
	frames []*openapi.Event
	events []livecall.Event
}

func (r *recorder) onEvent(ev *openapi.Event) {
	out := r.tr.Observe(ev)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, ev)
	r.events = append(r.events, out...)
}

func (r *recorder) snapshot() ([]*openapi.Event, []livecall.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*openapi.Event(nil), r.frames...), append([]livecall.Event(nil), r.events...)
}

// awaitEvents waits until the recorder's events of the suffix prefix
// (e.g. "call.") are want, as describe renders them.
func (r *recorder) awaitEvents(t *testing.T, prefix string, want ...string) {
	t.Helper()
	checkFor(t, func() error {
		_, events := r.snapshot()
		got := describe(events, prefix)
		if strings.Join(got, " | ") != strings.Join(want, " | ") {
			return fmt.Errorf("events:\n got %q\nwant %q", got, want)
		}
		return nil
	})
}

// describe renders events as "ext:suffix", the call events as
// "ext:event" with their previous state and seq.
func describe(events []livecall.Event, prefix string) []string {
	var out []string
	for _, ev := range events {
		if !strings.HasPrefix(ev.Suffix, prefix) {
			continue
		}
		if d, ok := ev.Data.(schema.CallEvent); ok {
			out = append(out, fmt.Sprintf("%s:%s<%s#%d", d.ExtNum, d.Event, d.Previous, d.Seq))
			continue
		}
		out = append(out, ev.Ext+":"+ev.Suffix)
	}
	return out
}

// channel returns the channel of ext's latest call event.
func channel(t *testing.T, r *recorder, ext string) string {
	t.Helper()
	_, events := r.snapshot()
	for i := len(events) - 1; i >= 0; i-- {
		if d, ok := events[i].Data.(schema.CallEvent); ok && d.ExtNum == ext {
			return d.ChannelID
		}
	}
	t.Fatalf("no call event of %s", ext)
	return ""
}

// livePBX starts a simulator with the extensions, an OpenAPI client of it
// and an event stream feeding r, and waits for the subscription.
func livePBX(t *testing.T, r *recorder, exts ...string) (*pbxtest.Server, *openapi.Client) {
	t.Helper()
	srv, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	for _, n := range exts {
		srv.AddExtension(pbxtest.Extension{Number: n})
	}
	id, key := srv.OpenAPICredentials()
	o, err := openapi.New(openapi.Config{URL: srv.URL(), AccessID: id, AccessKey: key, RootCAs: srv.CertPool(),
		RequestTimeout: 5 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	up := make(chan struct{}, 1)
	s, err := o.NewEventStream(openapi.EventStreamConfig{
		Topics: []openapi.EventType{openapi.EventRegistration, openapi.EventExtensionCallStatus, openapi.EventPresence,
			openapi.EventCallState, openapi.EventNewCDR, openapi.EventSystemInfo, openapi.EventSystemWarning, openapi.EventSystemAlert},
		OnEvent: r.onEvent,
		OnState: func(st openapi.EventStreamState) {
			if st.Up {
				select {
				case up <- struct{}{}:
				default:
				}
			}
		},
		HeartbeatEvery: time.Second,
		PongTimeout:    5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-up:
	case <-time.After(wait):
		t.Fatal("the event stream did not come up")
	}
	return srv, o
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// m is a call member for callFrame: kind "extension", "inbound" or
// "outbound"; number is the extension, or the trunk leg's external party.
type m struct {
	kind, number, channel, status string
}

func ext(number, channel, status string) m { return m{"extension", number, channel, status} }

// callFrame renders a 30011 frame as the reference documents it (msg a
// JSON string) and decodes it as the event socket does.
func callFrame(t testing.TB, callID string, members ...m) *openapi.Event {
	t.Helper()
	list := []any{}
	for _, mm := range members {
		inner := map[string]any{"channel_id": mm.channel, "member_status": mm.status, "call_path": ""}
		switch mm.kind {
		case "extension":
			inner["number"] = mm.number
		case "inbound":
			inner["from"], inner["to"], inner["trunk_name"] = mm.number, "1001", "SIP-Trunk1"
		case "outbound":
			inner["from"], inner["to"], inner["trunk_name"] = "1001", mm.number, "SIP-Trunk1"
		}
		list = append(list, map[string]any{mm.kind: inner})
	}
	return frame(t, 30011, map[string]any{"call_id": callID, "members": list})
}

// frame renders and decodes an event frame of the type with msg.
func frame(t testing.TB, typ int, msg any) *openapi.Event {
	t.Helper()
	inner, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"type": typ, "sn": "3631A2124XXX", "msg": string(inner)})
	f, err := openapi.DecodeEventFrame(raw)
	if err != nil || f.Event == nil {
		t.Fatalf("DecodeEventFrame(%s) = %+v, %v", raw, f, err)
	}
	return f.Event
}

// observeAll feeds frames to tr and returns every event.
func observeAll(tr *livecall.Tracker, frames ...*openapi.Event) []livecall.Event {
	var out []livecall.Event
	for _, f := range frames {
		out = append(out, tr.Observe(f)...)
	}
	return out
}

func ids(events []livecall.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// validate checks every event against its schema, through its envelope.
func validate(t testing.TB, events []livecall.Event) {
	t.Helper()
	for _, ev := range events {
		ce, err := ev.CloudEvent("pbx-bridge://" + testPBX)
		if err != nil {
			t.Fatalf("CloudEvent(%+v): %v", ev, err)
		}
		b, _ := json.Marshal(ce)
		if err := schema.ValidateEvent(b); err != nil {
			t.Fatalf("%s: %v\n%s", ev.Suffix, err, b)
		}
	}
}

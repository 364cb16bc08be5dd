package integration

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/bridge/kvkey"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// liveSetup runs one bridge with the event socket and call control on,
// serving 1001 and 1002 (1003 exists on the PBX, not on the bridge).
func liveSetup(t *testing.T) *setup {
	t.Helper()
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001", "1002")
	sim.AddExtension(pbxtest.Extension{Number: "1003"})
	s := &setup{sim: sim, secrets: secrets, logs: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", s.logs.String())
		}
	})
	s.nc = connect(t, ns.ClientURL())
	s.rec = record(t, s.nc, "pbx.>")
	cfg := fastConfig(sim, secrets, testLogger(s.logs))
	id, key := sim.OpenAPICredentials()
	cfg.OpenAPI = bridge.OpenAPIConfig{AccessID: id, AccessKey: key}
	cfg.Events.Enabled, cfg.AllowCallControl = true, true
	s.b = runBridge(t, s.nc, cfg)
	for _, e := range []string{"1001", "1002"} {
		s.rec.await("pbx."+e+".session.online", 1, 10*time.Second)
		awaitSubscribed(t, sim, e, 1)
	}
	waitFor(t, "the event socket subscribed", 10*time.Second, func() bool { return len(sim.EventTopicLists()) > 0 })
	return s
}

// channelOf is ext's channel in the simulator's live call.
func channelOf(t *testing.T, sim *pbxtest.Server, callID, ext string) string {
	t.Helper()
	for _, c := range sim.LiveCalls() {
		for _, m := range c.Members {
			if c.ID == callID && m.Number == ext {
				return m.ChannelID
			}
		}
	}
	t.Fatalf("no channel of %s in call %s: %+v", ext, callID, sim.LiveCalls())
	return ""
}

// callEvents returns ext's call events of callID as "<name>#<seq>", in
// seq order.
func callEvents(t *testing.T, rec *recorder, ext, callID string) []string {
	type seen struct {
		name string
		seq  int
	}
	var evs []seen
	for _, name := range []string{"ringing", "answered", "held", "resumed", "ended"} {
		for _, ev := range rec.on("pbx." + ext + ".call." + name) {
			if d := data[schema.CallEvent](t, ev); d.CallID == callID {
				evs = append(evs, seen{name, d.Seq})
			}
		}
	}
	slices.SortFunc(evs, func(a, b seen) int { return a.seq - b.seq })
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.name + "#" + strconv.Itoa(e.seq)
	}
	return out
}

// TestLiveCallEvents: an internal call, 1001 to 1002, rung, answered, held
// and resumed on each side and hung up, is on NATS as ringing, answered,
// held, resumed and ended for both extensions, once each and in order
// (30011 repeats whole member lists), then as each side's cdr.created.
func TestLiveCallEvents(t *testing.T) {
	s := liveSetup(t)
	callID, err := s.sim.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	s.rec.await("pbx.1002.call.ringing", 1, 10*time.Second)
	if err := s.sim.AnswerCall(callID); err != nil {
		t.Fatal(err)
	}
	s.rec.await("pbx.1002.call.answered", 1, 10*time.Second)
	for _, ext := range []string{"1001", "1002"} {
		ch := channelOf(t, s.sim, callID, ext)
		if err := s.sim.Hold(ch); err != nil {
			t.Fatal(err)
		}
		s.rec.await("pbx."+ext+".call.held", 1, 10*time.Second)
		if err := s.sim.Unhold(ch); err != nil {
			t.Fatal(err)
		}
		s.rec.await("pbx."+ext+".call.resumed", 1, 10*time.Second)
	}
	if err := s.sim.Hangup(channelOf(t, s.sim, callID, "1001")); err != nil {
		t.Fatal(err)
	}
	want := []string{"ringing#1", "answered#2", "held#3", "resumed#4", "ended#5"}
	for _, ext := range []string{"1001", "1002"} {
		s.rec.await("pbx."+ext+".call.ended", 1, 10*time.Second)
		s.rec.await("pbx."+ext+".cdr.created", 1, 10*time.Second)
		if got := callEvents(t, s.rec, ext, callID); !slices.Equal(got, want) {
			t.Errorf("%s: call events %v, want %v", ext, got, want)
		}
	}
	if n := len(s.rec.on("pbx.1003.call.ringing")); n != 0 {
		t.Errorf("%d events for 1003, which the bridge does not serve", n)
	}
	ended := s.rec.await("pbx.pbx.cdr.ended", 1, 10*time.Second)
	if d := data[schema.CDREnded](t, ended[0]); d.CallID != callID {
		t.Errorf("cdr.ended call_id %q, want %q", d.CallID, callID)
	}
}

// callRequest sends a call control request and returns the reply and its
// error code ("" on success).
func callRequest(t *testing.T, nc *nats.Conn, subject string, body any) ([]byte, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	m, err := nc.Request(subject, b, 10*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return m.Data, m.Header.Get("Nats-Service-Error-Code")
}

// TestClickToCall: pbx.1001.call.dial starts a call whose events follow on
// NATS; call.list shows it; call.hangup by call_id ends it. Bad requests
// and unserved extensions get their errors without reaching the PBX.
func TestClickToCall(t *testing.T) {
	s := liveSetup(t)
	reply, code := callRequest(t, s.nc, "pbx.1001.call.dial", map[string]any{"callee": "1002"})
	if code != "" {
		t.Fatalf("dial: %s %s", code, reply)
	}
	var dial schema.CallDialResult
	if err := json.Unmarshal(reply, &dial); err != nil || dial.CallID == "" {
		t.Fatalf("dial reply %s: %v", reply, err)
	}
	ringing := s.rec.await("pbx.1001.call.ringing", 1, 10*time.Second)
	if d := data[schema.CallEvent](t, ringing[0]); d.CallID != dial.CallID {
		t.Errorf("ringing call_id %q, want the dialled %q", d.CallID, dial.CallID)
	}
	reply, code = callRequest(t, s.nc, "pbx.1001.call.list", map[string]any{})
	var list schema.CallListResult
	if err := json.Unmarshal(reply, &list); code != "" || err != nil {
		t.Fatalf("list: %s %s %v", code, reply, err)
	}
	if len(list.Calls) != 1 || list.Calls[0].CallID != dial.CallID {
		t.Errorf("list %s, want the dialled call", reply)
	}
	if reply, code = callRequest(t, s.nc, "pbx.1001.call.hangup", map[string]any{"call_id": dial.CallID}); code != "" {
		t.Fatalf("hangup: %s %s", code, reply)
	}
	s.rec.await("pbx.1001.call.ended", 1, 10*time.Second)

	before := s.sim.RequestCounts()
	for _, tc := range []struct {
		subject string
		body    any
		code    string
	}{
		{"pbx.1001.call.dial", map[string]any{"callee": "not a number"}, "400"},
		{"pbx.1001.call.dial", map[string]any{"callee": "1002", "extra": 1}, "400"},
		{"pbx.1001.call.hold", map[string]any{"call_id": "a", "channel_id": "b"}, "400"},
		{"pbx.1001.call.transfer", map[string]any{"call_id": dial.CallID, "number": "1003", "type": "sideways"}, "400"},
		{"pbx.1003.call.dial", map[string]any{"callee": "1002"}, "404"},
	} {
		if reply, code := callRequest(t, s.nc, tc.subject, tc.body); code != tc.code {
			t.Errorf("%s %v: code %q (%s), want %s", tc.subject, tc.body, code, reply, tc.code)
		}
	}
	after := s.sim.RequestCounts()
	for path, n := range after {
		// The hangup's records are caught up meanwhile (searchpersonal):
		// only the OpenAPI's paths are the call control's.
		if strings.HasPrefix(path, "/openapi/") && n != before[path] {
			t.Errorf("a refused request reached the PBX: %s %d -> %d", path, before[path], n)
		}
	}
}

// TestLiveHostileEventSocket: an event socket that floods garbage, sends
// members without their status, drops, or never answers the subscribe
// costs counted drops and a log line; the Linkus side (records, requests)
// goes on as if nothing happened, and live events resume once the PBX
// behaves.
func TestLiveHostileEventSocket(t *testing.T) {
	s := liveSetup(t)
	s.sim.FloodEvents(2000, `{"type":30011,"sn":"x","msg":"{not json"}`)
	s.sim.SetEventQuirks(pbxtest.EventQuirks{DropMemberField: "member_status"})
	callID, err := s.sim.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sim.EndCall(callID); err != nil {
		t.Fatal(err)
	}
	// The records of the call still arrive, and requests are answered.
	for _, ext := range []string{"1001", "1002"} {
		s.rec.await("pbx."+ext+".cdr.created", 1, 10*time.Second)
	}
	if _, code := callRequest(t, s.nc, "pbx.1001.info", nil); code != "" {
		t.Errorf("info answered %s during the flood", code)
	}
	waitFor(t, "the drops counted", 10*time.Second, func() bool {
		return metricSum(metrics(s.b.Bridge), "pbx_bridge_live_events_dropped_total", "") >= 2000
	})
	// A socket that never answers the subscribe is reconnected without end;
	// meanwhile nothing else waits on it.
	s.sim.SetEventQuirks(pbxtest.EventQuirks{NeverAckSubscribe: true})
	subscribed := len(s.sim.EventTopicLists())
	s.sim.DropEventSockets()
	waitFor(t, "a subscribe left unanswered", 10*time.Second, func() bool { return len(s.sim.EventTopicLists()) > subscribed })
	if _, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
		t.Fatal(err)
	}
	s.rec.await("pbx.1001.call.missed", 1, 10*time.Second)
	// Well behaved again: the next call's live events come.
	s.sim.SetEventQuirks(pbxtest.EventQuirks{})
	s.sim.DropEventSockets()
	waitFor(t, "subscribed again", 30*time.Second, func() bool { return s.sim.EventSockets() > 0 })
	before := len(s.rec.on("pbx.1002.call.ringing"))
	next, err := s.sim.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	s.rec.await("pbx.1002.call.ringing", before+1, 30*time.Second)
	_ = s.sim.EndCall(next)
}

// TestLiveStateLargerThanMaxPayload: with a NATS server whose max_payload
// is 8 KiB, twenty calls in progress make the tracker's state larger than one
// message; it is saved in chunks, and a bridge started after the first one
// stopped goes on from it: the next transition of each call has the seq
// that follows, and nothing is published twice.
func TestLiveStateLargerThanMaxPayload(t *testing.T) {
	ns := startNATSWith(t, &server.Options{MaxPayload: 8 << 10})
	var exts []string
	for i := range 40 {
		exts = append(exts, strconv.Itoa(2000+i))
	}
	sim, secrets := startPBX(t, exts...)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	cfg := fastConfig(sim, secrets, testLogger(logs))
	id, key := sim.OpenAPICredentials()
	cfg.OpenAPI = bridge.OpenAPIConfig{AccessID: id, AccessKey: key}
	cfg.Events.Enabled = true
	first := runBridge(t, connect(t, ns.ClientURL()), cfg)
	waitFor(t, "the event socket subscribed", 10*time.Second, func() bool { return len(sim.EventTopicLists()) == 1 })
	var calls []string
	for i := 0; i < len(exts); i += 2 {
		callID, err := sim.StartCall(exts[i], exts[i+1])
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.AnswerCall(callID); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, callID)
	}
	for _, e := range exts {
		rec.await("pbx."+e+".call.answered", 1, 10*time.Second)
	}
	// The state is saved within a second of the last event, in chunks.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), "pbx_bridge_cursors")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(sim.URL())
	var m struct {
		Chunks int `json:"chunks"`
		Size   int `json:"size"`
	}
	waitFor(t, "the state saved in chunks", 10*time.Second, func() bool {
		e, err := kv.Get(context.Background(), "live."+kvkey.Host(u.Host))
		return err == nil && json.Unmarshal(e.Value(), &m) == nil && m.Chunks >= 2
	})
	t.Logf("state: %d bytes in %d chunks (max_payload %d)", m.Size, m.Chunks, nc.MaxPayload())
	first.stop(t)

	runBridge(t, connect(t, ns.ClientURL()), cfg)
	waitFor(t, "the second bridge's event socket subscribed", 10*time.Second, func() bool { return len(sim.EventTopicLists()) == 2 })
	for i, callID := range calls {
		if err := sim.Hold(channelOf(t, sim, callID, exts[2*i])); err != nil {
			t.Fatal(err)
		}
	}
	for i, callID := range calls {
		ext := exts[2*i]
		rec.await("pbx."+ext+".call.held", 1, 10*time.Second)
		want := []string{"ringing#1", "answered#2", "held#3"}
		if got := callEvents(t, rec, ext, callID); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v (the second bridge did not go on from the saved state)", ext, got, want)
		}
	}
	if strings.Contains(logs.String(), "saved state could not be read") || strings.Contains(logs.String(), "state was not saved") {
		t.Error("the state was not saved or read whole (see the log)")
	}
}

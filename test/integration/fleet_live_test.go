package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge/kvkey"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// liveLeader returns the replica holding the OpenAPI leader lease, and
// with it the event socket ("" if none).
func liveLeader(t *testing.T, kv jetstream.KeyValue, pbxHost string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := kv.Get(ctx, "openapi.leader."+kvkey.Host(pbxHost))
	if err != nil {
		return ""
	}
	var v struct {
		Replica string `json:"replica"`
	}
	if json.Unmarshal(e.Value(), &v) != nil {
		return ""
	}
	return v.Replica
}

// TestFleetLiveSocketFailover: three replicas with live calls; the OpenAPI
// leader, which holds the fleet's one event socket, is killed (SIGKILL) in
// the middle of a call. Another replica takes the lease within its TTL,
// opens the socket, starts from the state the first one saved and
// reconciles what happened while no socket was open (the call was put on
// hold), and the call goes on to its end. The signals stream holds every
// transition of each extension exactly once, in order: no event twice,
// none missing, whichever replica derived it.
func TestFleetLiveSocketFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet fault run")
	}
	const ttl = 4 * time.Second
	exts := []string{"1001", "1002", "1003", "1004"}
	ns := startNATS(t, t.TempDir(), -1)
	sim, _ := startPBX(t, exts...)
	caFile := writeCAFile(t, sim)
	accessID, accessKey := sim.OpenAPICredentials()
	env := []string{"OPENAPI_KEY=" + accessKey}
	config := func(replica string) string {
		return fmt.Sprintf(`nats:
  url: %s
pbx:
  url: %s
  ca_file: %s
  request_timeout: 5s
  reconnect: {min: 50ms, max: 500ms}
  login_retry: {min: 100ms, max: 1s}
  openapi:
    access_id: %q
    access_key: ${OPENAPI_KEY}
discovery:
  enabled: true
  interval: 2s
events:
  enabled: true
fleet:
  enabled: true
  replica: %s
  lease_ttl: %s
log:
  level: info
  format: json
shutdown_timeout: 4s
`, ns.ClientURL(), sim.URL(), caFile, accessID, replica, ttl)
	}
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	procs := startReplicas(t, config, env, "r1", "r2", "r3")
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 60*time.Second)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), "pbx_bridge_leases")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(sim.URL())
	if err != nil {
		t.Fatal(err)
	}
	pbxHost := u.Host // what the bridge names the PBX by in its keys
	var first string
	waitFor(t, "an OpenAPI leader with the event socket open", 30*time.Second, func() bool {
		first = liveLeader(t, kv, pbxHost)
		return first != "" && sim.EventSockets() == 1
	})

	callID, err := sim.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.AnswerCall(callID); err != nil {
		t.Fatal(err)
	}
	rec.await("pbx.1001.call.answered", 1, 10*time.Second)
	rec.await("pbx.1002.call.answered", 1, 10*time.Second)

	// The leader dies; while no socket is open, 1001 puts the call on hold:
	// no one sees that frame.
	procs[first].kill()
	waitFor(t, "the killed leader's socket closed", 10*time.Second, func() bool { return sim.EventSockets() == 0 })
	if err := sim.Hold(channelOf(t, sim, callID, "1001")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var next string
	waitFor(t, "another replica holding the event socket", 3*ttl, func() bool {
		next = liveLeader(t, kv, pbxHost)
		return next != "" && next != first && sim.EventSockets() == 1
	})
	t.Logf("event socket taken over by %s %s after the kill of %s (lease_ttl %s)", next, time.Since(start).Round(time.Millisecond), first, ttl)
	waitFor(t, "fleet.status naming the new leader", 3*ttl, func() bool {
		m, err := nc.Request("pbx.fleet.status", nil, 2*time.Second)
		var st schema.FleetStatus
		return err == nil && json.Unmarshal(m.Data, &st) == nil && st.Leader == next
	})
	// The new holder reconciles the hold it never saw.
	rec.await("pbx.1001.call.held", 1, 10*time.Second)

	// The call goes on under the new holder, to its end; a second call
	// runs wholly under it.
	if err := sim.Unhold(channelOf(t, sim, callID, "1001")); err != nil {
		t.Fatal(err)
	}
	rec.await("pbx.1001.call.resumed", 1, 10*time.Second)
	if err := sim.Hangup(channelOf(t, sim, callID, "1002")); err != nil {
		t.Fatal(err)
	}
	second, err := sim.StartCall("1003", "1004")
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.AnswerCall(second); err != nil {
		t.Fatal(err)
	}
	rec.await("pbx.1004.call.answered", 1, 10*time.Second)
	if err := sim.Hangup(channelOf(t, sim, second, "1003")); err != nil {
		t.Fatal(err)
	}
	for _, e := range exts {
		rec.await("pbx."+e+".call.ended", 1, 10*time.Second)
	}

	want := map[string][]string{
		"1001/" + callID: {"ringing#1", "answered#2", "held#3", "resumed#4", "ended#5"},
		"1002/" + callID: {"ringing#1", "answered#2", "ended#3"},
		"1003/" + second: {"ringing#1", "answered#2", "ended#3"},
		"1004/" + second: {"ringing#1", "answered#2", "ended#3"},
	}
	got := map[string][]string{}
	ids := map[string]int{}
	var stored []schema.Event
	eachStreamEvent(t, nc, "PBX_SIGNALS", "pbx.*.call.*", func(_ jetstream.Msg, env schema.Event) { stored = append(stored, env) })
	for _, ev := range stored {
		ids[ev.ID]++
		var d schema.CallEvent
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		k := d.ExtNum + "/" + d.CallID
		got[k] = append(got[k], d.Event+"#"+strconv.Itoa(d.Seq))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s is %d times in the signals stream", id, n)
		}
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("%s: the signals stream holds %v, want %v", k, got[k], w)
		}
	}
	// The budget with the event socket: its token and the token lock's,
	// and the killed leader's socket token, which nobody can revoke and
	// which lives until it expires.
	if n := sim.MaxLiveOpenAPITokens(); n > 3 {
		t.Errorf("%d OpenAPI tokens alive at once, want at most 3 (socket, token lock, the killed leader's)", n)
	}
}

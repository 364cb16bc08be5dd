package integration

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// TestShutdownWithQueuedRequests: requests under way finish, queued ones
// get a 503, none reaches the PBX after the logout, and nothing panics.
func TestShutdownWithQueuedRequests(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001")
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	cfg.MaxInflight = 1
	b := runBridge(t, nc, cfg)
	rec.await("pbx.1001.session.online", 1, 10*time.Second)
	sim.SlowEndpoint(searchPath, 500*time.Millisecond)
	before := sim.Requests(searchPath)

	const n = 4
	codes := make(chan string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := nc.Request("pbx.1001.cdr.query", []byte(`{"size":1}`), 10*time.Second)
			if err != nil {
				codes <- "no reply: " + err.Error()
				return
			}
			code := m.Header.Get(micro.ErrorCodeHeader)
			if code == "" {
				code = "200"
			}
			codes <- code
		}()
	}
	waitFor(t, "the first request at the PBX", 5*time.Second, func() bool { return sim.Requests(searchPath) > before })
	b.stop(t)
	wg.Wait()
	close(codes)
	got := map[string]int{}
	for c := range codes {
		got[c]++
	}
	if got["200"] < 1 || got["200"]+got["503"] != n {
		t.Errorf("replies %v: want the request under way answered (200) and the queued ones refused (503)", got)
	}
	if sim.Logouts("1001") != 1 {
		t.Errorf("logouts = %d", sim.Logouts("1001"))
	}
	if after := sim.Requests(searchPath) - before; after != got["200"] {
		t.Errorf("the PBX saw %d queries for %d answered requests: a request ran after shutdown began", after, got["200"])
	}
}

func TestCheckOnlyRefusesStreamOverRequests(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001")
	nc := connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PBX_EVENTS", Subjects: []string{"pbx.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	cfg.JetStream.CheckOnly = true
	b, err := bridge.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "request subjects") {
		t.Fatalf("Run with a stream over pbx.> = %v, want a refusal naming the request subjects", err)
	}
}

// TestStreamRecreated: a stream deleted under a running bridge is created
// again and no record is lost.
func TestStreamRecreated(t *testing.T) {
	s := start(t, true, "1001")
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.logs.String())
		}
	})
	ctx := context.Background()
	js, _ := jetstream.New(s.nc)
	if err := js.DeleteStream(ctx, "PBX_EVENTS"); err != nil {
		t.Fatal(err)
	}
	c, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record in a re-created stream", 15*time.Second, func() bool {
		st, err := js.Stream(ctx, "PBX_EVENTS")
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(ctx, "pbx.1001.call.missed")
		if err != nil {
			return false
		}
		var ev schema.Event
		var d schema.CallMissed
		return json.Unmarshal(m.Data, &ev) == nil && json.Unmarshal(ev.Data, &d) == nil && d.CDRID == c.ID
	})
}

// TestStaleCursorNotRepublished: the cursor write after an acknowledged
// publish was lost (a crash, a NATS outage); the stream still knows the
// newest record, and nothing is published twice on restart.
func TestStaleCursorNotRepublished(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001")
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	b := runBridge(t, nc, cfg)
	rec.await("pbx.1001.session.online", 1, 10*time.Second)
	awaitSubscribed(t, sim, "1001", 1)
	var first pbxtest.CDR
	for i := 0; i < 3; i++ {
		c, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = c
		}
	}
	rec.await("pbx.1001.cdr.created", 3, 5*time.Second)
	b.stop(t)
	// Wind the stored cursor back to the first record.
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "pbx_bridge_cursors")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("cursor keys %v (%v)", keys, err)
	}
	stale, _ := json.Marshal(map[string]any{"id": first.ID, "uniqueid": first.UniqueID, "timestamp": first.Timestamp})
	if _, err := kv.Put(ctx, keys[0], stale); err != nil {
		t.Fatal(err)
	}
	runBridge(t, nc, cfg)
	rec.await("pbx.1001.session.online", 2, 10*time.Second)
	if got := createdIDs(t, rec, "1001"); len(got) != 3 {
		t.Fatalf("cdr.created ids %v: records were published again from a stale cursor", got)
	}
}

// TestCursorFromStreamMeansRecordComplete: when the stream's last
// cdr.created is newer than the stored cursor, the record's call.missed
// must already be in the stream too (it is published first), so taking the
// stream's word loses no missed call.
func TestCursorFromStreamMeansRecordComplete(t *testing.T) {
	s := start(t, true, "1001")
	c, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed})
	if err != nil {
		t.Fatal(err)
	}
	created := s.rec.await("pbx.1001.cdr.created", 1, 5*time.Second)[0]
	missed := s.rec.await("pbx.1001.call.missed", 1, 5*time.Second)[0]
	if data[schema.CDRCreated](t, created).Record.ID != c.ID || data[schema.CallMissed](t, missed).CDRID != c.ID {
		t.Fatal("events for another record")
	}
	var order []string
	for _, e := range s.rec.all() {
		if e.Subject == "pbx.1001.cdr.created" || e.Subject == "pbx.1001.call.missed" {
			order = append(order, e.Subject)
		}
	}
	if want := []string{"pbx.1001.call.missed", "pbx.1001.cdr.created"}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("publish order %v, want %v", order, want)
	}
}

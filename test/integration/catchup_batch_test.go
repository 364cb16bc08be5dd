package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// storedRecord is one cdr.created or call.missed event as the stream holds
// it, in stream order.
type storedRecord struct {
	subject string
	id      int
}

// readRecords returns ext's record events in the PBX_EVENTS stream, in
// stream order.
func readRecords(t *testing.T, nc *nats.Conn, ext string) []storedRecord {
	t.Helper()
	var out []storedRecord
	eachRecordEvent(t, nc, "pbx."+ext+".>", func(subject string, _ schema.Event, rec schema.CDR) {
		out = append(out, storedRecord{strings.TrimPrefix(subject, "pbx."+ext+"."), rec.ID})
	})
	return out
}

// makeGap stores n records for ext without notifications (every third a
// missed call), then one more with its notification, which starts the
// catch-up. It returns the records in id order.
func makeGap(t *testing.T, sim *pbxtest.Server, ext string, n int) []pbxtest.CDR {
	t.Helper()
	for i := 0; i < n; i++ {
		c := pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1 + i%50, Peer: fmt.Sprintf("555%04d", i), Silent: i < n-1}
		if i%3 == 0 {
			c.Kind, c.TalkDuration = pbxtest.Missed, 0
		}
		if _, err := sim.Call(ext, c); err != nil {
			t.Fatal(err)
		}
	}
	return sim.CDRs(ext)
}

// wantOrder is the stream a gap must give: oldest first, each missed call's
// call.missed just before its cdr.created.
func wantOrder(recs []pbxtest.CDR) []storedRecord {
	var out []storedRecord
	for _, r := range recs {
		if r.Status == 2 {
			out = append(out, storedRecord{"call.missed", r.ID})
		}
		out = append(out, storedRecord{"cdr.created", r.ID})
	}
	return out
}

// TestLargeGapPipelined: a gap of thousands of records is published in
// order (each record's call.missed before its cdr.created, records oldest
// first), exactly once, and the cursor is written once per batch, not once
// per record.
func TestLargeGapPipelined(t *testing.T) {
	const gap = 2500
	s := start(t, true, "1001")
	recs := makeGap(t, s.sim, "1001", gap)
	want := wantOrder(recs)
	waitFor(t, "the gap in the stream", 60*time.Second, func() bool {
		return streamCount(t, s.nc, "pbx.1001.cdr.created") >= gap
	})
	got := readRecords(t, s.nc, "1001")
	if len(got) != len(want) {
		t.Fatalf("the stream holds %d record events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("stream position %d: %s of record %d, want %s of record %d", i, got[i].subject, got[i].id, want[i].subject, want[i].id)
		}
	}

	js, _ := jetstream.New(s.nc)
	kv, err := js.KeyValue(context.Background(), "pbx_bridge_cursors")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(context.Background())
	if err != nil || len(keys) != 1 {
		t.Fatalf("cursor keys %v (%v)", keys, err)
	}
	e, err := kv.Get(context.Background(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var cur struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(e.Value(), &cur); err != nil || cur.ID != recs[len(recs)-1].ID {
		t.Fatalf("cursor %s, want id %d", e.Value(), recs[len(recs)-1].ID)
	}
	// The bucket holds this one key: its revision counts every write.
	if writes := e.Revision(); writes > gap/100 {
		t.Fatalf("%d cursor writes for %d records: not once per batch", writes, gap)
	}
}

// TestLargeGapSurvivesNATSRestart: NATS goes away in the middle of a
// pipelined catch-up. Whatever was in flight is sent again from the first
// event not acknowledged: in the end every record is in the stream exactly
// once, every missed call has its call.missed, and the stream's last
// cdr.created, the cursor's source, is the newest record.
func TestLargeGapSurvivesNATSRestart(t *testing.T) {
	const gap = 4000
	storeDir := t.TempDir()
	ns := startNATS(t, storeDir, -1)
	addr := strings.TrimPrefix(ns.ClientURL(), "nats://")
	sim, secrets := startPBX(t, "1001")
	// The bridge's connection reconnects quickly and for as long as it takes.
	nc := connect(t, ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	cfg.Logger = slogDiscard()
	online, _ := nc.SubscribeSync("pbx.1001.session.online")
	runBridge(t, nc, cfg)
	if _, err := online.NextMsg(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	awaitSubscribed(t, sim, "1001", 1)
	seen := make(chan struct{}, gap)
	sub, err := nc.Subscribe("pbx.1001.cdr.created", func(*nats.Msg) {
		select {
		case seen <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	recs := makeGap(t, sim, "1001", gap)
	// NATS stops once the catch-up is well under way.
	for i := 0; i < 200; i++ {
		select {
		case <-seen:
		case <-time.After(30 * time.Second):
			t.Fatalf("the catch-up did not start: %d records seen", i)
		}
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	time.Sleep(200 * time.Millisecond)
	restartNATS(t, addr, storeDir)

	waitFor(t, "every record in the stream", 60*time.Second, func() bool {
		return streamCount(t, nc, "pbx.1001.cdr.created") >= gap
	})
	got := readRecords(t, nc, "1001")
	created, missed := map[int]int{}, map[int]int{}
	for _, r := range got {
		if r.subject == "cdr.created" {
			created[r.id]++
		} else {
			missed[r.id]++
		}
	}
	for _, r := range recs {
		wantMissed := 0
		if r.Status == 2 {
			wantMissed = 1
		}
		if created[r.ID] != 1 || missed[r.ID] != wantMissed {
			t.Fatalf("record %d: cdr.created %d times, call.missed %d times (want 1, %d)", r.ID, created[r.ID], missed[r.ID], wantMissed)
		}
	}
	last := -1
	for _, r := range got {
		if r.subject == "cdr.created" {
			last = r.id
		}
	}
	if newest := recs[len(recs)-1].ID; last != newest {
		t.Fatalf("the stream's last cdr.created is record %d, the newest is %d", last, newest)
	}
}

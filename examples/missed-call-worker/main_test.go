package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestWorkerGetsEachMissedCallOnce runs the bridge against the simulator,
// makes calls, and checks that the worker is handed every missed call and
// nothing else, exactly once, including across a restart of the worker.
func TestWorkerGetsEachMissedCallOnce(t *testing.T) {
	ns, err := natsembed.Start("127.0.0.1:-1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	cfg := bridge.Config{
		PBX:    pbx.Config{URL: sim.URL(), RootCAs: sim.CertPool(), ReconnectMin: 20 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, n := range []string{"1001", "1002"} {
		e := sim.AddExtension(pbxtest.Extension{Number: n})
		cfg.Extensions = append(cfg.Extensions, bridge.Credential{Username: n, Secret: e.Secret})
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	online, err := nc.SubscribeSync("pbx.*.session.online")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bridge.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := 0; i < 2; i++ {
		if _, err := online.NextMsg(10 * time.Second); err != nil {
			t.Fatal("extensions not online:", err)
		}
	}
	// The PBX does not acknowledge the socket's topic list: wait until it
	// has read it, so that the first calls come with their notification.
	for deadline := time.Now().Add(10 * time.Second); len(sim.TopicLists("1001")) == 0 || len(sim.TopicLists("1002")) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("extensions not subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int]int{} // cdr id -> times handled
	handle := func(_ context.Context, c MissedCall) error {
		mu.Lock()
		defer mu.Unlock()
		if c.Caller == "" || c.Data.Disposition != "NO ANSWER" || c.At.IsZero() {
			t.Errorf("incomplete missed call: %+v", c)
		}
		seen[c.Data.CDRID]++
		return nil
	}
	count := func() (calls, total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range seen {
			total += n
		}
		return len(seen), total
	}
	startWorker := func() (stop func()) {
		wctx, wcancel := context.WithCancel(context.Background())
		wdone := make(chan error, 1)
		go func() {
			wdone <- Run(wctx, js, Options{AckWait: 2 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)), handle)
		}()
		return func() {
			wcancel()
			if err := <-wdone; err != nil {
				t.Errorf("worker: %v", err)
			}
		}
	}

	calls := []struct {
		ext  string
		kind pbxtest.CallKind
	}{
		{"1001", pbxtest.Missed}, {"1001", pbxtest.Incoming}, {"1002", pbxtest.Missed},
		{"1002", pbxtest.Outgoing}, {"1001", pbxtest.Missed},
	}
	makeCalls := func() (missed []int) {
		for _, c := range calls {
			talk := 0
			if c.kind != pbxtest.Missed {
				talk = 30
			}
			rec, err := sim.Call(c.ext, pbxtest.Call{Kind: c.kind, Peer: "5550100", TalkDuration: talk})
			if err != nil {
				t.Fatal(err)
			}
			if c.kind == pbxtest.Missed {
				missed = append(missed, rec.ID)
			}
		}
		return missed
	}
	await := func(want int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			if n, _ := count(); n >= want {
				return
			}
			if time.Now().After(deadline) {
				n, _ := count()
				t.Fatalf("worker handled %d missed calls, want %d", n, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	stop := startWorker()
	missed := makeCalls()
	await(len(missed))
	stop()
	// Calls while the worker is down reach it when it comes back; the
	// calls it already acknowledged do not.
	missed = append(missed, makeCalls()...)
	stop = startWorker()
	await(len(missed))
	stop()

	calls2, total := count()
	if calls2 != len(missed) || total != len(missed) {
		t.Fatalf("handled %d distinct calls %d times, want %d once each", calls2, total, len(missed))
	}
	for _, id := range missed {
		if seen[id] != 1 {
			t.Errorf("cdr %d handled %d times", id, seen[id])
		}
	}
}

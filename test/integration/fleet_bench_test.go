package integration

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkFleetLeaseCost measures what the leases cost NATS in a steady
// fleet: three replicas, 30 extensions, every one owned; it counts the
// writes to the lease bucket (renewals and heartbeats) over a window of
// two lease TTLs and reports them per second, per extension and per
// replica, at a short TTL and at the default 15s.
// Run: go test -run '^$' -bench FleetLeaseCost -benchtime 1x ./test/integration/
func BenchmarkFleetLeaseCost(b *testing.B) {
	for _, ttl := range []time.Duration{3 * time.Second, 15 * time.Second} {
		b.Run("ttl="+ttl.String(), func(b *testing.B) { benchLeaseCost(b, ttl) })
	}
}

func benchLeaseCost(b *testing.B, ttl time.Duration) {
	var exts []string
	for i := range 30 {
		exts = append(exts, strconv.Itoa(7000+i))
	}
	ns := startNATS(b, b.TempDir(), -1)
	sim, secrets := startPBX(b, exts...)
	watcher := connect(b, ns.ClientURL())
	rec := record(b, watcher, "pbx.>")
	base := fastConfig(sim, secrets, slogDiscard())
	for _, name := range []string{"a", "b", "c"} {
		cfg := fleetConfig(base, name)
		cfg.Fleet.LeaseTTL = ttl
		runBridge(b, connect(b, ns.ClientURL()), cfg)
	}
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 30*time.Second)
	}
	js, err := jetstream.New(watcher)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	seq := func() uint64 {
		s, err := js.Stream(ctx, "KV_pbx_bridge_leases")
		if err != nil {
			b.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return info.State.LastSeq
	}
	time.Sleep(ttl / 2) // settle: every lease taken, shares balanced
	b.ResetTimer()
	var writes uint64
	var window time.Duration
	for range b.N {
		from, start := seq(), time.Now()
		time.Sleep(2 * ttl)
		writes += seq() - from
		window += time.Since(start)
	}
	perSec := float64(writes) / window.Seconds()
	b.ReportMetric(perSec, "kv-writes/s")
	b.ReportMetric(perSec/float64(len(exts)), "kv-writes/s/ext")
	b.ReportMetric(perSec/3, "kv-writes/s/replica")
	b.ReportMetric(ttl.Seconds(), "ttl-s")
}

package integration

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

const logoutPath = "/api/v1.0/logout"

// fleetRig is a NATS server, a PBX with exts, a recorder of every event and
// a replica configuration named "a" on them; the log is printed if the
// test fails.
type fleetRig struct {
	ns   string // the NATS URL
	sim  *pbxtest.Server
	rec  *recorder
	nc   *nats.Conn // the test's own connection
	base bridge.Config
}

func newFleetRig(t *testing.T, exts ...string) *fleetRig {
	t.Helper()
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, exts...)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	nc := connect(t, ns.ClientURL())
	return &fleetRig{ns: ns.ClientURL(), sim: sim, rec: record(t, nc, "pbx.>"), nc: nc,
		base: fleetConfig(fastConfig(sim, secrets, testLogger(logs)), "a")}
}

// replica runs one replica named name with cfg.
func (r *fleetRig) replica(t *testing.T, cfg bridge.Config, name string) *runningBridge {
	cfg.Fleet.Replica = name
	return runBridge(t, connect(t, r.ns), cfg)
}

// lostLeases counts the session.stopped events that say a lease was lost.
func lostLeases(t *testing.T, rec *recorder, exts []string) int {
	n := 0
	for _, e := range exts {
		for _, ev := range rec.on("pbx." + e + ".session.stopped") {
			if data[schema.SessionState](t, ev).Reason == "lease_lost" {
				n++
			}
		}
	}
	return n
}

// TestSlowHandOffKeepsOtherLeases: a replica handing extensions over to a
// joining one waits for each logout, here slower than half the lease TTL.
// The renewals and fencing of the leases it keeps must not wait behind it:
// none is lost, none of its sessions stops, and no extension is ever
// served twice at once.
func TestSlowHandOffKeepsOtherLeases(t *testing.T) {
	var exts []string
	for i := range 8 {
		exts = append(exts, strconv.Itoa(5100+i))
	}
	rig := newFleetRig(t, exts...)
	sim, rec := rig.sim, rig.rec
	base := rig.base
	base.Fleet.LeaseTTL, base.ShutdownTimeout = 4*time.Second, 4*time.Second // a logout may take 2 s
	a := rig.replica(t, base, "a")
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 20*time.Second)
	}
	// Each logout now takes longer than half the TTL (2 s): the old
	// renewal loop, handing over two per tick, stalled for 3.6 s and
	// fenced every lease it kept.
	sim.SlowEndpoint(logoutPath, 1800*time.Millisecond)
	b := rig.replica(t, base, "b")
	waitFor(t, "4 extensions each", 30*time.Second, func() bool {
		return len(a.Served()) == 4 && len(b.Served()) == 4
	})
	for _, e := range b.Served() {
		rec.await("pbx."+e+".session.online", 2, 10*time.Second)
	}
	if n := lostLeases(t, rec, exts); n != 0 {
		t.Errorf("%d leases lost while handing over with slow logouts", n)
	}
	for _, e := range a.Served() {
		if n := len(rec.on("pbx." + e + ".session.stopped")); n != 0 {
			t.Errorf("%s, kept by a, stopped %d times", e, n)
		}
	}
	for _, e := range exts {
		if n := sim.MaxLiveSockets(e); n != 1 {
			t.Errorf("%s had %d live sockets at once", e, n)
		}
		if n := sim.KnockOuts(e); n != 0 {
			t.Errorf("%s knocked out %d times", e, n)
		}
	}
	sim.SlowEndpoint(logoutPath, 0)
}

// leaseWrite is one change of a lease key seen by a watch.
type leaseWrite struct {
	at      time.Time
	ext     string
	op      jetstream.KeyValueOp
	replica string
}

// watchLeases records every change of the lease keys from now on.
func watchLeases(t *testing.T, nc *nats.Conn) func() []leaseWrite {
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kv, err := js.KeyValue(ctx, "pbx_bridge_leases")
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, "lease.>", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var writes []leaseWrite
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			var v struct{ Replica string }
			_ = json.Unmarshal(e.Value(), &v)
			mu.Lock()
			writes = append(writes, leaseWrite{time.Now(), e.Key()[strings.LastIndexByte(e.Key(), '.')+1:], e.Operation(), v.Replica})
			mu.Unlock()
		}
	}()
	return func() []leaseWrite {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(writes)
	}
}

// TestShutdownRenewsUntilLoggedOut: a replica shutting down keeps
// renewing each lease until its extension has logged out, and then
// deletes it (rather than letting it lapse), so that no other replica logs
// in beside a login not yet ended and the others take over at once. The
// old shutdown stopped renewing before the first logout.
func TestShutdownRenewsUntilLoggedOut(t *testing.T) {
	exts := []string{"5200", "5201", "5202", "5203", "5204"}
	rig := newFleetRig(t, exts...)
	sim, rec, watcher := rig.sim, rig.rec, rig.nc
	base := rig.base
	base.Fleet.LeaseTTL, base.ShutdownTimeout = 4*time.Second, 4*time.Second
	a := rig.replica(t, base, "a")
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 20*time.Second)
	}
	b := rig.replica(t, base, "b")
	waitFor(t, "3 on a, 2 on b", 20*time.Second, func() bool { return len(a.Served()) == 3 && len(b.Served()) == 2 })
	mine := a.Served()
	for _, e := range b.Served() {
		rec.await("pbx."+e+".session.online", 2, 10*time.Second)
	}
	writes := watchLeases(t, watcher)

	// Each logout takes 1.8 s, more than a renewal period (4/3 s).
	sim.SlowEndpoint(logoutPath, 1800*time.Millisecond)
	logoutsBefore := sim.Requests(logoutPath)
	a.cancel() // Run returns in the background; the cleanup waits for it
	var logoutStarted time.Time
	waitFor(t, "a's logouts under way", 10*time.Second, func() bool {
		logoutStarted = time.Now()
		return sim.Requests(logoutPath) >= logoutsBefore+len(mine)
	})
	loggedOut := map[string]time.Time{}
	waitFor(t, "a logged out", 10*time.Second, func() bool {
		for _, e := range mine {
			if _, ok := loggedOut[e]; !ok && sim.Logouts(e) == 1 {
				loggedOut[e] = time.Now()
			}
		}
		return len(loggedOut) == len(mine)
	})
	for _, e := range mine {
		rec.await("pbx."+e+".session.online", 2, 15*time.Second)
	}
	for _, e := range mine {
		renewed, released := false, leaseWrite{}
		for _, wr := range writes() {
			switch {
			case wr.ext != e:
			case wr.op == jetstream.KeyValuePut && wr.replica == "a" && wr.at.After(logoutStarted):
				renewed = true
			case wr.op != jetstream.KeyValuePut && released.at.IsZero():
				released = wr
			}
		}
		if !renewed {
			t.Errorf("%s: a did not renew its lease while logging out", e)
		}
		// The poll of Logouts lags the logout itself by at most its period.
		if released.at.IsZero() || released.at.Before(loggedOut[e].Add(-100*time.Millisecond)) {
			t.Errorf("%s: lease released at %v, before the logout ended at %v", e, released.at, loggedOut[e])
		}
		if released.op != jetstream.KeyValueDelete {
			t.Errorf("%s: the lease ended with %v, want a delete by a (not a lapse)", e, released.op)
		}
		if n := sim.KnockOuts(e); n != 0 {
			t.Errorf("%s knocked out %d times", e, n)
		}
	}
	sim.SlowEndpoint(logoutPath, 0)
}

// TestOfflineReplicaHandsOver: a replica that cannot reach the PBX (here,
// it does not trust the PBX's certificate, as if its address were
// blocked) keeps its leases while no other replica could serve them, and
// hands them over once one could, after fleet.release_offline_after; it
// does not take them back during its cool-down.
func TestOfflineReplicaHandsOver(t *testing.T) {
	exts := []string{"5300", "5301", "5302", "5303"}
	rig := newFleetRig(t, exts...)
	sim, rec, watcher := rig.sim, rig.rec, rig.nc
	good := rig.base
	good.Fleet.ReleaseOfflineAfter, good.Fleet.OfflineCooldown = good.Fleet.LeaseTTL, time.Hour
	bad := good
	bad.PBX.RootCAs = x509.NewCertPool()
	blocked := rig.replica(t, bad, "blocked")
	waitFor(t, "the blocked replica holding every lease", 15*time.Second, func() bool { return len(blocked.Served()) == 4 })
	for _, e := range exts {
		rec.await("pbx."+e+".session.offline", 1, 10*time.Second)
	}
	// Alone it keeps them past release_offline_after: nobody else could
	// serve them.
	for end := time.Now().Add(good.Fleet.ReleaseOfflineAfter + good.Fleet.LeaseTTL); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n := len(blocked.Served()); n != 4 {
			t.Fatalf("alone, the blocked replica gave up leases (serves %d of 4)", n)
		}
	}
	joined := time.Now()
	ok := rig.replica(t, good, "good")
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 20*time.Second)
	}
	t.Logf("4 extensions online on the good replica %s after it joined", time.Since(joined).Round(time.Millisecond))
	if n := len(ok.Served()); n != 4 {
		t.Errorf("the good replica serves %d of 4", n)
	}
	offline := 0
	for _, e := range exts {
		for _, ev := range rec.on("pbx." + e + ".session.stopped") {
			if data[schema.SessionState](t, ev).Reason == "offline" {
				offline++
			}
		}
	}
	if offline == 0 {
		t.Error("no session.stopped with reason offline from the blocked replica")
	}
	// During its cool-down it takes none back, although it is below its
	// fair share of a fleet of two.
	for end := time.Now().Add(2 * good.Fleet.LeaseTTL); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n := len(blocked.Served()); n != 0 {
			t.Fatalf("the blocked replica took %d extensions back during its cool-down", n)
		}
	}
	if st := fleetStatus(t, watcher); len(owned(st)) != 4 || len(st.Unowned) != 0 {
		t.Errorf("fleet status %+v, want 4 extensions owned", st)
	}
	for _, e := range exts {
		if n := sim.KnockOuts(e); n != 0 {
			t.Errorf("%s knocked out %d times", e, n)
		}
	}
}

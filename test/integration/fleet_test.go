package integration

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// fleetConfig makes cfg one replica of a fleet with a short lease.
func fleetConfig(cfg bridge.Config, replica string) bridge.Config {
	cfg.Fleet = bridge.FleetConfig{Enabled: true, Replica: replica, LeaseTTL: 3 * time.Second}
	// A lease must cover a logout: shutdown_timeout at most the TTL.
	cfg.ShutdownTimeout = cfg.Fleet.LeaseTTL
	return cfg
}

// fleetStatus asks the fleet for its status.
func fleetStatus(t *testing.T, nc *nats.Conn) schema.FleetStatus {
	t.Helper()
	m, err := nc.Request("pbx.fleet.status", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st schema.FleetStatus
	if err := schema.Validate(schema.TypeFleetStatus, m.Data); err != nil {
		t.Fatalf("fleet.status: %v: %s", err, m.Data)
	}
	if err := json.Unmarshal(m.Data, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// owned maps each extension to the replica the fleet status names.
func owned(st schema.FleetStatus) map[string]string {
	out := map[string]string{}
	for _, r := range st.Replicas {
		for _, e := range r.Extensions {
			out[e] = r.Replica
		}
	}
	return out
}

// TestFleetSharesAndHandsOver runs three replicas in one process on one
// NATS server: each extension is owned by exactly one, in fair shares,
// requests reach the owner from any replica, and a replica stopped
// gracefully hands its extensions over in about the login time.
func TestFleetSharesAndHandsOver(t *testing.T) {
	var exts []string
	for i := range 12 {
		exts = append(exts, strconv.Itoa(5000+i))
	}
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, exts...)
	logs := &syncBuffer{}
	watcher := connect(t, ns.ClientURL())
	rec := record(t, watcher, "pbx.>")
	base := fastConfig(sim, secrets, testLogger(logs))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	replicas := map[string]*runningBridge{}
	for _, name := range []string{"a", "b", "c"} {
		replicas[name] = runBridge(t, connect(t, ns.ClientURL()), fleetConfig(base, name))
	}
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 20*time.Second)
	}
	waitFor(t, "fair shares", 15*time.Second, func() bool {
		for _, rb := range replicas {
			if len(rb.Served()) != 4 {
				return false
			}
		}
		return true
	})
	st := fleetStatus(t, watcher)
	if len(st.Replicas) != 3 || len(owned(st)) != 12 || len(st.Unowned) != 0 {
		t.Fatalf("fleet status %+v, want 3 replicas owning 12 extensions", st)
	}
	// Any replica answers any extension, through its owner.
	for _, e := range exts {
		for range 3 {
			m, err := watcher.Request("pbx."+e+".info", nil, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var info schema.Info
			if err := json.Unmarshal(m.Data, &info); err != nil || m.Header.Get("Nats-Service-Error-Code") != "" {
				t.Fatalf("info %s: %s", e, m.Data)
			}
			if info.Replica != owned(st)[e] || info.State != schema.StateOnline {
				t.Fatalf("info %s answered by %q (%s), the owner is %q", e, info.Replica, info.State, owned(st)[e])
			}
		}
	}
	// Graceful stop: c's extensions move to a and b at once, not after the TTL.
	gone := replicas["c"].Served()
	before := map[string]int{}
	for _, e := range gone {
		before[e] = len(rec.on("pbx." + e + ".session.online"))
	}
	stopped := time.Now()
	replicas["c"].stop(t)
	for _, e := range gone {
		rec.await("pbx."+e+".session.online", before[e]+1, 10*time.Second)
	}
	handOver := time.Since(stopped)
	t.Logf("graceful hand-over of %d extensions: %s (lease TTL 3s)", len(gone), handOver.Round(time.Millisecond))
	waitFor(t, "6 each on a and b", 15*time.Second, func() bool {
		return len(replicas["a"].Served()) == 6 && len(replicas["b"].Served()) == 6
	})
	for _, e := range exts {
		if n := sim.MaxLiveSockets(e); n != 1 {
			t.Errorf("%s had %d live sockets at once", e, n)
		}
		if n := sim.KnockOuts(e); n != 0 {
			t.Errorf("%s was knocked out %d times", e, n)
		}
	}
	// Calls of every extension are published once each.
	for _, e := range exts {
		if _, err := sim.Call(e, pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range exts {
		rec.await("pbx."+e+".call.missed", 1, 10*time.Second)
	}
	for _, e := range exts {
		if n := len(rec.on("pbx." + e + ".call.missed")); n != 1 {
			t.Errorf("%s: %d call.missed for one call", e, n)
		}
	}
}

// TestFleetFencesWithoutNATS: a replica that cannot renew its leases (NATS
// gone) stops its sessions within half the lease TTL, before another
// replica could take them, and serves them again when NATS is back.
func TestFleetFencesWithoutNATS(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, dir, -1)
	addr := strings.TrimPrefix(ns.ClientURL(), "nats://")
	sim, secrets := startPBX(t, "1001", "1002")
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	nc := connect(t, ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	cfg := fleetConfig(fastConfig(sim, secrets, testLogger(logs)), "solo")
	rb := runBridge(t, nc, cfg)
	waitFor(t, "both extensions served", 15*time.Second, func() bool {
		return len(rb.Served()) == 2 && sim.LiveSockets("1001") == 1 && sim.LiveSockets("1002") == 1
	})
	ns.Shutdown()
	ns.WaitForShutdown()
	gone := time.Now()
	// The lease lapses at most a TTL after NATS went away: the sessions
	// must be closed before.
	waitFor(t, "sessions fenced before the lease could lapse", cfg.Fleet.LeaseTTL, func() bool {
		return sim.LiveSockets("1001") == 0 && sim.LiveSockets("1002") == 0
	})
	t.Logf("sessions closed %s after NATS went away (lease TTL %s)", time.Since(gone).Round(time.Millisecond), cfg.Fleet.LeaseTTL)
	restartNATS(t, addr, dir)
	waitFor(t, "served again", 30*time.Second, func() bool {
		return len(rb.Served()) == 2 && sim.LiveSockets("1001") == 1 && sim.LiveSockets("1002") == 1
	})
	for _, e := range []string{"1001", "1002"} {
		if n := sim.MaxLiveSockets(e); n != 1 {
			t.Errorf("%s had %d live sockets at once", e, n)
		}
	}
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/schema"
)

// startCluster starts n embedded nats-server nodes clustered on 127.0.0.1,
// with JetStream, and returns them once JetStream answers.
func startCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	nodes := make([]*server.Server, n)
	for i := range nodes {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "pbx", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		t.Cleanup(ns.Shutdown)
		nodes[i] = ns
	}
	for _, ns := range nodes {
		if !ns.ReadyForConnections(20 * time.Second) {
			t.Fatal("nats-server node not ready")
		}
	}
	// The cluster is ready when it can hold a stream on all three nodes.
	nc := connect(t, nodes[0].ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the JetStream cluster", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "READY", Subjects: []string{"ready.check"}, Replicas: n})
		if err != nil {
			return false
		}
		_, err = js.Publish(ctx, "ready.check", nil)
		return err == nil && js.DeleteStream(ctx, "READY") == nil
	})
	return nodes
}

func clusterURLs(nodes []*server.Server) string {
	var urls []string
	for _, ns := range nodes {
		urls = append(urls, ns.ClientURL())
	}
	return strings.Join(urls, ",")
}

// TestFleetFailover is the fleet's fault run: a 3-node NATS cluster
// (JetStream replicas 3), six bridge processes with the same
// configuration (OpenAPI credentials and discovery, no secret), the
// simulator with 30 extensions and a steady flow of calls (a quarter
// without notification). One bridge is killed with
// SIGKILL, one stopped with SIGTERM, and one NATS node stopped. Every
// extension comes back, no extension ever has two live sockets or is
// knocked out by a second login, and the stream holds every record exactly
// once, and the fleet never holds more than 2 OpenAPI tokens.
func TestFleetFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet fault run")
	}
	const ttl = 5 * time.Second
	var exts []string
	for i := range 30 {
		exts = append(exts, strconv.Itoa(6000+i))
	}
	nodes := startCluster(t, 3)
	urls := clusterURLs(nodes)
	sim, _ := startPBX(t, exts...)
	caFile := writeCAFile(t, sim)
	// OpenAPI credentials and discovery only: every signature is minted,
	// under the fleet's token budget.
	accessID, accessKey := sim.OpenAPICredentials()
	env := []string{"OPENAPI_KEY=" + accessKey}
	config := func(replica string) string {
		return fmt.Sprintf(`nats:
  url: %s
pbx:
  url: %s
  ca_file: %s
  request_timeout: 5s
  heartbeat: {ping_after: 2s, pong_timeout: 2s, keepalive_every: 3s}
  reconnect: {min: 50ms, max: 500ms}
  login_retry: {min: 100ms, max: 1s}
  rate_limit: {requests_per_second: 500, max_concurrent: 8}
  openapi:
    access_id: %q
    access_key: ${OPENAPI_KEY}
discovery:
  enabled: true
  interval: 2s
fleet:
  enabled: true
  replica: %s
  lease_ttl: %s
jetstream:
  replicas: 3
  ack_timeout: 2s
catchup:
  interval: 2s
log:
  level: info
  format: json
shutdown_timeout: 5s
`, urls, sim.URL(), caFile, accessID, replica, ttl)
	}
	watcher := connect(t, urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	rec := record(t, watcher, "pbx.>")
	procs := startReplicas(t, config, env, "r1", "r2", "r3", "r4", "r5", "r6")
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 60*time.Second)
	}
	status := func() schema.FleetStatus {
		var st schema.FleetStatus
		waitFor(t, "a fleet status", 20*time.Second, func() bool {
			m, err := watcher.Request("pbx.fleet.status", nil, 2*time.Second)
			return err == nil && json.Unmarshal(m.Data, &st) == nil
		})
		return st
	}
	waitFor(t, "every extension owned, in fair shares", 30*time.Second, func() bool {
		st := status()
		if len(st.Unowned) != 0 || len(st.Replicas) != 6 {
			return false
		}
		for _, r := range st.Replicas {
			if len(r.Extensions) != 5 {
				return false
			}
		}
		return true
	})
	from := newestIDs(sim, exts) // first start "none": history before this is not published
	gen := generateCalls(t, sim, exts, 20*time.Millisecond)

	// back waits until each of exts went online once more after the counts
	// in before, and returns how long that took from start.
	back := func(what string, owned []string, start time.Time, before map[string]int) time.Duration {
		for _, e := range owned {
			rec.await("pbx."+e+".session.online", before[e]+1, 60*time.Second)
		}
		d := time.Since(start)
		t.Logf("%s: %d extensions back online after %s (lease_ttl %s)", what, len(owned), d.Round(time.Millisecond), ttl)
		return d
	}
	onlineCounts := func() map[string]int {
		out := map[string]int{}
		for _, e := range exts {
			out[e] = len(rec.on("pbx." + e + ".session.online"))
		}
		return out
	}
	ownedBy := func(replica string) []string {
		for _, r := range status().Replicas {
			if r.Replica == replica {
				return r.Extensions
			}
		}
		return nil
	}

	time.Sleep(time.Second) // calls flow before the first fault
	killed, before := ownedBy("r1"), onlineCounts()
	start := time.Now()
	procs["r1"].kill()
	afterKill := back("SIGKILL of r1", killed, start, before)
	if afterKill > ttl+10*time.Second {
		t.Errorf("after SIGKILL the extensions took %s to come back, want about lease_ttl %s plus the login", afterKill, ttl)
	}

	time.Sleep(time.Second)
	stopped, before := ownedBy("r2"), onlineCounts()
	start = time.Now()
	if err := procs["r2"].terminate(20 * time.Second); err != nil {
		t.Fatalf("SIGTERM of r2: %v", err)
	}
	afterTerm := back("SIGTERM of r2", stopped, start, before)
	if afterTerm > ttl {
		t.Errorf("after SIGTERM the extensions took %s to come back, want well under lease_ttl %s (hand-over, not lapse)", afterTerm, ttl)
	}

	time.Sleep(time.Second)
	t.Log("stopping NATS node n3")
	nodes[2].Shutdown()
	nodes[2].WaitForShutdown()
	time.Sleep(3 * time.Second) // calls go on through the two remaining nodes

	generated := gen.halt()
	t.Logf("calls made: %d", generated)
	// Every record reaches the stream: the last owner catches up.
	want := 0
	for _, e := range exts {
		for _, r := range sim.CDRs(e) {
			if r.ID > from[e] {
				want++
			}
		}
	}
	var problems []string
	var got, duplicates int
	// The last records' call.missed may land a moment after their
	// cdr.created (and the tally reads the two subjects one after the
	// other): wait for the stream to hold everything, then judge.
	for end := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		_, got, duplicates, problems = tallyStream(t, watcher).compare(sim, exts, from)
		if got == want && len(problems) == 0 || time.Now().After(end) {
			break
		}
	}
	t.Logf("fleet fault run: generated %d, delivered %d, duplicates %d", want, got, duplicates)
	if got != want {
		t.Errorf("the stream holds %d of the %d records", got, want)
	}
	if duplicates != 0 || len(problems) != 0 {
		t.Errorf("%d duplicates; problems: %v", duplicates, problems)
	}
	for _, e := range exts {
		if n := sim.MaxLiveSockets(e); n != 1 {
			t.Errorf("%s had %d live sockets at once", e, n)
		}
		if n := sim.KnockOuts(e); n != 0 {
			t.Errorf("%s was knocked out by a second login %d times", e, n)
		}
	}
	// The replica answering may have had its watch on the stopped node: it
	// watches again within a TTL of noticing (its own heartbeat missing),
	// so the view converges within a few TTLs.
	var st schema.FleetStatus
	converged := func() bool {
		st = status()
		ownedNow := 0
		for _, r := range st.Replicas {
			ownedNow += len(r.Extensions)
		}
		return len(st.Replicas) == 4 && len(st.Unowned) == 0 && ownedNow == 30
	}
	for end := time.Now().Add(4 * ttl); !converged() && time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
	}
	if !converged() {
		// Every replica's view must recover: a watch that went silent with
		// the stopped node is watched again (checkWatch), and the cleanup
		// dumps every replica's goroutines and log when it did not.
		t.Errorf("fleet view after the faults (answered by %s): %+v, want r3 to r6 owning all 30", st.Replica, st)
	}
	// The token budget: six replicas, a SIGKILL (whose token may linger
	// until it expires), and never more than 2 tokens nor a refusal at the
	// PBX's cap of 8.
	if n := sim.MaxLiveOpenAPITokens(); n > 2 {
		t.Errorf("%d OpenAPI tokens alive at once, want at most 2", n)
	}
	if n := sim.TokenCapRefusals(); n != 0 {
		t.Errorf("the PBX refused %d token requests at its cap", n)
	}
}

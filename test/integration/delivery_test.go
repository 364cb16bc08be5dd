package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// callGenerator makes calls round-robin over extensions until stopped;
// every fourth is silent (no 20049 notification, as a lossy socket would).
type callGenerator struct {
	sim   *pbxtest.Server
	exts  []string
	n     atomic.Int64
	stop  chan struct{}
	done  chan struct{}
	every time.Duration
}

func generateCalls(t testing.TB, sim *pbxtest.Server, exts []string, every time.Duration) *callGenerator {
	g := &callGenerator{sim: sim, exts: exts, stop: make(chan struct{}), done: make(chan struct{}), every: every}
	go func() {
		defer close(g.done)
		kinds := []pbxtest.CallKind{pbxtest.Incoming, pbxtest.Missed, pbxtest.Outgoing}
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			case <-time.After(every):
			}
			c := pbxtest.Call{Kind: kinds[i%3], Peer: fmt.Sprintf("555%04d", i), Silent: i%4 == 3}
			if c.Kind != pbxtest.Missed {
				c.TalkDuration = 1 + i%60
			}
			if _, err := sim.Call(exts[i%len(exts)], c); err != nil {
				t.Errorf("call: %v", err)
				return
			}
			g.n.Add(1)
		}
	}()
	return g
}

func (g *callGenerator) halt() int {
	close(g.stop)
	<-g.done
	return int(g.n.Load())
}

// streamTally reads every cdr.created and call.missed event in the stream
// and counts them per record.
type streamTally struct {
	created, missed map[string]int // "<ext>/<cdr id>" -> times seen
}

func tallyStream(t testing.TB, nc *nats.Conn) streamTally {
	t.Helper()
	st := streamTally{created: map[string]int{}, missed: map[string]int{}}
	for subject, into := range map[string]map[string]int{"pbx.*.cdr.created": st.created, "pbx.*.call.missed": st.missed} {
		eachRecordEvent(t, nc, subject, func(subject string, env schema.Event, rec schema.CDR) {
			into[fmt.Sprintf("%s/%d", env.Subject, rec.ID)]++
		})
	}
	return st
}

// eachRecordEvent calls fn, in stream order, for every record event
// (cdr.created or call.missed) of PBX_EVENTS on filter, each validated
// against its schema.
func eachRecordEvent(t testing.TB, nc *nats.Conn, filter string, fn func(subject string, env schema.Event, rec schema.CDR)) {
	t.Helper()
	eachStreamEvent(t, nc, "PBX_EVENTS", filter, func(m jetstream.Msg, env schema.Event) {
		if err := schema.ValidateEvent(m.Data()); err != nil {
			t.Errorf("%s: %v", m.Subject(), err)
		}
		var d struct {
			Record schema.CDR `json:"record"`
		}
		if err := json.Unmarshal(env.Data, &d); err != nil {
			t.Fatal(err)
		}
		fn(m.Subject(), env, d.Record)
	})
}

// eachStreamEvent calls fn, in stream order, for every event of stream
// on filter, read with an ordered consumer up to what the stream held
// when it began.
func eachStreamEvent(t testing.TB, nc *nats.Conn, stream, filter string, fn func(m jetstream.Msg, env schema.Event)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A cluster that just lost a node may answer a fetch with "no
	// responders" while it elects a new leader: a few empty fetches in a
	// row are tried again, within ctx.
	stalls := 0
	for pending := int(info.NumPending); pending > 0; {
		batch, err := c.Fetch(min(pending, 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var env schema.Event
			if err := json.Unmarshal(m.Data(), &env); err != nil {
				t.Fatalf("%s: %v", m.Subject(), err)
			}
			fn(m, env)
		}
		if got == 0 {
			if stalls++; stalls == 5 || ctx.Err() != nil {
				t.Fatalf("%s read stalled with %d pending: %v", stream, pending, batch.Error())
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		stalls = 0
		pending -= got
	}
}

// compare checks the stream against the simulator's CDR store: every
// record exactly once on cdr.created, every missed call exactly once on
// call.missed. It returns the counts and the problems it found.
func (st streamTally) compare(sim *pbxtest.Server, exts []string, from map[string]int) (generated, delivered, duplicates int, problems []string) {
	for _, ext := range exts {
		for _, r := range sim.CDRs(ext) {
			if r.ID <= from[ext] {
				continue
			}
			generated++
			key := fmt.Sprintf("%s/%d", ext, r.ID)
			n := st.created[key]
			if n > 0 {
				delivered++
			} else {
				problems = append(problems, key+": no cdr.created")
			}
			if n > 1 {
				duplicates += n - 1
			}
			wantMissed := 0
			if r.Status == 2 {
				wantMissed = 1
			}
			if m := st.missed[key]; m != wantMissed {
				problems = append(problems, fmt.Sprintf("%s: call.missed seen %d times, want %d", key, m, wantMissed))
			}
		}
	}
	return generated, delivered, duplicates, problems
}

// streamCount returns how many messages the stream holds on subject.
func streamCount(t testing.TB, nc *nats.Conn, subject string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "PBX_EVENTS")
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// newestIDs returns each extension's newest CDR id in the simulator.
func newestIDs(sim *pbxtest.Server, exts []string) map[string]int {
	out := map[string]int{}
	for _, e := range exts {
		for _, r := range sim.CDRs(e) {
			out[e] = max(out[e], r.ID)
		}
	}
	return out
}

// TestNoCallLost is the fault run: a steady flow of calls over several
// extensions while sockets drop, tokens are revoked, NATS restarts and the
// bridge process is killed and started again; then every record of the
// simulator must be in the stream exactly once.
func TestNoCallLost(t *testing.T) {
	if testing.Short() {
		t.Skip("fault run")
	}
	exts := []string{"1001", "1002", "1003"}
	storeDir := t.TempDir()
	ns := startNATS(t, storeDir, -1)
	natsURL := ns.ClientURL()
	sim, secrets := startPBX(t, exts...)
	caFile := writeCAFile(t, sim)
	env, extYAML := extensionsYAML(exts, secrets)
	config := fmt.Sprintf(`nats:
  url: %s
pbx:
  url: %s
  ca_file: %s
  request_timeout: 5s
  heartbeat: {ping_after: 500ms, pong_timeout: 500ms, keepalive_every: 600ms}
  reconnect: {min: 20ms, max: 300ms}
  event_buffer: 2
  deliver_timeout: 50ms
  login_retry: {min: 50ms, max: 500ms}
  rate_limit: {requests_per_second: 500, max_concurrent: 8}
extensions:
%sjetstream:
  ack_timeout: 1s
catchup:
  interval: 1s
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
  format: json
shutdown_timeout: 5s
`, natsURL, sim.URL(), caFile, extYAML)

	watcher := connect(t, natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	rec := record(t, watcher, "pbx.>")
	p1 := startProcess(t, config, env...)
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 20*time.Second)
	}
	from := newestIDs(sim, exts) // first start "none": history before this is not published
	gen := generateCalls(t, sim, exts, 15*time.Millisecond)

	step := func(what string, f func()) {
		t.Log(what)
		f()
		time.Sleep(300 * time.Millisecond) // let calls flow between faults
	}
	step("drop sockets", func() {
		for i := 0; i < 3; i++ {
			for _, e := range exts {
				sim.DropSockets(e)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	step("revoke tokens", func() {
		sim.RevokeTokens("1002")
		waitFor(t, "re-login of 1002", 20*time.Second, func() bool { return sim.Logins("1002") >= 2 })
	})
	step("restart NATS, dropping sockets meanwhile", func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		// NATS is away while calls go on: publishes block, the tiny event
		// buffer overflows, and the sockets drop and come back meanwhile.
		time.Sleep(300 * time.Millisecond)
		for _, e := range exts {
			sim.DropSockets(e)
		}
		time.Sleep(500 * time.Millisecond)
		ns = restartNATS(t, strings.TrimPrefix(natsURL, "nats://"), storeDir)
	})
	var whileDown int
	step("kill the bridge", func() {
		p1.kill()
		before := newestIDs(sim, exts)
		time.Sleep(500 * time.Millisecond) // calls while no bridge runs, no notification reaches anyone
		for _, e := range exts {
			for _, r := range sim.CDRs(e) {
				if r.ID > before[e] {
					whileDown++
				}
			}
		}
	})
	logins := map[string]int{}
	for _, e := range exts {
		logins[e] = sim.Logins(e)
	}
	p2 := startProcess(t, config, env...)
	metricsURL := p2.url("metrics and probes")
	step("drop the second bridge's sockets", func() {
		for _, e := range exts {
			waitFor(t, e+" logged in by the second bridge", 20*time.Second, func() bool {
				return sim.Logins(e) > logins[e] && sim.LiveSockets(e) > 0
			})
			sim.DropSockets(e)
		}
	})
	generatedCalls := gen.halt()

	want := 0
	for _, e := range exts {
		for _, r := range sim.CDRs(e) {
			if r.ID > from[e] {
				want++
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for streamCount(t, watcher, "pbx.*.cdr.created") < want {
		if time.Now().After(deadline) {
			_, _, _, problems := tallyStream(t, watcher).compare(sim, exts, from)
			t.Fatalf("not every record reached the stream within 60s: %s\nsecond bridge's log:\n%s",
				strings.Join(problems, "; "), p2.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	generated, delivered, duplicates, problems := tallyStream(t, watcher).compare(sim, exts, from)
	t.Logf("generated %d, delivered %d, duplicates %d", generated, delivered, duplicates)
	fmt.Printf("fault run: generated %d, delivered %d, duplicates %d\n", generated, delivered, duplicates)
	for _, p := range problems {
		t.Error(p)
	}
	if generated != generatedCalls || delivered != generated || duplicates != 0 {
		t.Errorf("generated %d (calls made %d), delivered %d, duplicates %d", generated, generatedCalls, delivered, duplicates)
	}

	// The metrics of the second process agree with what the test counted:
	// every call made while no bridge ran was published by its catch-up.
	m := scrape(t, strings.TrimSuffix(metricsURL, "/metrics")+"/metrics")
	t.Logf("calls made while no bridge ran: %d; second bridge: catch-up records %v, cdr.created published %v, reconnects %v",
		whileDown, m[`pbx_bridge_catchup_records_total`], m[`pbx_bridge_events_published_total{type="`+schema.TypeCDRCreated+`"}`], m[`pbx_bridge_reconnects_total`])
	if !p1.logContains("consumer too slow") {
		t.Error("the first bridge never overflowed its event buffer during the NATS outage: the fault run did not test that")
	}
	if whileDown == 0 {
		t.Error("no call was made while the bridge was down: the fault run did not test that")
	}
	if got := m[`pbx_bridge_catchup_records_total`]; got < float64(whileDown) {
		t.Errorf("catch-up records = %v, want >= %d (the calls made while no bridge ran)", got, whileDown)
	}
	if got := m[`pbx_bridge_events_published_total{type="`+schema.TypeCDRCreated+`"}`]; got < float64(whileDown) {
		t.Errorf("cdr.created published = %v, want >= %d", got, whileDown)
	}
	if got := m[`pbx_bridge_reconnects_total`]; got <= 0 {
		t.Errorf("reconnects = %v, want > 0 (the test dropped the second bridge's sockets)", got)
	}
	if err := p2.terminate(20 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	for _, e := range exts {
		if sim.Logouts(e) < 1 {
			t.Errorf("%s not logged out on SIGTERM", e)
		}
	}
	for _, s := range secrets {
		if p1.logContains(s) || p2.logContains(s) {
			t.Error("a secret appears in the bridge's log")
		}
	}
}

// restartNATS starts a server on the address and store of a stopped one.
func restartNATS(t testing.TB, addr, storeDir string) *server.Server {
	t.Helper()
	var ns *server.Server
	waitFor(t, "NATS restart on "+addr, 10*time.Second, func() bool {
		s, err := natsembed.Start(addr, storeDir)
		if err != nil {
			return false
		}
		ns = s
		return true
	})
	t.Cleanup(ns.Shutdown)
	return ns
}

// scrape reads a Prometheus text page into "name{labels}" -> value, and
// also sums each metric over its labels under its bare name.
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			continue
		}
		key := line[:i]
		out[key] = v
		if j := strings.IndexByte(key, '{'); j > 0 {
			out[key[:j]] += v
		}
	}
	return out
}

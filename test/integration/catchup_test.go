package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

const searchPath = "/api/v1.0/cdr/searchpersonal"

// createdIDs returns the record ids of the cdr.created events seen on ext.
func createdIDs(t *testing.T, r *recorder, ext string) []int {
	var ids []int
	for _, e := range r.on("pbx." + ext + ".cdr.created") {
		ids = append(ids, data[schema.CDRCreated](t, e).Record.ID)
	}
	return ids
}

func TestBurstIsCoalesced(t *testing.T) {
	s := start(t, true, "1001")
	// While a catch-up waits on a slow PBX, the rest of the burst queues up
	// in the session and must be answered together.
	s.sim.SlowEndpoint(searchPath, 100*time.Millisecond)
	before := s.sim.Requests(searchPath)
	const calls = 50
	for i := 0; i < calls; i++ {
		if _, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1}); err != nil {
			t.Fatal(err)
		}
	}
	s.rec.await("pbx.1001.cdr.created", calls, 20*time.Second)
	s.rec.await("pbx.1001.cdr.changed", calls, 5*time.Second)
	queries := s.sim.Requests(searchPath) - before
	t.Logf("%d notifications answered with %d searchpersonal queries", calls, queries)
	if queries > 12 {
		t.Errorf("%d notifications took %d queries: not coalesced", calls, queries)
	}
	ids := createdIDs(t, s.rec, "1001")
	if !slices.IsSorted(ids) || len(ids) != calls {
		t.Errorf("cdr.created ids %v: want %d in record order", ids, calls)
	}
}

// TestNotificationDuringCatchupIsCoalesced: a call whose 20049 arrives
// while the catch-up of the previous call is under way, and whose record
// that catch-up publishes, costs no second searchpersonal: 1 per call in
// steady state (the old code made 3 queries for these 3 calls).
func TestNotificationDuringCatchupIsCoalesced(t *testing.T) {
	s := start(t, true, "1001")
	call := func() pbxtest.CDR {
		t.Helper()
		c, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	call() // an extension's very first call, with no history, costs 2
	s.rec.await("pbx.1001.cdr.created", 1, 10*time.Second)
	s.sim.SlowEndpoint(searchPath, 300*time.Millisecond)
	before := s.sim.Requests(searchPath)
	a := call()
	waitFor(t, "a's catch-up query under way", 10*time.Second, func() bool { return s.sim.Requests(searchPath) > before })
	b := call() // made before the slow query reads the records: it publishes b as well
	s.rec.await("pbx.1001.cdr.created", 3, 10*time.Second)
	s.sim.SlowEndpoint(searchPath, 0)
	c := call()
	s.rec.await("pbx.1001.cdr.created", 4, 10*time.Second)
	s.rec.await("pbx.1001.cdr.changed", 4, 5*time.Second)
	queries := s.sim.Requests(searchPath) - before
	t.Logf("3 calls, one during a catch-up: %d searchpersonal queries", queries)
	if queries != 2 {
		t.Errorf("%d searchpersonal queries for 3 calls (one answered by the catch-up under way), want 2", queries)
	}
	ids := createdIDs(t, s.rec, "1001")
	if want := []int{ids[0], a.ID, b.ID, c.ID}; !slices.Equal(ids, want) {
		t.Errorf("cdr.created ids %v, want %v", ids, want)
	}
}

func TestFirstStart(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name string
		fs   bridge.FirstStart
		want func(all []pbxtest.CDR) []int
	}{
		{"none", bridge.FirstStart{Mode: "none"}, func([]pbxtest.CDR) []int { return nil }},
		{"last", bridge.FirstStart{Mode: "last", Last: 5}, func(all []pbxtest.CDR) []int {
			var ids []int
			for _, r := range all[len(all)-5:] {
				ids = append(ids, r.ID)
			}
			return ids
		}},
		{"since", bridge.FirstStart{Mode: "since", Since: time.Hour}, func(all []pbxtest.CDR) []int {
			var ids []int
			for _, r := range all {
				if r.Timestamp >= now.Add(-time.Hour).Unix() {
					ids = append(ids, r.ID)
				}
			}
			return ids
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := startNATS(t, t.TempDir(), -1)
			sim, secrets := startPBX(t, "1001")
			// 150 records (more than one page): 140 from yesterday, 10 from the last half hour.
			for i := 0; i < 150; i++ {
				at := now.Add(-26*time.Hour + time.Duration(i)*time.Minute)
				if i >= 140 {
					at = now.Add(-30*time.Minute + time.Duration(i-140)*time.Minute)
				}
				if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed, Time: at, Silent: true}); err != nil {
					t.Fatal(err)
				}
			}
			nc := connect(t, ns.ClientURL())
			rec := record(t, nc, "pbx.>")
			cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
			cfg.FirstStart = tc.fs
			runBridge(t, nc, cfg)
			// Online is announced after the catch-up: what it published is final.
			rec.await("pbx.1001.session.online", 1, 10*time.Second)
			awaitSubscribed(t, sim, "1001", 1)
			got := createdIDs(t, rec, "1001")
			want := tc.want(sim.CDRs("1001"))
			if !slices.Equal(got, want) {
				t.Fatalf("published %v, want %v", got, want)
			}
			if n := len(rec.on("pbx.1001.call.missed")); n != len(want) {
				t.Errorf("call.missed %d, want %d", n, len(want))
			}
			// From now on every call is published.
			c, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 3})
			if err != nil {
				t.Fatal(err)
			}
			rec.await("pbx.1001.cdr.created", len(want)+1, 5*time.Second)
			if got := createdIDs(t, rec, "1001"); got[len(got)-1] != c.ID {
				t.Errorf("last published %d, want %d", got[len(got)-1], c.ID)
			}
		})
	}
}

func TestRestartResumesFromCursor(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, dir, -1)
	sim, secrets := startPBX(t, "1001")
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	cfg := fastConfig(sim, secrets, testLogger(logs))
	b := runBridge(t, nc, cfg)
	rec.await("pbx.1001.session.online", 1, 10*time.Second)
	awaitSubscribed(t, sim, "1001", 1)
	for i := 0; i < 3; i++ {
		if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1}); err != nil {
			t.Fatal(err)
		}
	}
	rec.await("pbx.1001.cdr.created", 3, 5*time.Second)
	b.stop(t)
	// Calls while the bridge is down, with nobody to notify.
	for i := 0; i < 4; i++ {
		if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
			t.Fatal(err)
		}
	}
	runBridge(t, nc, cfg)
	rec.await("pbx.1001.session.online", 2, 10*time.Second)
	got := createdIDs(t, rec, "1001")
	var want []int
	for _, r := range sim.CDRs("1001") {
		want = append(want, r.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v over two runs, want each of %v once", got, want)
	}
	if n := len(rec.on("pbx.1001.call.missed")); n != 4 {
		t.Errorf("call.missed %d, want 4", n)
	}
}

// TestStreamCapturesEventsOnly: the records go to a stream bounded by age
// only, every other event to one bounded by size and per subject too, and
// neither captures a request subject.
func TestStreamCapturesEventsOnly(t *testing.T) {
	s := start(t, true, "1001")
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	streams := map[string][]string{
		"PBX_EVENTS":  {"pbx.1001.cdr.created", "pbx.1001.call.missed"},
		"PBX_SIGNALS": {"pbx.1001.cdr.changed", "pbx.1001.session.online", "pbx.1001.runtime.error", "pbx.1001.notify.record_status"},
	}
	for name, subjects := range streams {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		if cfg.Duplicates != time.Hour {
			t.Errorf("%s: duplicate window = %s, want 1h", name, cfg.Duplicates)
		}
		for _, subj := range []string{"pbx.1001.cdr.query", "pbx.1001.info"} {
			for _, f := range cfg.Subjects {
				if subjectMatches(f, subj) {
					t.Errorf("%s: stream subject %q captures the request subject %q", name, f, subj)
				}
			}
		}
		for _, subj := range subjects {
			if !slices.ContainsFunc(cfg.Subjects, func(f string) bool { return subjectMatches(f, subj) }) {
				t.Errorf("%s does not capture %s", name, subj)
			}
		}
		limited := cfg.MaxBytes > 0 || cfg.MaxMsgsPerSubject > 0 || cfg.MaxMsgs > 0
		if want := name == "PBX_SIGNALS"; limited != want {
			t.Errorf("%s: size or count limits %v (max_bytes %d, per subject %d, msgs %d), want %v",
				name, limited, cfg.MaxBytes, cfg.MaxMsgsPerSubject, cfg.MaxMsgs, want)
		}
	}
	// The reply is the service's, not a PubAck.
	m := s.request(t, "pbx.1001.cdr.query", `{"size":1}`)
	var r schema.CDRQueryResult
	if err := json.Unmarshal(m.Data, &r); err != nil || strings.Contains(string(m.Data), `"stream"`) {
		t.Fatalf("reply %s (%v)", m.Data, err)
	}
}

// subjectMatches reports whether the subject matches the filter.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

func TestCheckOnlyStream(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001")
	nc := connect(t, ns.ClientURL())
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	cfg.JetStream.CheckOnly = true
	b, err := bridge.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = b.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "PBX_EVENTS") {
		t.Fatalf("Run with a missing stream and CheckOnly = %v, want an error naming the stream", err)
	}
	if sim.Logins("1001") != 0 {
		t.Error("logged in although the stream check failed")
	}
	// A stream that does not capture every event subject is refused too.
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PBX_EVENTS", Subjects: []string{"pbx.*.cdr.created"}}); err != nil {
		t.Fatal(err)
	}
	b, _ = bridge.New(nc, cfg)
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "call.missed") {
		t.Fatalf("Run with an incomplete stream = %v, want an error naming what it misses", err)
	}
}

func TestProbes(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001", "1002")
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	get := func(h http.Handler, path string) (int, string) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// An extension that cannot log in keeps the bridge not ready.
	bad := map[string]string{"1001": secrets["1001"], "1002": "wrong"}
	b := runBridge(t, nc, fastConfig(sim, bad, testLogger(&syncBuffer{})))
	rec.await("pbx.1001.session.online", 1, 10*time.Second)
	rec.await("pbx.1002.session.offline", 1, 10*time.Second)
	if code, _ := get(b.Handler(), "/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get(b.Handler(), "/readyz"); code != 503 || !strings.Contains(body, "1002: offline") {
		t.Errorf("/readyz with an offline extension = %d %q", code, body)
	}
	b.stop(t)

	b = runBridge(t, nc, fastConfig(sim, secrets, testLogger(&syncBuffer{})))
	rec.await("pbx.1002.session.online", 1, 10*time.Second)
	waitFor(t, "ready", 10*time.Second, func() bool { code, _ := get(b.Handler(), "/readyz"); return code == 200 })
	// Stopped by a runtime error is a known terminal state: still ready.
	awaitSubscribed(t, sim, "1002", 1)
	sim.Kick("1002")
	rec.await("pbx.1002.runtime.error", 1, 5*time.Second)
	rec.await("pbx.1002.session.stopped", 2, 5*time.Second) // the first was the first bridge's shutdown
	if code, body := get(b.Handler(), "/readyz"); code != 200 {
		t.Errorf("/readyz with an extension stopped by -107 = %d %q", code, body)
	}
	code, body := get(b.Handler(), "/metrics")
	// Without metrics.per_extension: the extensions in each state.
	if code != 200 || !strings.Contains(body, `pbx_bridge_session_state{state="stopped"} 1`) ||
		!strings.Contains(body, `pbx_bridge_session_state{state="online"} 1`) || strings.Contains(body, `ext="`) {
		t.Errorf("/metrics = %d, want 1 extension stopped (1002), 1 online and no ext label:\n%s", code, body)
	}
	// Without NATS it is not ready.
	ns.Shutdown()
	waitFor(t, "not ready without NATS", 10*time.Second, func() bool {
		code, body := get(b.Handler(), "/readyz")
		return code == 503 && strings.Contains(body, "nats")
	})
}

func TestSilentCallIsPolled(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001")
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	cfg.CatchupInterval = 200 * time.Millisecond
	runBridge(t, nc, cfg)
	rec.await("pbx.1001.session.online", 1, 10*time.Second)
	// No notification and no gap: only the periodic check can find it.
	c, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed, Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	e := rec.await("pbx.1001.call.missed", 1, 5*time.Second)[0]
	if d := data[schema.CallMissed](t, e); d.CDRID != c.ID {
		t.Errorf("call.missed for %d, want %d", d.CDRID, c.ID)
	}
	if n := len(rec.on("pbx.1001.cdr.changed")); n != 0 {
		t.Errorf("%d cdr.changed for a silent call", n)
	}
}

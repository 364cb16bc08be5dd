package integration

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// The tests of this file run the bridge against a PBX that is not polite:
// the simulator's hostile modes, one per behaviour a real PBX, a firmware
// upgrade or a flaky network shows.

// hostile is a setup whose simulator and configuration a test prepares
// before the bridge starts.
type hostile struct {
	setup
	cfg bridge.Config
}

// startHostile starts NATS (with the server options opts, if any), the
// simulator with exts, calls prepare on both, then starts the bridge; it
// does not wait for anything.
func startHostile(t *testing.T, opts *server.Options, prepare func(*pbxtest.Server, *bridge.Config), exts ...string) *hostile {
	t.Helper()
	var url string
	if opts == nil {
		url = startNATS(t, t.TempDir(), -1).ClientURL()
	} else {
		url = startNATSWith(t, opts).ClientURL()
	}
	sim, secrets := startPBX(t, exts...)
	h := &hostile{setup: setup{sim: sim, secrets: secrets, logs: &syncBuffer{}}}
	h.nc = connect(t, url)
	h.rec = record(t, h.nc, "pbx.>")
	h.cfg = fastConfig(sim, secrets, testLogger(h.logs))
	if prepare != nil {
		prepare(sim, &h.cfg)
	}
	h.b = runBridge(t, h.nc, h.cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log:\n%s", h.logs.String())
		}
	})
	return h
}

// online waits until ext has been online n times and the simulator read its
// topic list as often.
func (h *hostile) online(t *testing.T, ext string, n int) {
	t.Helper()
	h.rec.await("pbx."+ext+".session.online", n, 15*time.Second)
	awaitSubscribed(t, h.sim, ext, n)
}

// startNATSWith starts an embedded NATS server with JetStream and opts.
func startNATSWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	o := *opts
	o.Host, o.Port, o.JetStream, o.StoreDir, o.NoSigs = "127.0.0.1", -1, true, t.TempDir(), true
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// metrics returns the bridge's /metrics page.
func metrics(b *bridge.Bridge) string {
	w := httptest.NewRecorder()
	b.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

// metricSum adds up the samples of the metric name whose labels contain
// every one of labels (as `key="value"`).
func metricSum(page, name string, labels ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(page, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// awaitCreated waits until ext's cdr.created events hold every record of
// the simulator, and fails on a duplicate.
func awaitCreated(t *testing.T, h *hostile, ext string, d time.Duration) {
	t.Helper()
	want := len(h.sim.CDRs(ext))
	h.rec.await("pbx."+ext+".cdr.created", want, d)
	got := createdIDs(t, h.rec, ext)
	seen := map[int]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("record %d published twice: %v", id, got)
		}
		seen[id] = true
	}
	for _, r := range h.sim.CDRs(ext) {
		if !seen[r.ID] {
			t.Fatalf("record %d not published: %v", r.ID, got)
		}
	}
}

// 1. No credential from the PBX reaches NATS or a log.
func TestSIPRegistrationCredentialsRemoved(t *testing.T) {
	h := startHostile(t, nil, nil, "1001")
	h.online(t, "1001", 1)
	creds := h.sim.NotifySIPRegistration("1001")
	e := h.rec.await("pbx.1001.notify.sip_registration", 1, 5*time.Second)[0]
	d := data[schema.Notify](t, e)
	if !strings.Contains(string(d.Msg), schema.RemovedCredential) {
		t.Errorf("msg %s carries no removal marker", d.Msg)
	}
	var msg map[string]any
	if err := json.Unmarshal(d.Msg, &msg); err != nil || msg["realm"] != "Yeastar" {
		t.Errorf("msg %s (%v): the fields that are no credential must stay", d.Msg, err)
	}
	h.b.stop(t)
	for _, c := range creds {
		if strings.Contains(string(e.Raw), c) {
			t.Errorf("the credential %q is in the event: %s", c, e.Raw)
		}
		if strings.Contains(h.logs.String(), c) {
			t.Errorf("the credential %q is in the log", c)
		}
	}
	if pbx.RemovedCredential != schema.RemovedCredential {
		t.Errorf("pbx marks a removed credential %q, the schema documents %q", pbx.RemovedCredential, schema.RemovedCredential)
	}
}

// 2. Catch-up ends against a PBX that lies about its pages and totals; the
// extension goes online and answers requests all the same.
func TestCatchupEndsAgainstLyingPBX(t *testing.T) {
	cases := []struct {
		name    string
		lie     func(*pbxtest.Server)
		anomaly string
	}{
		{"last page repeated", func(s *pbxtest.Server) { s.SetRepeatLastPage(true) }, "repeated_page"},
		{"same page forever", func(s *pbxtest.Server) { s.SetSamePage(true) }, "repeated_page"},
		{"huge total", func(s *pbxtest.Server) { s.SetTotalNumber(func(int) int { return 1 << 40 }) }, "bad_total"},
		{"negative total", func(s *pbxtest.Server) { s.SetTotalNumber(func(int) int { return -1 }) }, "bad_total"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
				for range 200 {
					if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Silent: true}); err != nil {
						t.Fatal(err)
					}
				}
				tc.lie(sim)
				cfg.FirstStart = bridge.FirstStart{Mode: "last", Last: 1000}
			}, "1001")
			h.online(t, "1001", 1)
			before := h.sim.Requests(searchPath)
			if m := h.request(t, "pbx.1001.info", ""); m.Header.Get("Nats-Service-Error-Code") != "" {
				t.Fatalf("info: %s", m.Data)
			}
			if _, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
				t.Fatal(err)
			}
			h.rec.await("pbx.1001.call.missed", 1, 10*time.Second)
			if n := h.sim.Requests(searchPath) - before; n > 3 {
				t.Errorf("one new call cost %d queries against the lying PBX", n)
			}
			if got := metricSum(metrics(h.b.Bridge), "pbx_bridge_catchup_anomalies_total", `reason="`+tc.anomaly+`"`); got < 1 {
				t.Errorf("anomalies{reason=%q} = %v, want counted", tc.anomaly, got)
			}
		})
	}
}

// 3. Whatever number of records a page the PBX serves, no record is lost.
func TestCatchupLearnsThePagesCap(t *testing.T) {
	for _, byRequested := range []bool{false, true} {
		t.Run(fmt.Sprintf("offsets by requested size %v", byRequested), func(t *testing.T) {
			h := startHostile(t, nil, func(sim *pbxtest.Server, _ *bridge.Config) { sim.SetPageCap(20, byRequested) }, "1001")
			h.online(t, "1001", 1)
			for range 130 {
				if _, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Silent: true}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
				t.Fatal(err)
			}
			awaitCreated(t, h, "1001", 15*time.Second)
		})
	}
}

// 4. An event larger than the NATS server's max_payload never wedges an
// extension: a notification is shrunk to a marker, a record too large is
// dropped and counted, and the records after it still go out.
func TestOversizedEventsDoNotWedge(t *testing.T) {
	h := startHostile(t, &server.Options{MaxPayload: 64 << 10}, nil, "1001")
	h.online(t, "1001", 1)
	h.sim.Notify("1001", 20048, map[string]string{"record_status": strings.Repeat("<", 100<<10)})
	e := h.rec.await("pbx.1001.notify.record_status", 1, 10*time.Second)[0]
	var removed schema.RemovedMsg
	if err := json.Unmarshal(data[schema.Notify](t, e).Msg, &removed); err != nil || removed.Removed != schema.RemovedTooLarge || removed.Size < 100<<10 {
		t.Errorf("oversized notification published as %s (%v), want the too_large marker with its size", e.Raw, err)
	}
	if _, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Peer: strings.Repeat("9", 80<<10)}); err != nil {
		t.Fatal(err)
	}
	small, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed})
	if err != nil {
		t.Fatal(err)
	}
	got := h.rec.await("pbx.1001.cdr.created", 1, 10*time.Second)
	if id := data[schema.CDRCreated](t, got[0]).Record.ID; id != small.ID {
		t.Errorf("cdr.created of record %d, want only the small record %d", id, small.ID)
	}
	waitFor(t, "the dropped record counted", 5*time.Second, func() bool {
		return metricSum(metrics(h.b.Bridge), "pbx_bridge_events_dropped_total", `reason="too_large"`, `type="`+schema.TypeCDRCreated+`"`) == 1
	})
}

// 6. A token the HTTP API refuses while the socket stays up leads to a new
// login, the old session closed first: the bridge never knocks itself out.
func TestAPITokenRejectedLogsInAgain(t *testing.T) {
	h := startHostile(t, nil, nil, "1001")
	h.online(t, "1001", 1)
	h.sim.RejectAPITokens("1001", true)
	m := h.request(t, "pbx.1001.cdr.query", `{"size":1}`)
	if m.Header.Get("Nats-Service-Error-Code") != "502" {
		t.Errorf("cdr.query with a refused token answered %q %s, want 502", m.Header.Get("Nats-Service-Error-Code"), m.Data)
	}
	waitFor(t, "a second login", 10*time.Second, func() bool { return h.sim.Logins("1001") >= 2 })
	h.sim.RejectAPITokens("1001", false)
	h.online(t, "1001", 2)
	if m := h.request(t, "pbx.1001.cdr.query", `{"size":1}`); m.Header.Get("Nats-Service-Error-Code") != "" {
		t.Errorf("cdr.query after the new login: %s", m.Data)
	}
	if n := h.sim.KnockOuts("1001"); n != 0 {
		t.Errorf("the bridge knocked its own login out %d times", n)
	}
	if n := h.sim.MaxLiveSockets("1001"); n != 1 {
		t.Errorf("%d live sockets at once, want 1", n)
	}
}

// 7. A secret of any length is never echoed, and a short one is warned of.
func TestShortSecretNeverEchoed(t *testing.T) {
	const secret = "q7Z"
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		sim.SetEchoPassword(true)
		cfg.Extensions = []bridge.Credential{{Username: "1001", Secret: secret}}
	}, "1001")
	off := h.rec.await("pbx.1001.session.offline", 1, 10*time.Second)[0]
	h.b.stop(t)
	if strings.Contains(string(off.Raw), secret) {
		t.Errorf("the secret is in the event: %s", off.Raw)
	}
	logs := h.logs.String()
	if strings.Contains(logs, secret) {
		t.Error("the secret is in the log")
	}
	if !strings.Contains(logs, "too short to be a login signature") {
		t.Error("no warning about the short secret")
	}
}

// 8. Shutdown logs every extension out, whatever their number and the rate
// limit.
func TestShutdownLogsEveryExtensionOut(t *testing.T) {
	var exts []string
	for i := range 40 {
		exts = append(exts, strconv.Itoa(3000+i))
	}
	h := startHostile(t, nil, func(_ *pbxtest.Server, cfg *bridge.Config) {
		cfg.PBXRate = 20 // 40 logins, then 40 logouts that would take 2 s at this rate
		cfg.ShutdownTimeout = time.Second
		cfg.JetStream.Disabled = true
	}, exts...)
	for _, e := range exts {
		h.rec.await("pbx."+e+".session.online", 1, 30*time.Second)
	}
	h.b.stop(t)
	for _, e := range exts {
		if h.sim.Logouts(e) != 1 {
			t.Errorf("%s: %d logouts", e, h.sim.Logouts(e))
		}
	}
	if strings.Contains(h.logs.String(), "not logged out at shutdown") {
		t.Error("warned of extensions not logged out, yet all were")
	}
}

// 9. Numbers sent as strings or with a fraction are read by value: the
// extension logs in, a missed call is missed, no record is skipped.
func TestNumbersAsStringsOrFloats(t *testing.T) {
	for _, style := range []pbxtest.NumberStyle{pbxtest.NumbersAsStrings, pbxtest.NumbersAsFloats} {
		t.Run(fmt.Sprint(style), func(t *testing.T) {
			h := startHostile(t, nil, func(sim *pbxtest.Server, _ *bridge.Config) { sim.SetNumberStyle(style) }, "1001")
			h.online(t, "1001", 1)
			c, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed})
			if err != nil {
				t.Fatal(err)
			}
			m := h.rec.await("pbx.1001.call.missed", 1, 10*time.Second)[0]
			if d := data[schema.CallMissed](t, m); d.CDRID != c.ID || d.Timestamp != c.Timestamp {
				t.Errorf("call.missed = %+v, want record %d at %d", d, c.ID, c.Timestamp)
			}
			if d := data[schema.CDRChanged](t, h.rec.await("pbx.1001.cdr.changed", 1, 5*time.Second)[0]); d.PersonalCDR.Timestamp != c.Timestamp {
				t.Errorf("cdr.changed timestamp %d, want %d", d.PersonalCDR.Timestamp, c.Timestamp)
			}
			ext, _ := h.sim.Extension("1001")
			if d := data[schema.SessionState](t, h.rec.on("pbx.1001.session.online")[0]); d.Extension.ID != ext.ID {
				t.Errorf("extension id %d, want %d", d.Extension.ID, ext.ID)
			}
		})
	}
}

// 10. A flood of garbage frames gives a handful of log lines, not one each.
func TestFrameFloodIsSampled(t *testing.T) {
	h := startHostile(t, nil, nil, "1001")
	h.online(t, "1001", 1)
	h.sim.Flood("1001", 5000, "garbage, not json")
	waitFor(t, "5000 dropped frames counted", 15*time.Second, func() bool {
		return metricSum(metrics(h.b.Bridge), "pbx_bridge_frames_dropped_total", `reason="not_json"`) == 5000
	})
	if n := strings.Count(h.logs.String(), "pbx frame dropped"); n > 10 {
		t.Errorf("%d log lines for 5000 garbage frames", n)
	}
}

// 11. Every gap is caught up, after errcode -3 and a 20104 switch-over too.
func TestResubscribeIsAGap(t *testing.T) {
	h := startHostile(t, nil, nil, "1001")
	h.online(t, "1001", 1)
	for i, poke := range []func(){
		func() { h.sim.SendRaw("1001", `{"type":20049,"msg":"{}","errcode":-3}`) },
		func() { h.sim.Notify("1001", 20104, map[string]any{}) },
	} {
		c, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Silent: true})
		if err != nil {
			t.Fatal(err)
		}
		poke()
		got := h.rec.await("pbx.1001.cdr.created", i+1, 10*time.Second)
		if id := data[schema.CDRCreated](t, got[i]).Record.ID; id != c.ID {
			t.Errorf("cdr.created of %d, want %d", id, c.ID)
		}
	}
}

// 12. A first start does not take the first calls for history.
func TestFirstStartKeepsTheFirstCalls(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, _ *bridge.Config) {
		for range 5 {
			if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed, Silent: true, Time: time.Now().Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		// The first catch-up comes late: the call below arrives before it.
		sim.SlowEndpoint(searchPath, 700*time.Millisecond)
	}, "1001")
	awaitSubscribed(t, h.sim, "1001", 1)
	c, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed})
	if err != nil {
		t.Fatal(err)
	}
	got := h.rec.await("pbx.1001.cdr.created", 1, 10*time.Second)
	if id := data[schema.CDRCreated](t, got[0]).Record.ID; id != c.ID {
		t.Errorf("cdr.created of %d, want the new call %d", id, c.ID)
	}
	h.sim.SlowEndpoint(searchPath, 0)
	h.online(t, "1001", 1)
	if n := len(h.rec.on("pbx.1001.cdr.created")); n != 1 {
		t.Errorf("%d cdr.created, want only the call after the login", n)
	}
}

// 13. A filter with a control character is a bad request, not a PBX error.
func TestCDRQueryRulesInOnePlace(t *testing.T) {
	h := startHostile(t, nil, nil, "1001")
	h.online(t, "1001", 1)
	before := h.sim.Requests(searchPath)
	for _, body := range []string{`{"filter":"12\u00073"}`, `{"page":0}`, `{"size":101}`, `{"status":4}`, `{"sortBy":"name"}`, `{"filter":"` + strings.Repeat("1", 65) + `"}`} {
		m := h.request(t, "pbx.1001.cdr.query", body)
		if code := m.Header.Get("Nats-Service-Error-Code"); code != "400" {
			t.Errorf("%s answered %q %s, want 400", body, code, m.Data)
		}
		if err := schema.Validate(schema.TypeCDRQueryRequest, []byte(body)); err == nil {
			t.Errorf("%s is valid against the JSON Schema, yet the bridge refuses it", body)
		}
	}
	if n := h.sim.Requests(searchPath) - before; n != 0 {
		t.Errorf("%d bad requests reached the PBX", n)
	}
}

// A catch-up waiting out its backoff does not keep a reconnected socket
// from going online: requests are answered meanwhile.
func TestOnlineWhileCatchupBacksOff(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		sim.FailEndpoint(searchPath, 10001, "INTERFACE NOT EXIST")
		cfg.RetryMin, cfg.RetryMax = time.Minute, time.Minute // the retry never comes within the test
	}, "1001")
	h.online(t, "1001", 1)
	h.sim.DropSockets("1001")
	h.rec.await("pbx.1001.session.reconnecting", 1, 10*time.Second)
	h.online(t, "1001", 2)
	if m := h.request(t, "pbx.1001.info", ""); m.Header.Get("Nats-Service-Error-Code") != "" {
		t.Errorf("info while catch-up backs off: %s", m.Data)
	}
}

package integration

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// setup starts NATS, the simulator with the given extensions, a recorder
// on pbx.> and a bridge with JetStream on or off, and waits for every
// extension to be online.
type setup struct {
	sim     *pbxtest.Server
	secrets map[string]string
	nc      *nats.Conn
	rec     *recorder
	b       *runningBridge
	logs    *syncBuffer
}

func start(t *testing.T, jetstream bool, exts ...string) *setup {
	t.Helper()
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, exts...)
	s := &setup{sim: sim, secrets: secrets, logs: &syncBuffer{}}
	s.nc = connect(t, ns.ClientURL())
	s.rec = record(t, s.nc, "pbx.>")
	cfg := fastConfig(sim, secrets, testLogger(s.logs))
	cfg.JetStream.Disabled = !jetstream
	s.b = runBridge(t, s.nc, cfg)
	for _, e := range exts {
		s.rec.await("pbx."+e+".session.online", 1, 10*time.Second)
		awaitSubscribed(t, sim, e, 1)
	}
	return s
}

// awaitSubscribed waits until the simulator has received n topic lists from
// ext. The protocol does not acknowledge a topic list, so "online" can come
// before the PBX has read it, and a call in between would come without
// its notification.
func awaitSubscribed(t testing.TB, sim *pbxtest.Server, ext string, n int) {
	t.Helper()
	waitFor(t, ext+" subscribed", 10*time.Second, func() bool { return len(sim.TopicLists(ext)) >= n })
}

// request sends a request and returns the reply, failing on a transport error.
func (s *setup) request(t *testing.T, subject string, body string) *nats.Msg {
	t.Helper()
	m, err := s.nc.Request(subject, []byte(body), 10*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return m
}

func TestCDRChangedEvent(t *testing.T) {
	s := start(t, false, "1001", "1002")
	call, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Peer: "5551234", TalkDuration: 42})
	if err != nil {
		t.Fatal(err)
	}
	evs := s.rec.await("pbx.1001.cdr.changed", 1, 5*time.Second)
	e := evs[0]
	if e.Env.Type != schema.TypeCDRChanged || e.Env.Subject != "1001" || e.Env.SpecVersion != "1.0" {
		t.Errorf("envelope = %+v", e.Env)
	}
	d := data[schema.CDRChanged](t, e)
	if d.ExtNum != "1001" || d.PersonalCDR.Timestamp != call.Timestamp || d.PersonalCDR.TalkDuration != 42 {
		t.Errorf("data = %+v, want the call %+v", d, call)
	}
	ext, _ := s.sim.Extension("1001")
	if d.Extension.Number != "1001" || d.Extension.ID != ext.ID || d.PBX == "" {
		t.Errorf("data extension = %+v pbx %q, want id %d", d.Extension, d.PBX, ext.ID)
	}
	if got := s.rec.on("pbx.1002.cdr.changed"); len(got) != 0 {
		t.Errorf("1002 got %d cdr.changed events for a call of 1001", len(got))
	}
}

func TestNotificationsArePublished(t *testing.T) {
	s := start(t, false, "1001")
	s.sim.Notify("1001", 20048, map[string]any{"record_status": "recording", "call_feature": "record"})
	s.sim.Notify("1001", 20008, map[string]any{"record_feature_code": "*1"})
	e := s.rec.await("pbx.1001.notify.record_status", 1, 5*time.Second)[0]
	d := data[schema.Notify](t, e)
	if d.NotificationType != 20048 || string(d.Msg) == "" {
		t.Errorf("notify data = %+v", d)
	}
	var msg map[string]string
	if err := json.Unmarshal(d.Msg, &msg); err != nil || msg["record_status"] != "recording" {
		t.Errorf("msg = %s (%v)", d.Msg, err)
	}
	s.rec.await("pbx.1001.notify.record_feature_code", 1, 5*time.Second)
}

func TestCDRQuery(t *testing.T) {
	s := start(t, false, "1001")
	base := time.Now().Add(-time.Hour)
	kinds := []pbxtest.CallKind{pbxtest.Incoming, pbxtest.Outgoing, pbxtest.Missed}
	for i := 0; i < 25; i++ {
		peer := "2000"
		if i%5 == 0 {
			peer = "3999"
		}
		talk := 10
		if kinds[i%3] == pbxtest.Missed {
			talk = 0
		}
		if _, err := s.sim.Call("1001", pbxtest.Call{Kind: kinds[i%3], Peer: peer, TalkDuration: talk, Time: base.Add(time.Duration(i) * time.Minute), Silent: true}); err != nil {
			t.Fatal(err)
		}
	}
	missed := 0
	for _, c := range s.sim.CDRs("1001") {
		if c.Status == 2 {
			missed++
		}
	}
	cases := []struct {
		name      string
		body      string
		wantLen   int
		wantTotal int
		check     func(t *testing.T, r schema.CDRQueryResult)
	}{
		{"defaults", "", 20, 25, func(t *testing.T, r schema.CDRQueryResult) {
			for i := 1; i < len(r.Records); i++ {
				if r.Records[i].Timestamp > r.Records[i-1].Timestamp {
					t.Errorf("default order is not newest first at %d", i)
				}
			}
		}},
		{"page 1", `{"page":1,"size":10}`, 10, 25, nil},
		{"last page", `{"page":3,"size":10}`, 5, 25, nil},
		{"beyond", `{"page":4,"size":10}`, 0, 25, nil},
		{"missed", `{"status":2,"size":100}`, missed, missed, func(t *testing.T, r schema.CDRQueryResult) {
			for _, c := range r.Records {
				if c.Status != 2 || c.Disposition != "NO ANSWER" {
					t.Errorf("status filter returned %+v", c)
				}
			}
		}},
		{"filter", `{"filter":"3999","size":100}`, 5, 5, func(t *testing.T, r schema.CDRQueryResult) {
			for _, c := range r.Records {
				if c.Number != "3999" {
					t.Errorf("filter returned number %q", c.Number)
				}
			}
		}},
		{"by id asc", `{"sortBy":"id","orderBy":"asc","size":5}`, 5, 25, func(t *testing.T, r schema.CDRQueryResult) {
			for i := 1; i < len(r.Records); i++ {
				if r.Records[i].ID <= r.Records[i-1].ID {
					t.Errorf("ids not ascending: %d then %d", r.Records[i-1].ID, r.Records[i].ID)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := s.request(t, "pbx.1001.cdr.query", tc.body)
			if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
				t.Fatalf("error %s: %s", code, m.Data)
			}
			if m.Header.Get(bridge.SchemaHeader) != schema.TypeCDRQueryResult {
				t.Errorf("schema header = %q", m.Header.Get(bridge.SchemaHeader))
			}
			if err := schema.Validate(schema.TypeCDRQueryResult, m.Data); err != nil {
				t.Fatalf("reply not valid: %v", err)
			}
			var r schema.CDRQueryResult
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			if r.ErrCode != 0 || len(r.Records) != tc.wantLen || r.TotalNumber != tc.wantTotal {
				t.Fatalf("errcode %d, %d records, total %d; want %d records, total %d", r.ErrCode, len(r.Records), r.TotalNumber, tc.wantLen, tc.wantTotal)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestRequestErrors(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001", "1002")
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	// 1002 cannot log in (wrong secret): it stays offline.
	secrets["1002"] = "not-the-secret"
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	cfg.JetStream.Disabled = true
	runBridge(t, nc, cfg)
	rec.await("pbx.1001.session.online", 1, 10*time.Second)
	rec.await("pbx.1002.session.offline", 1, 10*time.Second)
	s := &setup{sim: sim, nc: nc}

	cases := []struct {
		name, subject, body string
		code                int
		pbxErrCode          int
	}{
		{"malformed json", "pbx.1001.cdr.query", `{"page":`, 400, 0},
		{"not an object", "pbx.1001.cdr.query", `[1,2]`, 400, 0},
		{"unknown field", "pbx.1001.cdr.query", `{"pages":1}`, 400, 0},
		{"page 0", "pbx.1001.cdr.query", `{"page":0}`, 400, 0},
		{"size 0", "pbx.1001.cdr.query", `{"size":0}`, 400, 0},
		{"size 101", "pbx.1001.cdr.query", `{"size":101}`, 400, 0},
		{"status 4", "pbx.1001.cdr.query", `{"status":4}`, 400, 0},
		{"sortBy", "pbx.1001.cdr.query", `{"sortBy":"duration"}`, 400, 0},
		{"orderBy", "pbx.1001.cdr.query", `{"orderBy":"up"}`, 400, 0},
		{"wrong type", "pbx.1001.cdr.query", `{"page":"1"}`, 400, 0},
		{"unknown extension", "pbx.4242.cdr.query", ``, 404, 0},
		{"unknown extension info", "pbx.4242.info", ``, 404, 0},
		{"offline extension", "pbx.1002.cdr.query", ``, 503, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := s.request(t, tc.subject, tc.body)
			checkError(t, m, tc.code, tc.pbxErrCode)
		})
	}
	t.Run("pbx error", func(t *testing.T) {
		sim.FailEndpoint("/api/v1.0/cdr/searchpersonal", 40002, "PARAMETER ERROR")
		defer sim.FailEndpoint("/api/v1.0/cdr/searchpersonal", 0, "")
		m := s.request(t, "pbx.1001.cdr.query", `{}`)
		checkError(t, m, 502, 40002)
	})
	t.Run("still answering", func(t *testing.T) {
		m := s.request(t, "pbx.1001.cdr.query", `{"size":1}`)
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("after bad requests: error %s %s", code, m.Data)
		}
		m = s.request(t, "pbx.1001.info", ``)
		var info schema.Info
		if err := json.Unmarshal(m.Data, &info); err != nil || info.State != schema.StateOnline || info.Extension.Number != "1001" {
			t.Fatalf("info = %s (%v)", m.Data, err)
		}
		if err := schema.Validate(schema.TypeInfo, m.Data); err != nil {
			t.Fatalf("info not valid: %v", err)
		}
	})
}

func checkError(t *testing.T, m *nats.Msg, code, pbxErrCode int) {
	t.Helper()
	if got := m.Header.Get(micro.ErrorCodeHeader); got != strconv.Itoa(code) {
		t.Fatalf("error code header = %q, want %d (body %s)", got, code, m.Data)
	}
	if m.Header.Get(micro.ErrorHeader) == "" {
		t.Errorf("no %s header", micro.ErrorHeader)
	}
	if err := schema.Validate(schema.TypeError, m.Data); err != nil {
		t.Fatalf("error body not valid: %v: %s", err, m.Data)
	}
	var e schema.ErrorReply
	if err := json.Unmarshal(m.Data, &e); err != nil {
		t.Fatal(err)
	}
	if want, _ := schema.ErrorCode(e.Error); e.Code != code || want != code {
		t.Errorf("body = %+v, want code %d", e, code)
	}
	if e.PBXErrCode != pbxErrCode {
		t.Errorf("pbx_errcode = %d, want %d", e.PBXErrCode, pbxErrCode)
	}
}

func TestMicroServiceDiscoverable(t *testing.T) {
	s := start(t, false, "1001")
	m := s.request(t, "$SRV.INFO."+bridge.ServiceName, "")
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	subjects := map[string]bool{}
	for _, ep := range info.Endpoints {
		subjects[ep.Subject] = true
	}
	if info.Name != bridge.ServiceName || !subjects["pbx.*.cdr.query"] || !subjects["pbx.*.info"] {
		t.Fatalf("service info = %+v", info)
	}
}

func TestKickedExtensionStops(t *testing.T) {
	s := start(t, false, "1001", "1002")
	logins := s.sim.Logins("1001")
	s.sim.Kick("1001")
	e := s.rec.await("pbx.1001.runtime.error", 1, 5*time.Second)[0]
	d := data[schema.RuntimeError](t, e)
	if d.Code != -107 || d.Name != "LOGGED_IN_ELSEWHERE" || d.Action != schema.ActionStopped {
		t.Errorf("runtime error = %+v", d)
	}
	s.rec.await("pbx.1001.session.stopped", 1, 5*time.Second)
	m := s.request(t, "pbx.1001.cdr.query", "")
	checkError(t, m, 503, 0)
	// The kick named 1001 only: 1002 stays online and keeps working.
	if _, err := s.sim.Call("1002", pbxtest.Call{Kind: pbxtest.Incoming}); err != nil {
		t.Fatal(err)
	}
	s.rec.await("pbx.1002.cdr.changed", 1, 5*time.Second)
	if got := s.rec.on("pbx.1002.runtime.error"); len(got) != 0 {
		t.Errorf("1002 got runtime errors: %d", len(got))
	}
	if got := s.sim.Logins("1001"); got != logins {
		t.Errorf("a kicked extension logged in again: %d logins, want %d", got, logins)
	}
}

func TestRuntimeErrors(t *testing.T) {
	cases := []struct {
		name   string
		fault  func(sim *pbxtest.Server)
		code   int
		action string
	}{
		{"deleted", func(sim *pbxtest.Server) { sim.DeleteExtension("1001") }, -108, schema.ActionStopped},
		{"relogin", func(sim *pbxtest.Server) { sim.ForceReLogin("1001") }, -109, schema.ActionRelogin},
		{"sdk plan", func(sim *pbxtest.Server) { sim.SetSDKPlan(false) }, -110, schema.ActionStopped},
		{"linkus disabled", func(sim *pbxtest.Server) { sim.SetClientFlags("1001", 0, 1, 1) }, -106, schema.ActionStopped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, false, "1001")
			tc.fault(s.sim)
			d := data[schema.RuntimeError](t, s.rec.await("pbx.1001.runtime.error", 1, 5*time.Second)[0])
			if d.Code != tc.code || d.Action != tc.action {
				t.Fatalf("runtime error = %+v, want code %d action %s", d, tc.code, tc.action)
			}
			if tc.action == schema.ActionRelogin {
				// Logged in again: online a second time, and calls still arrive
				// (once the PBX has read the new socket's topic list).
				s.rec.await("pbx.1001.session.online", 2, 10*time.Second)
				awaitSubscribed(t, s.sim, "1001", 2)
				if _, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming}); err != nil {
					t.Fatal(err)
				}
				s.rec.await("pbx.1001.cdr.changed", 1, 5*time.Second)
				return
			}
			s.rec.await("pbx.1001.session.stopped", 1, 5*time.Second)
		})
	}
}

func TestDroppedSocketReconnects(t *testing.T) {
	s := start(t, false, "1001")
	s.sim.DropSockets("1001")
	s.rec.await("pbx.1001.session.reconnecting", 1, 5*time.Second)
	s.rec.await("pbx.1001.session.online", 2, 10*time.Second)
	awaitSubscribed(t, s.sim, "1001", 2) // the new socket's topic list, or the call comes without a notification
	if _, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
		t.Fatal(err)
	}
	s.rec.await("pbx.1001.cdr.changed", 1, 5*time.Second)
	if got := len(s.sim.TopicLists("1001")); got < 2 {
		t.Errorf("topic lists sent = %d, want a re-subscribe after the reconnect", got)
	}
	if got := s.sim.MaxLiveSockets("1001"); got != 1 {
		t.Errorf("max live sockets = %d, want 1", got)
	}
}

func TestShutdownLogsOut(t *testing.T) {
	s := start(t, false, "1001", "1002")
	s.b.stop(t)
	for _, e := range []string{"1001", "1002"} {
		if got := s.sim.Logouts(e); got != 1 {
			t.Errorf("%s logouts = %d, want 1", e, got)
		}
		s.rec.await("pbx."+e+".session.stopped", 1, 5*time.Second)
		if got := s.sim.LiveSockets(e); got != 0 {
			waitFor(t, e+" socket closed", 5*time.Second, func() bool { return s.sim.LiveSockets(e) == 0 })
		}
	}
	// No one answers requests any more.
	if _, err := s.nc.Request("pbx.1001.info", nil, 300*time.Millisecond); err == nil {
		t.Error("the service still answers after shutdown")
	}
}

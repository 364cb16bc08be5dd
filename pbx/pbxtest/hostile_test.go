package pbxtest_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// These tests cover the hostile knobs: each makes the simulator a PBX that
// differs from the reference's happy path in one way.

func TestPagingKnobs(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	var ids []int // ascending, as sort_by=id&order_by=asc serves them
	for range 25 {
		c, err := p.Call("1001", pbxtest.Call{Silent: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	token := p.login(e)

	type knobs struct {
		cap               int
		offsetByRequested bool
		total             func(int) int
		repeatLast, same  bool
	}
	for _, tc := range []struct {
		name      string
		knobs     knobs
		page      int
		size      int
		number    string
		lo, hi    int // the ids served: ids[lo:hi]
		wantTotal int
	}{
		{"honest", knobs{}, 2, 10, "", 10, 20, 25},
		{"honest past the end", knobs{}, 4, 10, "", 0, 0, 25},
		{"cap, page 1", knobs{cap: 10}, 1, 20, "", 0, 10, 25},
		{"cap, capped offsets", knobs{cap: 10}, 2, 20, "", 10, 20, 25},
		{"cap, capped offsets, last", knobs{cap: 10}, 3, 20, "", 20, 25, 25},
		{"cap, capped offsets, past the end", knobs{cap: 10}, 4, 20, "", 0, 0, 25},
		{"cap, requested offsets", knobs{cap: 10, offsetByRequested: true}, 2, 20, "", 20, 25, 25},
		{"cap, requested offsets, past the end", knobs{cap: 10, offsetByRequested: true}, 3, 20, "", 0, 0, 25},
		{"cap above the size", knobs{cap: 10, offsetByRequested: true}, 2, 5, "", 5, 10, 25},
		{"repeat last page", knobs{repeatLast: true}, 4, 10, "", 20, 25, 25},
		{"repeat last page, far past", knobs{repeatLast: true}, 1 << 20, 10, "", 20, 25, 25},
		{"repeat last page, exact fit", knobs{repeatLast: true}, 6, 5, "", 20, 25, 25},
		{"repeat last page, in range", knobs{repeatLast: true}, 2, 10, "", 10, 20, 25},
		{"repeat last page, no hits", knobs{repeatLast: true}, 2, 10, "777", 0, 0, 0},
		{"repeat last page with cap", knobs{cap: 10, offsetByRequested: true, repeatLast: true}, 5, 20, "", 20, 25, 25},
		{"same page", knobs{same: true}, 7, 10, "", 0, 10, 25},
		{"same page with cap", knobs{cap: 4, same: true}, 3, 10, "", 0, 4, 25},
		{"negative total", knobs{total: func(int) int { return -1 }}, 1, 10, "", 0, 10, -1},
		{"huge total", knobs{total: func(n int) int { return n * 1_000_000 }}, 1, 10, "", 0, 10, 25_000_000},
		{"total with cap", knobs{cap: 10, total: func(n int) int { return n + 1 }}, 1, 20, "", 0, 10, 26},
	} {
		t.Run(tc.name, func(t *testing.T) { // not parallel: the knobs are the server's
			p.SetPageCap(tc.knobs.cap, tc.knobs.offsetByRequested)
			p.SetTotalNumber(tc.knobs.total)
			p.SetRepeatLastPage(tc.knobs.repeatLast)
			p.SetSamePage(tc.knobs.same)
			q := url.Values{"page": {strconv.Itoa(tc.page)}, "page_size": {strconv.Itoa(tc.size)}, "sort_by": {"id"}, "order_by": {"asc"}}
			if tc.number != "" {
				q.Set("number", tc.number)
			}
			body := p.get("/api/v1.0/cdr/searchpersonal", token, q)
			checkSuccess(t, "searchpersonal", body)
			var got struct {
				Records []pbxtest.CDR `json:"personal_cdr_list"`
				Total   int           `json:"total_number"`
			}
			remarshal(t, body, &got)
			var gotIDs []int
			for _, r := range got.Records {
				gotIDs = append(gotIDs, r.ID)
			}
			if want := ids[tc.lo:tc.hi]; !slices.Equal(gotIDs, want) || got.Total != tc.wantTotal {
				t.Errorf("ids %v total %d, want %v total %d", gotIDs, got.Total, want, tc.wantTotal)
			}
		})
	}
}

// leaves flattens a JSON document decoded with UseNumber into its leaves by
// path ("a.b.0.c").
func leaves(prefix string, v any, out map[string]any) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			leaves(prefix+"."+k, x, out)
		}
	case []any:
		for i, x := range v {
			leaves(prefix+"."+strconv.Itoa(i), x, out)
		}
	default:
		out[prefix] = v
	}
	return out
}

func decodeNumbers(t *testing.T, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return v
}

// raw is an HTTP GET that returns the answer's body as sent.
func (p *testPBX) raw(path, token string, q url.Values) []byte {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.URL()+path+"?"+q.Encode(), nil)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// TestNumberStyles reads every body the style applies to in the plain style
// and then in each style, and checks leaf by leaf that exactly the integers
// of the styled fields changed, and how.
func TestNumberStyles(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{BaseOEMID: 1})
	a := p.AddExtension(pbxtest.Extension{Number: "1001", ID: 42})
	b := p.AddExtension(pbxtest.Extension{Number: "1002"})
	at := time.Unix(1693201380, 0)
	if _, err := p.Call("1001", pbxtest.Call{Peer: "1002", TalkDuration: 3, Time: at, Silent: true}); err != nil {
		t.Fatal(err)
	}
	token := p.login(a)
	// 1002's calls bring the 20049 frames, so that 1001's records stay the
	// same from one read to the next.
	notified := p.subscribe("1002", p.login(b), newFirmwareTopics...)

	// styled reports whether the style applies to the leaf at path.
	bodies := map[string]func(path string) bool{
		"/api/v1.0/pbx/getproduct":              func(p string) bool { return p == ".product.base_oem_id" || p == ".product.oem_id" },
		"/api/v1.0/extension/getpersonalglobal": func(p string) bool { return p != ".errcode" },
		"/api/v1.0/extension/getpersonal":       func(p string) bool { return strings.HasPrefix(p, ".extension.") },
		"/api/v1.0/cdr/searchpersonal": func(p string) bool {
			return strings.HasPrefix(p, ".personal_cdr_list.") || p == ".total_number"
		},
		"20049": func(p string) bool { return p == ".personal_cdr.timestamp" || p == ".personal_cdr.talk_duration" },
	}
	read := func() map[string]map[string]any {
		out := map[string]map[string]any{}
		for path := range bodies {
			if path == "20049" {
				if _, err := p.Call("1002", pbxtest.Call{Peer: "1001", TalkDuration: 7, Time: at}); err != nil {
					t.Fatal(err)
				}
				var frame struct{ Msg string }
				if err := json.Unmarshal([]byte(notified.next()), &frame); err != nil {
					t.Fatal(err)
				}
				out[path] = leaves("", decodeNumbers(t, []byte(frame.Msg)), map[string]any{})
				continue
			}
			q := url.Values{}
			if path == "/api/v1.0/pbx/getproduct" {
				q.Set("host", p.host())
			}
			out[path] = leaves("", decodeNumbers(t, p.raw(path, token, q)), map[string]any{})
		}
		return out
	}
	plain := read()
	// The checks below mean something only if these integers are there.
	for path, leaf := range map[string]string{
		"/api/v1.0/pbx/getproduct":              ".product.oem_id",
		"/api/v1.0/extension/getpersonalglobal": ".turn_port",
		"/api/v1.0/extension/getpersonal":       ".extension.enb_web_client",
		"/api/v1.0/cdr/searchpersonal":          ".personal_cdr_list.0.extension.ext_id",
		"20049":                                 ".personal_cdr.timestamp",
	} {
		if _, isNumber := plain[path][leaf].(json.Number); !isNumber {
			t.Fatalf("%s: %s is %#v, want a number", path, leaf, plain[path][leaf])
		}
	}

	for _, tc := range []struct {
		name  string
		style pbxtest.NumberStyle
		want  func(n json.Number) any
	}{
		{"strings", pbxtest.NumbersAsStrings, func(n json.Number) any { return string(n) }},
		{"floats", pbxtest.NumbersAsFloats, func(n json.Number) any { return n + ".0" }},
		{"plain again", pbxtest.NumbersPlain, func(n json.Number) any { return n }},
	} {
		t.Run(tc.name, func(t *testing.T) { // not parallel: the style is the server's
			p.SetNumberStyle(tc.style)
			got := read()
			for path, styled := range bodies {
				if len(got[path]) != len(plain[path]) {
					t.Errorf("%s: %d leaves, want %d", path, len(got[path]), len(plain[path]))
				}
				for leaf, v := range plain[path] {
					want := v
					if n, isNumber := v.(json.Number); isNumber && styled(leaf) {
						want = tc.want(n)
					}
					if got[path][leaf] != want {
						t.Errorf("%s: %s is %#v, want %#v", path, leaf, got[path][leaf], want)
					}
				}
			}
		})
	}
}

func TestEchoPassword(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	checkError(t, "refused login", p.loginAs("1001", "wrong-pw"), 10009, "INVALID USERNAME OR PASSWORD")

	p.SetEchoPassword(true)
	checkError(t, "echoed bad password", p.loginAs("1001", "wrong-pw"), 10009, "INVALID USERNAME OR PASSWORD: wrong-pw")
	checkError(t, "echoed unknown user", p.loginAs("1999", e.Secret), 10009, "INVALID USERNAME OR PASSWORD: "+e.Secret)
	p.login(e) // a good login is unaffected

	p.SetEchoPassword(false)
	checkError(t, "echo turned off", p.loginAs("1001", "wrong-pw"), 10009, "INVALID USERNAME OR PASSWORD")
}

// TestEndlessHandshake runs alone (not in parallel) so that it can check
// that no goroutine outlives Close.
func TestEndlessHandshake(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
	defer tr.CloseIdleConnections()
	p := &testPBX{Server: srv, t: t, client: &http.Client{Transport: tr, Timeout: wait}}
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	addr := p.host()

	// upgrade sends the SDK's upgrade request on a connection of its own.
	upgrade := func() (*tls.Conn, *bufio.Reader) {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: srv.CertPool()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(wait))
		fmt.Fprintf(conn, "GET /api/v1.0/subscribe?access_token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", url.QueryEscape(token), addr)
		return conn, bufio.NewReader(conn)
	}

	p.SetEndlessHandshake(true)
	idle := runtime.NumGoroutine()
	reader, r := upgrade()
	if status, err := r.ReadString('\n'); err != nil || status != "HTTP/1.1 101 Switching Protocols\r\n" {
		t.Fatalf("status line %q, %v", status, err)
	}
	const filler = "X-Filler: "
	for { // the upgrade's own headers, then the one that never ends
		if b, err := r.Peek(len(filler)); err != nil || string(b) == filler {
			break
		}
		if line, err := r.ReadString('\n'); err != nil || line == "\r\n" {
			t.Fatalf("headers end before the filler: %q, %v", line, err)
		}
	}
	if _, err := r.Discard(len(filler)); err != nil {
		t.Fatal(err)
	}
	// Far more than any sane header limit, without an end in sight.
	const far = 4 << 20
	n, err := io.Copy(io.Discard, io.LimitReader(r, far))
	if err != nil || n != far {
		t.Fatalf("read %d bytes of the header: %v", n, err)
	}
	if b, _ := r.Peek(1); len(b) != 1 || b[0] != 'a' {
		t.Fatalf("header continues with %q, want more filler", b)
	}
	reader.Close()
	eventually(t, "the writer to notice the client went away", func() bool { return runtime.NumGoroutine() <= idle })

	// A client that stops reading holds a blocked write: Close must end it.
	stalled, r := upgrade()
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if p.LiveSockets("1001") != 0 {
		t.Fatal("an endless handshake counted as a socket")
	}

	// Turned off, upgrades work again.
	p.SetEndlessHandshake(false)
	p.subscribe("1001", token, newFirmwareTopics...)

	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return with a handshake in progress")
	}
	stalled.Close()
	tr.CloseIdleConnections()
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before })
}

func TestRejectAPITokens(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	first, second := p.login(e), p.login(e)
	bystander := p.login(p.AddExtension(pbxtest.Extension{Number: "1002"}))
	s := p.subscribe("1001", first, newFirmwareTopics...)

	p.RejectAPITokens("1001", true)
	for _, path := range []string{
		"/api/v1.0/extension/getpersonalglobal", "/api/v1.0/licenseservice/get", "/api/v1.0/extension/getpersonal",
		"/api/v1.0/extension/getregisterinfo", "/api/v1.0/cdr/searchpersonal", "/api/v1.0/logout",
	} {
		for _, token := range []string{first, second} {
			checkError(t, path+" with a rejected token", p.get(path, token, nil), 10004, "INVALID OR EXPIRED TOKEN")
		}
	}
	if p.Logouts("1001") != 0 {
		t.Error("a rejected logout was counted")
	}
	// The socket disagrees with the API: it lives, and takes new upgrades.
	s.text("heartbeat")
	if got := s.next(); got != "heartbeat response" {
		t.Fatalf("socket answer %q", got)
	}
	again := p.subscribe("1001", second, newFirmwareTopics...)
	p.Notify("1001", 20049, map[string]any{"ext_num": "1001"})
	for _, c := range []*sock{s, again} {
		if n := decodeNotice(t, c.next()); n.Type != 20049 {
			t.Fatalf("type %d, want 20049", n.Type)
		}
	}
	if !p.valid(bystander) {
		t.Error("another extension's token rejected")
	}

	p.RejectAPITokens("1001", false)
	if !p.valid(first) || !p.valid(second) {
		t.Error("tokens still rejected after the knob was turned off")
	}
}

func TestFlood(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	other := p.subscribe("1002", p.login(p.AddExtension(pbxtest.Extension{Number: "1002"})), newFirmwareTopics...)
	subscribed := p.subscribe("1001", token, newFirmwareTopics...)
	unsubscribed := p.open("1001", token)

	const n, frame = 2000, "garbage"
	p.Flood("1001", n, frame)
	for _, s := range []*sock{subscribed, unsubscribed} {
		for i := range n {
			if got := s.next(); got != frame {
				t.Fatalf("frame %d is %q", i, got)
			}
		}
	}
	p.nothingBefore("1001", subscribed, unsubscribed)
	p.nothingBefore("1002", other)
}

func TestNotifySIPRegistration(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	other := p.subscribe("1002", p.login(p.AddExtension(pbxtest.Extension{Number: "1002"})), newFirmwareTopics...)
	s := p.subscribe("1001", token, newFirmwareTopics...)
	unsubscribed := p.open("1001", token)

	creds := p.NotifySIPRegistration("1001")
	var frame struct {
		Type int
		Msg  string
	}
	if err := json.Unmarshal([]byte(s.next()), &frame); err != nil || frame.Type != 20066 {
		t.Fatalf("frame type %d, %v; want 20066", frame.Type, err)
	}
	found := leaves("", decodeNumbers(t, []byte(frame.Msg)), map[string]any{})
	if found[".reg_name"] != "1001" || found[".realm"] != "Yeastar" {
		t.Errorf("msg %s lacks the registration's realm and name", frame.Msg)
	}
	// Every credential returned is in the msg, they come from several
	// depths, and the register password is the one getregisterinfo gives.
	depths := map[int]bool{}
	for _, c := range creds {
		if len(c) < 8 {
			t.Errorf("credential %q too short to be found reliably", c)
		}
		var at string
		for path, v := range found {
			if v == c {
				at = path
			}
		}
		if at == "" {
			t.Errorf("credential %q not in msg %s", c, frame.Msg)
		}
		depths[strings.Count(at, ".")] = true
	}
	if len(creds) < 4 || len(depths) < 3 {
		t.Errorf("%d credentials at %d depths, want several at several", len(creds), len(depths))
	}
	if reg := p.get("/api/v1.0/extension/getregisterinfo", token, nil)["registerpassword"]; !slices.Contains(creds, reg.(string)) {
		t.Errorf("register password %v not among the credentials", reg)
	}
	p.nothingBefore("1001", s, unsubscribed)
	p.nothingBefore("1002", other)
	if got := p.NotifySIPRegistration("1999"); got != nil {
		t.Errorf("unknown extension: %v", got)
	}
}

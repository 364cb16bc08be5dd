package pbxtest_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// These tests drive the simulator the way the SDK does, with a plain HTTP
// client and a gorilla WebSocket dialer, so that they check the wire and not
// any client package.

const wait = 5 * time.Second // deadline for every awaited condition

// newFirmwareTopics is the SDK's subscription as a WebClient on firmware
// 37.12.0.10 or later.
var newFirmwareTopics = []int{10000, 20007, 20008, 20010, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104, 20153, 20154}

// webPCTopics adds 20013, which the WebPC user agent subscribes to.
var webPCTopics = []int{10000, 20007, 20008, 20010, 20013, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104, 20153, 20154}

// testPBX is a started simulator with a client that trusts it.
type testPBX struct {
	*pbxtest.Server
	t      *testing.T
	client *http.Client
}

func start(t *testing.T, opts pbxtest.Options) *testPBX {
	t.Helper()
	srv, err := pbxtest.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return &testPBX{Server: srv, t: t, client: &http.Client{Transport: tr, Timeout: wait}}
}

// do sends a request with the token (if any) as the raw Authorization
// header, and returns the status and the decoded JSON body.
func (p *testPBX) do(method, path, token string, query url.Values, body string, header http.Header) (int, map[string]any) {
	p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	u := p.URL() + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if h := header.Get("Host"); h != "" { // the client sends req.Host, not a Host header
		req.Host = h
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		p.t.Fatalf("%s %s: answer %q is not a JSON object: %v", method, path, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		p.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, out
}

// get is an authenticated GET that must answer HTTP 200.
func (p *testPBX) get(path, token string, query url.Values) map[string]any {
	p.t.Helper()
	status, body := p.do(http.MethodGet, path, token, query, "", nil)
	if status != http.StatusOK {
		p.t.Fatalf("GET %s: HTTP %d", path, status)
	}
	return body
}

// loginAs posts the SDK's login body for the WebClient user agent and
// returns the answer.
func (p *testPBX) loginAs(username, password string) map[string]any {
	p.t.Helper()
	return p.loginFrom(username, password, nil)
}

// loginFrom posts the SDK's login body with login_source source (nil for
// WebClient, "webpc" for WebPC) and returns the answer.
func (p *testPBX) loginFrom(username, password string, source any) map[string]any {
	p.t.Helper()
	body, _ := json.Marshal(map[string]any{"username": username, "password": password, "login_source": source, "login_jump": "sdk"})
	status, out := p.do(http.MethodPost, "/api/v1.0/login", "", nil, string(body), http.Header{"Content-Type": {"application/json"}})
	if status != http.StatusOK {
		p.t.Fatalf("login: HTTP %d", status)
	}
	return out
}

// login logs ext in and returns its token.
func (p *testPBX) login(e pbxtest.Extension) string {
	p.t.Helper()
	out := p.loginAs(e.Number, e.Secret)
	token, _ := out["access_token"].(string)
	if errcode(out) != 0 || token == "" {
		p.t.Fatalf("login %s: %v", e.Number, out)
	}
	return token
}

// loginWebPC logs ext in as the WebPC user agent and returns its token.
func (p *testPBX) loginWebPC(e pbxtest.Extension) string {
	p.t.Helper()
	out := p.loginFrom(e.Number, e.Secret, "webpc")
	token, _ := out["access_token"].(string)
	if errcode(out) != 0 || token == "" {
		p.t.Fatalf("login %s as WebPC: %v", e.Number, out)
	}
	return token
}

// host is the PBX's host:port, what getproduct's host parameter must be.
func (p *testPBX) host() string { return strings.TrimPrefix(p.URL(), "https://") }

// valid reports whether the token is accepted by the API.
func (p *testPBX) valid(token string) bool {
	p.t.Helper()
	switch c := errcode(p.get("/api/v1.0/extension/getpersonal", token, nil)); c {
	case 0:
		return true
	case 10004:
		return false
	default:
		p.t.Fatalf("getpersonal: errcode %d", c)
		return false
	}
}

func errcode(body map[string]any) int {
	f, ok := body["errcode"].(float64)
	if !ok {
		return -1 << 31
	}
	return int(f)
}

// dial opens a subscribe socket with the token, as the SDK does.
func (p *testPBX) dial(token string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: p.CertPool()}, HandshakeTimeout: wait}
	u := "wss" + strings.TrimPrefix(p.URL(), "https") + "/api/v1.0/subscribe?access_token=" + url.QueryEscape(token)
	ws, resp, err := d.Dial(u, nil)
	if ws != nil {
		p.t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// open dials a socket of ext that never subscribes, and waits until the
// server counts it as live.
func (p *testPBX) open(ext, token string) *sock {
	p.t.Helper()
	n := p.LiveSockets(ext)
	ws, _, err := p.dial(token)
	if err != nil {
		p.t.Fatalf("dial: %v", err)
	}
	eventually(p.t, "socket live", func() bool { return p.LiveSockets(ext) > n })
	return &sock{ws, p.t}
}

// sock is the client end of a subscribe socket.
type sock struct {
	*websocket.Conn
	t *testing.T
}

// subscribe dials, sends the topic_list and waits until the server has
// recorded it.
func (p *testPBX) subscribe(ext, token string, topics ...int) *sock {
	p.t.Helper()
	ws, _, err := p.dial(token)
	if err != nil {
		p.t.Fatalf("dial: %v", err)
	}
	s := &sock{ws, p.t}
	n := len(p.TopicLists(ext))
	s.topicList(topics...)
	eventually(p.t, "topic_list recorded", func() bool { return len(p.TopicLists(ext)) > n })
	return s
}

func (s *sock) text(frame string) {
	s.t.Helper()
	if err := s.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		s.t.Fatalf("write %q: %v", frame, err)
	}
}

func (s *sock) topicList(topics ...int) {
	s.t.Helper()
	b, _ := json.Marshal(map[string][]int{"topic_list": topics})
	s.text(string(b))
}

// next returns the next text frame, failing the test after the deadline.
func (s *sock) next() string {
	s.t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(wait))
	kind, data, err := s.ReadMessage()
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage {
		s.t.Fatalf("frame of kind %d, want text", kind)
	}
	return string(data)
}

// end reads until the socket fails and returns the error.
func (s *sock) end() error {
	s.t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, _, err := s.ReadMessage(); err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				s.t.Fatalf("socket still open after %v", wait)
			}
			return err
		}
	}
}

// closeCode returns the code of the close frame that ended the socket, or
// -1 if it ended without one.
func (s *sock) closeCode() int {
	s.t.Helper()
	var ce *websocket.CloseError
	if err := s.end(); errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// notice is a decoded notification frame.
type notice struct {
	Type int
	Msg  map[string]any
}

// decodeNotice checks the frame's shape, {"type":N,"msg":"<JSON>"} and
// nothing else, and decodes msg a second time as the SDK does.
func decodeNotice(t *testing.T, frame string) notice {
	t.Helper()
	var outer map[string]json.RawMessage
	if err := json.Unmarshal([]byte(frame), &outer); err != nil {
		t.Fatalf("frame %q: %v", frame, err)
	}
	if keys := sortedKeys(outer); !slices.Equal(keys, []string{"msg", "type"}) {
		t.Fatalf("frame %q has keys %v", frame, keys)
	}
	var n notice
	var msg string
	if err := json.Unmarshal(outer["type"], &n.Type); err != nil {
		t.Fatalf("frame %q: type: %v", frame, err)
	}
	if err := json.Unmarshal(outer["msg"], &msg); err != nil {
		t.Fatalf("frame %q: msg is not a string: %v", frame, err)
	}
	if err := json.Unmarshal([]byte(msg), &n.Msg); err != nil {
		t.Fatalf("frame %q: msg is not a JSON object: %v", frame, err)
	}
	return n
}

// nothingBefore sends a marker to ext's sockets through SendRaw and checks
// that it is the next frame on each of socks: frames to one socket are
// written in order, so this proves that nothing else was sent to them.
func (p *testPBX) nothingBefore(ext string, socks ...*sock) {
	p.t.Helper()
	const marker = "marker"
	p.SendRaw(ext, marker)
	for _, s := range socks {
		if got := s.next(); got != marker {
			p.t.Fatalf("socket of %s received %q, want nothing", ext, got)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// eventually polls cond until it holds, failing the test after the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

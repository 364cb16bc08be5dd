package pbxtest_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// eventDial opens an OpenAPI event socket with the token and header.
func (p *testPBX) eventDial(token string, header http.Header) (*sock, *http.Response, error) {
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: p.CertPool()}, HandshakeTimeout: wait}
	u := "wss" + strings.TrimPrefix(p.URL(), "https") + "/openapi/v1.0/subscribe?access_token=" + url.QueryEscape(token)
	ws, resp, err := d.Dial(u, header)
	if ws == nil {
		return nil, resp, err
	}
	p.t.Cleanup(func() { ws.Close() })
	return &sock{ws, p.t}, resp, err
}

// events opens an event socket and subscribes to topics, checking the
// PBX's answer.
func (p *testPBX) events(topics ...int) *sock {
	p.t.Helper()
	access, _ := p.tokenPair()
	s, _, err := p.eventDial(access, http.Header{"User-Agent": {oaUserAgent}})
	if err != nil {
		p.t.Fatalf("dial: %v", err)
	}
	s.topicList(topics...)
	if got := s.next(); got != `{"errcode":0,"errmsg":"SUCCESS"}` {
		p.t.Fatalf("subscribe answer %q", got)
	}
	return s
}

// event reads the next frame as an event: {"type","sn","msg"} with msg a
// string (asString) or an object holding the document.
func (s *sock) event(asString bool) (int, map[string]any) {
	s.t.Helper()
	frame := s.next()
	var outer map[string]json.RawMessage
	if err := json.Unmarshal([]byte(frame), &outer); err != nil || !slices.Equal(sortedKeys(outer), []string{"msg", "sn", "type"}) {
		s.t.Fatalf("frame %q is not {type, sn, msg}", frame)
	}
	var typ int
	_ = json.Unmarshal(outer["type"], &typ)
	raw := []byte(outer["msg"])
	if asString {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			s.t.Fatalf("frame %q: msg is not a string", frame)
		}
		raw = []byte(str)
	}
	var msg map[string]any
	if err := json.Unmarshal(raw, &msg); err != nil {
		s.t.Fatalf("frame %q: msg is not an object: %v", frame, err)
	}
	return typ, msg
}

func TestEventSocketStrict(t *testing.T) {
	p := start(t, pbxtest.Options{})
	access, _ := p.tokenPair()
	ua := http.Header{"User-Agent": {oaUserAgent}}
	if _, resp, err := p.eventDial(access, nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("no User-Agent: %v, want HTTP 403", err)
	}
	if _, resp, err := p.eventDial("bogus", ua); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %v, want HTTP 401", err)
	}
	for _, frame := range []string{
		"hello", `{"topic_list":[]}`, `{"topic_list":["30011"]}`, `{"topic_list":[30011,30011]}`,
		`{"topic_list":[20049]}`, `{"topic_list":[30011],"extra":1}`, `[30011]`,
	} {
		s, _, err := p.eventDial(access, ua)
		if err != nil {
			t.Fatal(err)
		}
		s.text(frame)
		if got := s.next(); got != `{"errcode":40002,"errmsg":"PARAMETER ERROR"}` {
			t.Errorf("%s: answer %q, want errcode 40002", frame, got)
		}
		if code := s.closeCode(); code != websocket.ClosePolicyViolation {
			t.Errorf("%s: close code %d, want 1008", frame, code)
		}
	}
	s, _, err := p.eventDial(access, ua)
	if err != nil {
		t.Fatal(err)
	}
	s.text("heartbeat")
	if code := s.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("heartbeat before topic_list: close code %d, want 1008", code)
	}

	s = p.events(30012, 30011) // any order
	s.text("heartbeat")
	if got := s.next(); got != "heartbeat response" {
		t.Errorf("heartbeat answered %q", got)
	}
	if got := p.EventTopicLists(); len(got) != 1 || !slices.Equal(got[0], []int{30012, 30011}) {
		t.Errorf("topic lists %v", got)
	}
}

func TestEventSocketEnds(t *testing.T) {
	p := start(t, pbxtest.Options{})
	p.SetEventIdleTimeout(200 * time.Millisecond)
	s := p.events(30011)
	if code := s.closeCode(); code != websocket.CloseNormalClosure {
		t.Errorf("idle socket: close code %d, want 1000", code)
	}

	p.SetEventIdleTimeout(time.Minute)
	p.SetTokenLifetime(500*time.Millisecond, 0)
	s = p.events(30011)
	if code := s.closeCode(); code != websocket.ClosePolicyViolation || p.EventSocketsExpired() != 1 {
		t.Errorf("token expired: close code %d, %d expired; want 1008 and 1", code, p.EventSocketsExpired())
	}

	p.SetTokenLifetime(time.Minute, 0)
	s = p.events(30011)
	p.RevokeOpenAPITokens()
	s.text("heartbeat")
	if code := s.closeCode(); code != websocket.ClosePolicyViolation || p.EventSocketsRevoked() != 1 {
		t.Errorf("token revoked: close code %d, %d revoked; want 1008 and 1", code, p.EventSocketsRevoked())
	}
}

// A call's frames have the reference's shapes: 30011 with the whole member
// list, msg a string; 30012 with " " for empty fields and a pin_code.
func TestEventSocketCallFrames(t *testing.T) {
	p := start(t, pbxtest.Options{})
	p.AddExtension(pbxtest.Extension{Number: "2005"})
	s := p.events(30011, 30012)
	id, err := p.StartCall("5550100", "2005")
	if err != nil {
		t.Fatal(err)
	}
	typ, msg := s.event(true)
	members, _ := msg["members"].([]any)
	if typ != 30011 || msg["call_id"] != id || len(members) != 2 {
		t.Fatalf("30011 = %d %v", typ, msg)
	}
	in, _ := members[0].(map[string]any)["inbound"].(map[string]any)
	ext, _ := members[1].(map[string]any)["extension"].(map[string]any)
	if in["from"] != "5550100" || in["to"] != "2005" || in["trunk_name"] == "" || in["member_status"] != "ALERT" ||
		ext["number"] != "2005" || ext["member_status"] != "RING" || !strings.HasPrefix(ext["channel_id"].(string), "PJSIP/2005-") {
		t.Errorf("members %v", members)
	}
	if err := p.EndCall(id); err != nil {
		t.Fatal(err)
	}
	if typ, _ := s.event(true); typ != 30011 {
		t.Fatalf("type %d, want the BYE 30011", typ)
	}
	typ, cdr := s.event(true)
	if typ != 30012 || cdr["call_id"] != id || cdr["pin_code"] != " " || cdr["status"] != "NO ANSWER" || cdr["type"] != "Inbound" ||
		cdr["did_number"] != "2005" || cdr["recording"] != " " || cdr["call_duration"] == nil {
		t.Errorf("30012 = %v", cdr)
	}
	if got := p.CDRs("2005"); len(got) != 1 || got[0].Status != 2 {
		t.Errorf("CDRs of 2005 = %+v, want one missed call", got)
	}

	p.SetEventQuirks(pbxtest.EventQuirks{MsgStyle: pbxtest.MsgAsObject})
	if _, err := p.StartCall("2005", "5550101"); err != nil {
		t.Fatal(err)
	}
	if typ, msg := s.event(false); typ != 30011 || msg["call_id"] == nil {
		t.Errorf("msg as object: %d %v", typ, msg)
	}
}

func TestCallControlEndpointsStrict(t *testing.T) {
	p := start(t, pbxtest.Options{})
	p.AddExtension(pbxtest.Extension{Number: "1001"})
	p.AddExtension(pbxtest.Extension{Number: "1002"})
	access, _ := p.tokenPair()
	post := func(ep string, body any) int {
		t.Helper()
		_, out := p.oa(http.MethodPost, ep, access, nil, body)
		return errcode(out)
	}
	for _, tc := range []struct {
		ep   string
		body any
		want int
	}{
		{"call/dial", map[string]any{"caller": "1001"}, 40002},
		{"call/dial", map[string]any{"caller": "1001", "callee": 1002}, 40002},
		{"call/dial", map[string]any{"caller": "1001", "callee": "1002", "ring_timeout": "30"}, 40002},
		{"call/dial", map[string]any{"caller": "1001", "callee": "1002", "auto_answer": "true"}, 40002},
		{"call/dial", map[string]any{"caller": "1009", "callee": "1002"}, 60001},
		{"call/hangup", map[string]any{}, 40002},
		{"call/hangup", map[string]any{"channel_id": "PJSIP/1001-00000009"}, 60001},
		{"call/hold", map[string]any{"call_id": "1.1"}, 40002},
		{"call/transfer", map[string]any{"type": "blind", "channel_id": "PJSIP/1001-1"}, 40002},
		{"call/transfer", map[string]any{"type": "attended", "channel_id": "PJSIP/1001-1", "attended_operate": "merge"}, 40002},
	} {
		if got := post(tc.ep, tc.body); got != tc.want {
			t.Errorf("%s %v: errcode %d, want %d", tc.ep, tc.body, got, tc.want)
		}
	}
	_, out := p.oa(http.MethodGet, "call/query", access, url.Values{"call_id": {"1.1"}, "extension": {"1001"}}, nil)
	if errcode(out) != 40002 {
		t.Errorf("query with two selectors: %v", out)
	}
	_, out = p.oaRaw(http.MethodPost, "call/dial", access, nil, map[string]any{"caller": "1001", "callee": "1002"}, http.Header{})
	if errcode(out) != 40002 {
		t.Errorf("no User-Agent: %v", out)
	}
	_, out = p.oa(http.MethodPost, "call/dial", "", nil, map[string]any{"caller": "1001", "callee": "1002"})
	if errcode(out) != 10004 {
		t.Errorf("no token: %v", out)
	}

	_, out = p.oa(http.MethodPost, "call/dial", access, nil, map[string]any{"caller": "1001", "callee": "1002", "auto_answer": "yes", "dial_permission": "1001"})
	id, _ := out["call_id"].(string)
	if errcode(out) != 0 || id == "" {
		t.Fatalf("dial: %v", out)
	}
	_, out = p.oa(http.MethodGet, "call/query", access, url.Values{"call_id": {id}}, nil)
	data, _ := out["data"].([]any)
	if errcode(out) != 0 || len(data) != 1 || data[0].(map[string]any)["call_id"] != id {
		t.Errorf("query: %v", out)
	}
	if calls := p.LiveCalls(); len(calls) != 1 || len(calls[0].Members) != 2 || calls[0].Members[1].Status != "RING" {
		t.Errorf("live calls %+v, want the caller ringing back and the callee ringing", calls)
	}
}

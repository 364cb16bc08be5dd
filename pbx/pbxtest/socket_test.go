package pbxtest_test

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestSubscribeRecordsTopicLists(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	s := p.subscribe("1001", token, newFirmwareTopics...)
	if got := p.TopicLists("1001"); len(got) != 1 || !slices.Equal(got[0], newFirmwareTopics) {
		t.Fatalf("TopicLists = %v", got)
	}

	// A re-subscription (after errcode -3 or 20104) is recorded too.
	s.topicList(newFirmwareTopics...)
	eventually(t, "second topic_list", func() bool { return len(p.TopicLists("1001")) == 2 })
	p.Notify("1001", 20049, map[string]any{"ext_num": "1001"})
	if n := decodeNotice(t, s.next()); n.Type != 20049 {
		t.Fatalf("type %d, want 20049", n.Type)
	}

	// The frame as the SDK writes it, whitespace and all, is accepted.
	s.text(`{"topic_list": [10000, 20007, 20008, 20010, 20015, 20047, 20048, 20049,` +
		"\n20053, 20065, 20066, 20082, 20104, 20153, 20154] }")
	eventually(t, "third topic_list", func() bool { return len(p.TopicLists("1001")) == 3 })

	// TopicLists returns copies.
	p.TopicLists("1001")[0][0] = 1
	if p.TopicLists("1001")[0][0] != 10000 {
		t.Fatal("TopicLists shares memory with the server")
	}
}

func TestSubscribeUpgradeRejections(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	token := p.login(e)

	for name, tok := range map[string]string{"no token": "", "unknown token": "0123456789abcdef0123456789abcdef", "bearer": "Bearer " + token} {
		if _, resp, err := p.dial(tok); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: err %v, response %v, want HTTP 401", name, err, resp)
		}
	}

	p.CloseUpgrades(true)
	if _, resp, err := p.dial(token); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("refused upgrades: err %v, response %v, want HTTP 503", err, resp)
	}
	p.CloseUpgrades(false)
	p.subscribe("1001", token, newFirmwareTopics...)

	// The token must be escaped in the URL: its '+' reads as a space.
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: p.CertPool()}, HandshakeTimeout: wait}
	raw := "wss" + strings.TrimPrefix(p.URL(), "https") + "/api/v1.0/subscribe?access_token=" + token
	if ws, resp, err := d.Dial(raw, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		if ws != nil {
			ws.Close()
		}
		t.Errorf("unescaped token: err %v, response %v, want HTTP 401", err, resp)
	}

	// A plain GET without the upgrade headers is not a socket.
	req, _ := http.NewRequest(http.MethodGet, p.URL()+"/api/v1.0/subscribe?access_token="+url.QueryEscape(token), nil)
	if resp, err := p.client.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET: %v %v, want HTTP 400", resp, err)
	} else {
		resp.Body.Close()
	}
	if p.LiveSockets("1001") != 1 || p.MaxLiveSockets("1001") != 1 {
		t.Errorf("rejected upgrades counted as sockets: live %d max %d", p.LiveSockets("1001"), p.MaxLiveSockets("1001"))
	}
}

func TestSubscribeProtocolViolations(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))

	for _, tc := range []struct {
		name      string
		subscribe bool // send a good topic_list first
		frame     string
		binary    bool
	}{
		{"heartbeat first", false, "heartbeat", false},
		{"not JSON", false, "subscribe", false},
		{"extra key", false, `{"topic_list":[20049],"token":"x"}`, false},
		{"other key", false, `{"topics":[20049]}`, false},
		{"not a list", false, `{"topic_list":20049}`, false},
		{"empty list", false, `{"topic_list":[]}`, false},
		{"descending", false, `{"topic_list":[20049,10000]}`, false},
		{"duplicate", false, `{"topic_list":[10000,10000]}`, false},
		{"unknown topic", false, `{"topic_list":[10000,20050]}`, false},
		{"topic as string", false, `{"topic_list":["10000"]}`, false},
		{"topic as float", false, `{"topic_list":[10000.0]}`, false},
		{"JSON array", false, `[10000]`, false},
		{"binary topic_list", false, `{"topic_list":[10000]}`, true},
		{"heartbeat with newline", true, "heartbeat\n", false},
		{"heartbeat response from client", true, "heartbeat response", false},
		{"bad re-subscribe", true, `{"topic_list":[20049,20048]}`, false},
		{"base set only on new firmware", false, `{"topic_list":[10000,20007,20008,20010,20015,20047,20048,20049,20053,20065,20066,20082,20104]}`, false},
		{"WebPC's 20013 from a WebClient", false, `{"topic_list":[10000,20007,20008,20010,20013,20015,20047,20048,20049,20053,20065,20066,20082,20104,20153,20154]}`, false},
		{"a subset", true, `{"topic_list":[10000,20049]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _, err := p.dial(token)
			if err != nil {
				t.Fatal(err)
			}
			s := &sock{ws, t}
			lists := len(p.TopicLists("1001"))
			if tc.subscribe {
				s.topicList(newFirmwareTopics...)
				lists++
			}
			kind := websocket.TextMessage
			if tc.binary {
				kind = websocket.BinaryMessage
			}
			if err := s.WriteMessage(kind, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			if code := s.closeCode(); code != websocket.ClosePolicyViolation {
				t.Fatalf("socket ended with %d, want %d (policy violation)", code, websocket.ClosePolicyViolation)
			}
			if got := len(p.TopicLists("1001")); got != lists {
				t.Fatalf("%d topic lists recorded, want %d: invalid ones must not be", got, lists)
			}
		})
	}
	eventually(t, "rejected sockets gone", func() bool { return p.LiveSockets("1001") == 0 })
}

func TestSubscribeReadLimit(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	s := p.subscribe("1001", token, newFirmwareTopics...)
	s.text(`{"topic_list":[` + strings.Repeat("10000,", 11000) + `10000]}`)
	if code := s.closeCode(); code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized frame: socket ended with %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	s := p.subscribe("1001", token, newFirmwareTopics...)

	s.text("heartbeat")
	if got := s.next(); got != "heartbeat response" {
		t.Fatalf("answer %q, want %q", got, "heartbeat response")
	}

	p.StallHeartbeats("1001", true)
	s.text("heartbeat")
	eventually(t, "stalled heartbeat counted", func() bool { return p.Heartbeats("1001") == 2 })
	p.nothingBefore("1001", s)

	// Other extensions are still answered.
	other := p.login(p.AddExtension(pbxtest.Extension{Number: "1002"}))
	o := p.subscribe("1002", other, newFirmwareTopics...)
	o.text("heartbeat")
	if got := o.next(); got != "heartbeat response" {
		t.Fatalf("other extension: answer %q", got)
	}

	p.StallHeartbeats("1001", false)
	s.text("heartbeat")
	if got := s.next(); got != "heartbeat response" {
		t.Fatalf("after resuming: answer %q", got)
	}
	if p.Heartbeats("1001") != 3 {
		t.Fatalf("Heartbeats = %d, want 3", p.Heartbeats("1001"))
	}
}

func TestCDRNotification(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	otherToken := p.login(p.AddExtension(pbxtest.Extension{Number: "1002"}))
	subscribed := p.subscribe("1001", token, newFirmwareTopics...)
	notSubscribed := p.open("1001", token)
	other := p.subscribe("1002", otherToken, newFirmwareTopics...)

	at := time.Unix(1693201380, 0)
	if _, err := p.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Peer: "1002", TalkDuration: 12, Time: at}); err != nil {
		t.Fatal(err)
	}
	n := decodeNotice(t, subscribed.next())
	want := map[string]any{"ext_num": "1001", "personal_cdr": map[string]any{
		"date": "", "time": "", "timestamp": 1693201380.0, "number": "1002", "talk_duration": 12.0}}
	if n.Type != 20049 || !equalJSON(n.Msg, want) {
		t.Fatalf("notification %d %v, want 20049 %v", n.Type, n.Msg, want)
	}
	p.nothingBefore("1001", notSubscribed)
	p.nothingBefore("1002", other)
	if subscribed.next() != "marker" { // the SendRaw to 1001 above
		t.Fatal("marker missing")
	}

	// A silent call is stored but not announced: the lossy-socket case.
	if _, err := p.Call("1001", pbxtest.Call{Silent: true}); err != nil {
		t.Fatal(err)
	}
	p.nothingBefore("1001", subscribed, notSubscribed)
	if n := len(p.CDRs("1001")); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
}

func equalJSON(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if !equalJSON(v, bm[k]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

// TestWriteDeadline checks that a client that stops reading costs a knob a
// bounded time and loses its socket, instead of blocking the PBX.
func TestWriteDeadline(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	p.subscribe("1001", token, newFirmwareTopics...) // never read from
	big := strings.Repeat("x", 1<<20)
	began := time.Now()
	for p.LiveSockets("1001") > 0 {
		if time.Since(began) > 30*time.Second {
			t.Fatal("socket of a client that does not read was never dropped")
		}
		p.SendRaw("1001", big)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	exts := []string{"1001", "1002", "1003"}
	tokens := map[string]string{}
	socks := map[string]*sock{}
	for _, n := range exts {
		tokens[n] = p.login(p.AddExtension(pbxtest.Extension{Number: n}))
		socks[n] = p.subscribe(n, tokens[n], newFirmwareTopics...)
	}
	const rounds = 20
	done := make(chan struct{})
	// Readers drain every socket so that writes never block.
	for _, s := range socks {
		go func() {
			for {
				if _, _, err := s.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	for _, n := range exts {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range rounds {
				if _, err := p.Call(n, pbxtest.Call{TalkDuration: i}); err != nil {
					t.Error(err)
				}
				p.Notify(n, 20047, map[string]int{"enb_ctl_record": i % 2})
				p.SendRaw(n, "raw")
				p.SetClientFlags(n, i%2, 1, 1)
				_ = p.TopicLists(n)
				_ = p.CDRs(n)
			}
		}()
		go func() {
			defer func() { done <- struct{}{} }()
			for range rounds {
				socks[n].WriteMessage(websocket.TextMessage, []byte("heartbeat"))
			}
		}()
	}
	for range 2 * len(exts) {
		<-done
	}
	for _, n := range exts {
		if got := len(p.CDRs(n)); got != rounds {
			t.Errorf("%s: %d records, want %d", n, got, rounds)
		}
		eventually(t, "heartbeats counted", func() bool { return p.Heartbeats(n) == rounds })
	}
}

package pbxtest_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestFaultNotifications checks, for each knob, the frames it sends, that
// they reach only sockets subscribed to their type (and only the extensions
// concerned), and the state it leaves behind. 1001 has three sockets: a
// WebPC one (every type), a WebClient one (all but 20013) and one that
// never subscribed (no type).
func TestFaultNotifications(t *testing.T) {
	t.Parallel()
	type frame struct {
		typ int
		msg map[string]any
	}
	for _, tc := range []struct {
		name     string
		knob     func(p *testPBX)
		own      []frame // to 1001's WebPC socket
		others   bool    // the same frames to 1002's WebPC socket
		after    func(t *testing.T, p *testPBX, tokenA, tokenB string)
		rawToAll bool
	}{
		{
			name:   "Kick",
			knob:   func(p *testPBX) { p.Kick("1001") },
			own:    []frame{{10000, map[string]any{"username": "1001"}}},
			others: true,
			after: func(t *testing.T, p *testPBX, a, b string) {
				if p.valid(a) || !p.valid(b) {
					t.Error("want 1001's token revoked and 1002's kept")
				}
				if p.LiveSockets("1001") != 3 {
					t.Error("sockets closed by the PBX: the client must do it")
				}
			},
		},
		{
			name: "DeleteExtension",
			knob: func(p *testPBX) { p.DeleteExtension("1001") },
			own:  []frame{{20007, map[string]any{}}},
			after: func(t *testing.T, p *testPBX, a, b string) {
				if p.valid(a) || !p.valid(b) {
					t.Error("want 1001's token revoked and 1002's kept")
				}
				checkError(t, "login of a deleted extension", p.loginAs("1001", "secret-1001"), 10009, "INVALID USERNAME OR PASSWORD")
				if _, ok := p.Extension("1001"); ok {
					t.Error("Extension(1001) still found")
				}
				if _, err := p.Call("1001", pbxtest.Call{}); err == nil {
					t.Error("Call on a deleted extension succeeded")
				}
				if p.Logins("1001") != 2 {
					t.Error("activity of a deleted extension lost")
				}
			},
		},
		{
			name: "ForceReLogin",
			knob: func(p *testPBX) { p.ForceReLogin("1001") },
			own:  []frame{{20010, map[string]any{}}},
			after: func(t *testing.T, p *testPBX, a, b string) {
				if p.valid(a) || !p.valid(b) {
					t.Error("want 1001's token revoked and 1002's kept")
				}
				checkSuccess(t, "login again", p.loginAs("1001", "secret-1001"))
			},
		},
		{
			name:   "SetSDKPlan disabled",
			knob:   func(p *testPBX) { p.SetSDKPlan(false) },
			own:    []frame{{20153, map[string]any{"enable": 0.0}}},
			others: true,
			after: func(t *testing.T, p *testPBX, a, b string) {
				checkError(t, "login while disabled", p.loginAs("1001", "secret-1001"), 70136, "SDK PLAN DISABLED")
				checkError(t, "bad login while disabled", p.loginAs("1001", "wrong"), 10009, "INVALID USERNAME OR PASSWORD")
				if !p.valid(a) || !p.valid(b) {
					t.Error("existing sessions ended")
				}
				p.SetSDKPlan(true)
				checkSuccess(t, "login after enabling", p.loginAs("1001", "secret-1001"))
			},
		},
		{
			name: "SetClientFlags web",
			knob: func(p *testPBX) { p.SetClientFlags("1001", 0, 1, 1) },
			own:  []frame{{20015, map[string]any{"enb_web_client": 0.0}}},
			after: func(t *testing.T, p *testPBX, a, _ string) {
				ext, _ := p.get("/api/v1.0/extension/getpersonal", a, nil)["extension"].(map[string]any)
				if ext["enb_web_client"] != 0.0 || ext["enb_desktop_client"] != 1.0 {
					t.Errorf("getpersonal after the change: %v", ext)
				}
				if e, _ := p.Extension("1001"); e.EnbWebClient != 0 {
					t.Errorf("Extension(1001).EnbWebClient = %d", e.EnbWebClient)
				}
			},
		},
		{
			name: "SetClientFlags desktop and internal",
			knob: func(p *testPBX) { p.SetClientFlags("1001", 1, 0, 0) },
			own: []frame{
				{20013, map[string]any{"enb_desktop_client": 0.0}},
				{20082, map[string]any{"enb_internal_client": 0.0}},
			},
			after: func(t *testing.T, p *testPBX, a, _ string) {
				if got := p.get("/api/v1.0/extension/getpersonalglobal", a, nil)["enb_internal_client"]; got != 0.0 {
					t.Errorf("enb_internal_client %v after the change", got)
				}
			},
		},
		{
			name: "SetClientFlags unchanged",
			knob: func(p *testPBX) { p.SetClientFlags("1001", 1, 1, 1); p.SetClientFlags("1999", 0, 0, 0) },
		},
		{
			name: "Notify",
			knob: func(p *testPBX) { p.Notify("1001", 20048, map[string]any{"record_status": "recording"}) },
			own:  []frame{{20048, map[string]any{"record_status": "recording"}}},
		},
		{
			name:     "SendRaw",
			knob:     func(p *testPBX) { p.SendRaw("1001", `{"type":20049,"msg":"{}","errcode":-3}`) },
			rawToAll: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, pbxtest.Options{})
			a := p.AddExtension(pbxtest.Extension{Number: "1001", Secret: "secret-1001"})
			b := p.AddExtension(pbxtest.Extension{Number: "1002"})
			// Both logins of 1001 come before its sockets: a login of an
			// extension with live sockets would knock them out.
			tokenA, tokenW, tokenB := p.loginWebPC(a), p.login(a), p.loginWebPC(b)
			wide := p.subscribe("1001", tokenA, webPCTopics...)
			web := p.subscribe("1001", tokenW, newFirmwareTopics...)
			narrow := p.open("1001", tokenA)
			other := p.subscribe("1002", tokenB, webPCTopics...)

			tc.knob(p)

			if tc.rawToAll {
				for _, s := range []*sock{wide, web, narrow} {
					if got := s.next(); got != `{"type":20049,"msg":"{}","errcode":-3}` {
						t.Fatalf("raw frame arrived as %q", got)
					}
				}
			}
			expect := func(s *sock, frames []frame) {
				t.Helper()
				for _, f := range frames {
					n := decodeNotice(t, s.next())
					if n.Type != f.typ || !equalJSON(n.Msg, f.msg) {
						t.Fatalf("frame %d %v, want %d %v", n.Type, n.Msg, f.typ, f.msg)
					}
				}
			}
			expect(wide, tc.own)
			var webClient []frame
			for _, f := range tc.own {
				if f.typ != 20013 {
					webClient = append(webClient, f)
				}
			}
			expect(web, webClient)
			if tc.others {
				expect(other, tc.own)
			}
			// Markers prove nothing else was sent: to the narrow socket at
			// all, and beyond the expected frames to the others.
			p.nothingBefore("1001", wide, web, narrow)
			p.nothingBefore("1002", other)
			if tc.after != nil {
				tc.after(t, p, tokenA, tokenB)
			}
		})
	}
}

func TestRevokeTokens(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	a := p.AddExtension(pbxtest.Extension{Number: "1001"})
	tokenA := p.login(a)
	tokenA2 := p.login(a)
	tokenB := p.login(p.AddExtension(pbxtest.Extension{Number: "1002"}))
	s1 := p.subscribe("1001", tokenA, newFirmwareTopics...)
	s2 := p.subscribe("1001", tokenA2, newFirmwareTopics...)
	other := p.subscribe("1002", tokenB, newFirmwareTopics...)

	p.RevokeTokens("1001")
	if p.LiveSockets("1001") != 0 {
		t.Fatalf("LiveSockets = %d right after RevokeTokens", p.LiveSockets("1001"))
	}
	for _, s := range []*sock{s1, s2} {
		assertAbrupt(t, s.end())
	}
	for _, tok := range []string{tokenA, tokenA2} {
		checkError(t, "API with a revoked token", p.get("/api/v1.0/cdr/searchpersonal", tok, nil), 10004, "INVALID OR EXPIRED TOKEN")
		if _, resp, err := p.dial(tok); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("upgrade with a revoked token: err %v resp %v, want HTTP 401", err, resp)
		}
	}
	// The other extension is untouched, and a new login works.
	other.text("heartbeat")
	if got := other.next(); got != "heartbeat response" {
		t.Fatalf("other extension's socket: %q", got)
	}
	if !p.valid(tokenB) {
		t.Fatal("other extension's token revoked")
	}
	p.subscribe("1001", p.login(a), newFirmwareTopics...)
}

func TestDropSockets(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	otherToken := p.login(p.AddExtension(pbxtest.Extension{Number: "1002"}))
	s1 := p.subscribe("1001", token, newFirmwareTopics...)
	s2 := p.subscribe("1001", token, newFirmwareTopics...)
	other := p.subscribe("1002", otherToken, newFirmwareTopics...)

	p.DropSockets("1001")
	if p.LiveSockets("1001") != 0 {
		t.Fatalf("LiveSockets = %d right after DropSockets", p.LiveSockets("1001"))
	}
	assertAbrupt(t, s1.end())
	assertAbrupt(t, s2.end())
	if p.LiveSockets("1002") != 1 {
		t.Fatal("another extension's socket dropped")
	}
	p.nothingBefore("1002", other)

	// The token survives: the client reconnects with it, as the SDK does.
	if !p.valid(token) {
		t.Fatal("token revoked by DropSockets")
	}
	s3 := p.subscribe("1001", token, newFirmwareTopics...)
	if got := p.TopicLists("1001"); len(got) != 3 {
		t.Fatalf("%d topic lists, want 3", len(got))
	}
	if p.LiveSockets("1001") != 1 || p.MaxLiveSockets("1001") != 2 {
		t.Fatalf("live %d max %d, want 1 and 2", p.LiveSockets("1001"), p.MaxLiveSockets("1001"))
	}
	p.Notify("1001", 20049, map[string]any{"ext_num": "1001"})
	if n := decodeNotice(t, s3.next()); n.Type != 20049 {
		t.Fatalf("type %d on the new socket", n.Type)
	}
}

// assertAbrupt fails unless the socket ended without a close frame, which
// gorilla reports as code 1006 (abnormal closure, never sent on the wire).
func assertAbrupt(t *testing.T, err error) {
	t.Helper()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("socket ended with close frame %d, want an abrupt end", ce.Code)
	}
}

func TestAddExtension(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	a := p.AddExtension(pbxtest.Extension{Number: "1001"})
	b := p.AddExtension(pbxtest.Extension{Number: "1002", ID: 10})
	c := p.AddExtension(pbxtest.Extension{Number: "1003"})
	if a.Secret == "" || a.Secret == b.Secret || a.Name != "Ext 1001" || a.ID != 1 || b.ID != 10 || c.ID != 11 {
		t.Fatalf("defaults: %+v %+v %+v", a, b, c)
	}
	if a.EnbWebClient != 1 || a.EnbDesktopClient != 1 || a.EnbInternalClient != 1 {
		t.Fatalf("client flags default: %+v", a)
	}
	if got, ok := p.Extension("1001"); !ok || got != a {
		t.Fatalf("Extension(1001) = %+v %v", got, ok)
	}
	if _, ok := p.Extension("1999"); ok {
		t.Fatal("unknown extension found")
	}

	// Re-adding a number replaces its settings but keeps its id and sessions.
	token := p.login(a)
	a2 := p.AddExtension(pbxtest.Extension{Number: "1001", Secret: "new", Name: "Alice"})
	if a2.ID != a.ID || a2.Name != "Alice" {
		t.Fatalf("re-added: %+v", a2)
	}
	if !p.valid(token) {
		t.Fatal("re-adding ended the session")
	}
	checkError(t, "old secret", p.loginAs("1001", a.Secret), 10009, "INVALID USERNAME OR PASSWORD")
	p.login(a2)

	defer func() {
		if recover() == nil {
			t.Fatal("AddExtension without a number did not panic")
		}
	}()
	p.AddExtension(pbxtest.Extension{})
}

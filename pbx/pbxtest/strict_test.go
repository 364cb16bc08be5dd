package pbxtest_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// These tests cover where the simulator is strict: what a real PBX refuses
// or does that a lenient simulator would let a client get away with.

func TestLoginKnocksOutEarlierLogin(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	bystander := p.login(p.AddExtension(pbxtest.Extension{Number: "1002"}))
	other := p.subscribe("1002", bystander, newFirmwareTopics...)

	first := p.login(e)
	subscribed := p.subscribe("1001", first, newFirmwareTopics...)
	unsubscribed := p.open("1001", first)
	if p.KnockOuts("1001") != 0 {
		t.Fatalf("KnockOuts = %d before a second login", p.KnockOuts("1001"))
	}

	second := p.login(e)
	if n := decodeNotice(t, subscribed.next()); n.Type != 10000 || !equalJSON(n.Msg, map[string]any{"username": "1001"}) {
		t.Fatalf("knocked-out socket got %d %v, want 10000 {username:1001}", n.Type, n.Msg)
	}
	// Only the earlier login's subscribed sockets hear of it: no broadcast.
	p.nothingBefore("1001", subscribed, unsubscribed)
	p.nothingBefore("1002", other)
	if p.KnockOuts("1001") != 1 || p.KnockOuts("1002") != 0 {
		t.Errorf("KnockOuts 1001 %d 1002 %d, want 1 and 0", p.KnockOuts("1001"), p.KnockOuts("1002"))
	}
	if p.valid(first) || !p.valid(second) || !p.valid(bystander) {
		t.Error("want the earlier token revoked, the new one and the other extension's kept")
	}
	if p.LiveSockets("1001") != 2 {
		t.Errorf("LiveSockets = %d: closing the knocked-out sockets is the client's job", p.LiveSockets("1001"))
	}

	// A client that closes its sockets with a close handshake before it
	// logs in again knocks nothing out, however soon it logs in.
	for _, s := range []*sock{subscribed, unsubscribed} {
		s.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		if code := s.closeCode(); code != websocket.CloseNormalClosure {
			t.Fatalf("close handshake answered with %d", code)
		}
	}
	third := p.login(e)
	if p.KnockOuts("1001") != 1 || !p.valid(second) || !p.valid(third) {
		t.Errorf("login after a clean close: KnockOuts %d, earlier token valid %v", p.KnockOuts("1001"), p.valid(second))
	}
}

// TestTopicListFollowsFirmwareAndUserAgent checks that a socket must send
// exactly the SDK's list for the PBX's firmware and the login's user agent,
// and that notifications follow it.
func TestTopicListFollowsFirmwareAndUserAgent(t *testing.T) {
	t.Parallel()
	base := []int{10000, 20007, 20008, 20010, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104}
	basePC := sortedInts(append(slices.Clone(base), 20013))
	lists := map[string][]int{"base": base, "base+20013": basePC, "new": newFirmwareTopics, "new+20013": webPCTopics}
	for _, tc := range []struct {
		version string
		webPC   bool
		want    string
	}{
		{"37.12.0.10", false, "new"},
		{"37.12.0.10", true, "new+20013"},
		{"37.11.0.20", false, "base"},
		{"37.11.0.20", true, "base+20013"},
		{"30.12.0.10", false, "new"}, // the first field is dropped
		{"99.12.0.9", false, "base"},
		{"37.12.0.11", false, "new"},
		{"37.12.1", false, "new"},
		{"37.13", true, "new+20013"},
		{"38.2.0.0", false, "base"},
		{"37.12.0.10b", false, "new"}, // a field's value is its leading digits
	} {
		t.Run(fmt.Sprintf("%s webpc=%v", tc.version, tc.webPC), func(t *testing.T) {
			t.Parallel()
			p := start(t, pbxtest.Options{Version: tc.version})
			e := p.AddExtension(pbxtest.Extension{Number: "1001"})
			var token string
			if tc.webPC {
				token = p.loginWebPC(e)
			} else {
				token = p.login(e)
			}
			for name, list := range lists {
				if name == tc.want {
					continue
				}
				ws, _, err := p.dial(token)
				if err != nil {
					t.Fatal(err)
				}
				s := &sock{ws, t}
				s.topicList(list...)
				if code := s.closeCode(); code != websocket.ClosePolicyViolation {
					t.Errorf("list %s: socket ended with %d, want %d", name, code, websocket.ClosePolicyViolation)
				}
			}
			s := p.subscribe("1001", token, lists[tc.want]...)
			if got := p.TopicLists("1001"); len(got) != 1 {
				t.Fatalf("TopicLists %v, want only the accepted one", got)
			}
			p.SetSDKPlan(false) // 20153 reaches only lists that have it
			if slices.Contains(lists[tc.want], 20153) {
				if n := decodeNotice(t, s.next()); n.Type != 20153 {
					t.Fatalf("type %d, want 20153", n.Type)
				}
			}
			p.nothingBefore("1001", s)
		})
	}
}

func sortedInts(s []int) []int {
	slices.Sort(s)
	return s
}

func TestTokensAreDistinctAndNeedEscaping(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	seen := map[string]bool{}
	for range 200 {
		token := p.login(e)
		if seen[token] {
			t.Fatalf("token %q issued twice", token)
		}
		seen[token] = true
		var plus, slash bool
		for _, c := range token {
			plus, slash = plus || c == '+', slash || c == '/'
		}
		if !plus || !slash {
			t.Fatalf("token %q lacks a '+' or a '/'", token)
		}
		if b, _ := json.Marshal(token); string(b) != `"`+token+`"` {
			t.Fatalf("token %q needs escaping in JSON", token) // only in URLs
		}
	}
}

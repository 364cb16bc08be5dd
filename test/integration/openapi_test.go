package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// provisioned makes a bridge configuration that knows only the PBX and its
// OpenAPI credentials: no extension, no secret.
func provisioned(sim *pbxtest.Server, cfg *bridge.Config, interval time.Duration) {
	id, key := sim.OpenAPICredentials()
	cfg.Extensions = nil
	cfg.OpenAPI = bridge.OpenAPIConfig{AccessID: id, AccessKey: key}
	cfg.Discovery = bridge.DiscoveryConfig{Enabled: true, Interval: interval}
}

// noCredentialIn fails if any credential the simulator issued appears in
// the bridge's log or in an event.
func noCredentialIn(t *testing.T, h *hostile) {
	t.Helper()
	var events strings.Builder
	for _, e := range h.rec.all() {
		events.Write(e.Raw)
	}
	logs := h.logs.String()
	for _, c := range h.sim.IssuedCredentials() {
		if c == "" {
			continue
		}
		if strings.Contains(logs, c) {
			t.Errorf("a credential of the simulator (%d bytes) is in the log", len(c))
		}
		if strings.Contains(events.String(), c) {
			t.Errorf("a credential of the simulator (%d bytes) is in an event", len(c))
		}
	}
}

// TestDiscoveryServesAWholePBX: OpenAPI credentials and discovery alone
// bring 200 extensions online on one access token, each signature minted
// once, and no credential reaches a log line or an event.
func TestDiscoveryServesAWholePBX(t *testing.T) {
	var exts []string
	for i := range 200 {
		exts = append(exts, strconv.Itoa(4000+i))
	}
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		provisioned(sim, cfg, time.Minute)
		cfg.JetStream.Disabled = true
	}, exts...)
	for _, e := range exts {
		h.rec.await("pbx."+e+".session.online", 1, 60*time.Second)
	}
	if _, err := h.sim.Call("4007", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
		t.Fatal(err)
	}
	h.rec.await("pbx.4007.call.missed", 1, 10*time.Second)
	h.b.stop(t)
	if n := h.sim.MaxLiveOpenAPITokens(); n > 2 {
		t.Errorf("%d OpenAPI tokens alive at once, want at most 2", n)
	}
	if n := h.sim.LiveOpenAPITokens(); n != 0 {
		t.Errorf("%d OpenAPI tokens still alive after shutdown, want all revoked", n)
	}
	for _, e := range exts {
		if n := h.sim.SignsMinted(e); n != 1 {
			t.Errorf("%s: %d signatures minted, want 1", e, n)
		}
	}
	page := metrics(h.b.Bridge)
	if got := metricSum(page, "pbx_bridge_signatures_minted_total"); got != 200 {
		t.Errorf("signatures minted metric %v, want 200", got)
	}
	if got := metricSum(page, "pbx_bridge_extensions_served"); got != 200 {
		t.Errorf("extensions served %v, want 200", got)
	}
	noCredentialIn(t, h)
}

// TestDiscoveryFollowsThePBX: an extension added on the PBX comes online
// within an interval, one deleted stops and is no longer served, and the
// others' calls keep arriving exactly once.
func TestDiscoveryFollowsThePBX(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		provisioned(sim, cfg, 200*time.Millisecond)
		cfg.Discovery.Exclude = []string{"19*"}
	}, "1001", "1002", "1901")
	h.online(t, "1001", 1)
	h.online(t, "1002", 1)
	h.sim.AddExtension(pbxtest.Extension{Number: "1003"})
	h.online(t, "1003", 1)
	h.sim.DeleteExtension("1002")
	h.rec.await("pbx.1002.session.stopped", 1, 10*time.Second)
	waitFor(t, "1002 no longer served", 10*time.Second, func() bool {
		m := h.request(t, "pbx.1002.info", "")
		return m.Header.Get("Nats-Service-Error-Code") == "404"
	})
	for _, e := range []string{"1001", "1003"} {
		if _, err := h.sim.Call(e, pbxtest.Call{Kind: pbxtest.Incoming}); err != nil {
			t.Fatal(err)
		}
		awaitCreated(t, h, e, 10*time.Second)
	}
	if n := len(h.rec.on("pbx.1001.session.online")); n != 1 {
		t.Errorf("1001 went online %d times: discovery disturbed it", n)
	}
	if n := h.sim.Logins("1901"); n != 0 {
		t.Errorf("the excluded 1901 logged in %d times", n)
	}
	if m := h.request(t, "pbx.1901.info", ""); m.Header.Get("Nats-Service-Error-Code") != "404" {
		t.Errorf("info of the excluded extension: %s", m.Data)
	}
}

// TestDiscoveryIncompleteListRemovesNothing: a listing that ends before its
// own total_number (an empty page, here the first) only adds: no extension
// it lacks is stopped.
func TestDiscoveryIncompleteListRemovesNothing(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		provisioned(sim, cfg, 100*time.Millisecond)
	}, "1001", "1002")
	h.online(t, "1001", 1)
	h.online(t, "1002", 1)
	for _, page := range []int{1, 2} {
		// Page 2 is empty too with a page size the simulator answers in
		// full: both lists end before their total.
		h.sim.SetListFaults(pbxtest.ListFaults{EmptyPage: page, MaxPageSize: 1})
		before := h.sim.Requests("/openapi/v1.0/extension/list")
		waitFor(t, "three more listings", 10*time.Second, func() bool {
			return h.sim.Requests("/openapi/v1.0/extension/list") >= before+3*page
		})
	}
	for _, e := range []string{"1001", "1002"} {
		if n := len(h.rec.on("pbx." + e + ".session.stopped")); n != 0 {
			t.Errorf("%s stopped %d times by an incomplete list", e, n)
		}
		if m := h.request(t, "pbx."+e+".info", ""); m.Header.Get("Nats-Service-Error-Code") != "" {
			t.Errorf("info of %s after an incomplete list: %s", e, m.Data)
		}
	}
}

// TestRefusedSignatureIsMintedAgain: a login refused with the minted
// signature mints a new one, and the extension logs in.
func TestRefusedSignatureIsMintedAgain(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) { provisioned(sim, cfg, time.Minute) }, "1001")
	h.online(t, "1001", 1)
	h.sim.RevokeSignatures("1001")
	h.sim.ForceReLogin("1001")
	h.online(t, "1001", 2)
	if n := h.sim.SignsMinted("1001"); n != 2 {
		t.Errorf("%d signatures minted, want 2 (the first, and one after the refusal)", n)
	}
}

// TestTokenRefreshedUnnoticed: an access token that expires under a
// running bridge is renewed, and no extension notices.
func TestTokenRefreshedUnnoticed(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		sim.SetTokenLifetime(time.Second, time.Minute)
		provisioned(sim, cfg, 100*time.Millisecond)
	}, "1001", "1002")
	h.online(t, "1001", 1)
	h.online(t, "1002", 1)
	waitFor(t, "tokens renewed", 20*time.Second, func() bool { return h.sim.RefreshCalls()+h.sim.GetTokenCalls() >= 4 })
	h.sim.AddExtension(pbxtest.Extension{Number: "1003"})
	h.online(t, "1003", 1)
	for _, e := range []string{"1001", "1002"} {
		if n := len(h.rec.on("pbx." + e + ".session.online")); n != 1 {
			t.Errorf("%s went online %d times", e, n)
		}
		if n := len(h.rec.on("pbx." + e + ".session.reconnecting")); n != 0 {
			t.Errorf("%s reconnected %d times", e, n)
		}
	}
	if n := h.sim.MaxLiveOpenAPITokens(); n > 2 {
		t.Errorf("%d OpenAPI tokens alive at once", n)
	}
	noCredentialIn(t, h)
}

// TestListingRefusedServesTheConfigured: credentials that may not list
// extensions get one clear error, and the configured extensions (without
// secrets: minted) are still served.
func TestListingRefusedServesTheConfigured(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		sim.SetListAllowed(false)
		provisioned(sim, cfg, 100*time.Millisecond)
		cfg.Extensions = []bridge.Credential{{Username: "1001"}}
	}, "1001", "1002")
	h.online(t, "1001", 1)
	waitFor(t, "a few refused listings", 10*time.Second, func() bool {
		return metricSum(metrics(h.b.Bridge), "pbx_bridge_discovery_runs_total", `result="refused"`) >= 3
	})
	if n := strings.Count(h.logs.String(), "Integrations > API"); n != 1 {
		t.Errorf("%d log lines name the remedy, want exactly 1", n)
	}
	if n := h.sim.Logins("1002"); n != 0 {
		t.Errorf("1002, neither configured nor listed, logged in %d times", n)
	}
}

// TestAddRemoveExtensionAtRunTime: the bridge's one door for changes of
// its extension set.
func TestAddRemoveExtensionAtRunTime(t *testing.T) {
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		cfg.Extensions = cfg.Extensions[:0]
		cfg.Extensions = append(cfg.Extensions, bridge.Credential{Username: "1001", Secret: extSecret(sim, "1001")})
	}, "1001", "1002")
	h.online(t, "1001", 1)
	if err := h.b.AddExtension(bridge.Credential{Username: "1002", Secret: extSecret(h.sim, "1002")}); err != nil {
		t.Fatal(err)
	}
	h.online(t, "1002", 1)
	ch, err := h.b.ApplyExtensions([]bridge.Credential{{Username: "1002", Secret: extSecret(h.sim, "1002")}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ch.Removed, ",") != "1001" || len(ch.Added) != 0 {
		t.Errorf("changes %+v, want 1001 removed", ch)
	}
	stopped := h.rec.await("pbx.1001.session.stopped", 1, 10*time.Second)[0]
	if d := data[schema.SessionState](t, stopped); d.Reason != "removed" {
		t.Errorf("session.stopped reason %q, want removed", d.Reason)
	}
	if h.sim.Logouts("1001") != 1 || h.sim.LiveSockets("1001") != 0 {
		t.Errorf("1001 after removal: %d logouts, %d live sockets", h.sim.Logouts("1001"), h.sim.LiveSockets("1001"))
	}
	if m := h.request(t, "pbx.1001.cdr.query", ""); m.Header.Get("Nats-Service-Error-Code") != "404" {
		t.Errorf("cdr.query of a removed extension: %s", m.Data)
	}
	// Back again: it catches up from its cursor.
	c, err := h.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed, Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.b.AddExtension(bridge.Credential{Username: "1001", Secret: extSecret(h.sim, "1001")}); err != nil {
		t.Fatal(err)
	}
	got := h.rec.await("pbx.1001.cdr.created", 1, 10*time.Second)
	if id := data[schema.CDRCreated](t, got[0]).Record.ID; id != c.ID {
		t.Errorf("cdr.created of %d after coming back, want %d", id, c.ID)
	}
	if n := h.sim.MaxLiveSockets("1001"); n != 1 {
		t.Errorf("1001 had %d sockets at once", n)
	}
	if got := h.b.Served(); strings.Join(got, ",") != "1001,1002" {
		t.Errorf("served %v", got)
	}
}

func extSecret(sim *pbxtest.Server, ext string) string {
	e, _ := sim.Extension(ext)
	return e.Secret
}

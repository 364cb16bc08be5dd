package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestFleetTokenBudget: six replicas with OpenAPI credentials and
// discovery, and no configured secret, against the simulator's cap of 8
// tokens. One replica (the OpenAPI leader) reads the extension list for
// all; every signature is minted under the fleet's token lock, so that at
// most 2 tokens are ever alive and the cap is never hit, whatever the
// number of replicas. When the leader stops, another takes over and an
// extension added to the PBX is still found.
func TestFleetTokenBudget(t *testing.T) {
	var exts []string
	for i := range 24 {
		exts = append(exts, strconv.Itoa(6000+i))
	}
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, exts...)
	logs := &syncBuffer{}
	watcher := connect(t, ns.ClientURL())
	rec := record(t, watcher, "pbx.>")
	base := fastConfig(sim, secrets, testLogger(logs))
	provisioned(sim, &base, 300*time.Millisecond)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	var replicas []*runningBridge
	for i := range 6 {
		replicas = append(replicas, runBridge(t, connect(t, ns.ClientURL()), fleetConfig(base, "r"+strconv.Itoa(i))))
	}
	for _, e := range exts {
		rec.await("pbx."+e+".session.online", 1, 60*time.Second)
	}
	listings := sim.Requests("/openapi/v1.0/extension/list")
	waitFor(t, "two more listings", 10*time.Second, func() bool {
		return sim.Requests("/openapi/v1.0/extension/list") >= listings+2
	})
	// Stop the replicas one by one, the leader among them: the others go
	// on reading the list, and a new extension is served.
	for _, rb := range replicas[:3] {
		rb.stop(t)
	}
	sim.AddExtension(pbxtest.Extension{Number: "6999"})
	rec.await("pbx.6999.session.online", 1, 30*time.Second)
	if n := sim.MaxLiveOpenAPITokens(); n > 2 {
		t.Errorf("%d OpenAPI tokens alive at once in a fleet of 6, want at most 2", n)
	}
	if n := sim.TokenCapRefusals(); n != 0 {
		t.Errorf("the PBX refused %d token requests at its cap", n)
	}
	for _, e := range append(exts, "6999") {
		if n := sim.KnockOuts(e); n != 0 {
			t.Errorf("%s was knocked out %d times", e, n)
		}
	}
	for _, rb := range replicas[3:] {
		rb.stop(t)
	}
	if n := sim.LiveOpenAPITokens(); n != 0 {
		t.Errorf("%d OpenAPI tokens alive after the fleet stopped, want all revoked", n)
	}
}

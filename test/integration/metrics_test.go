package integration

import (
	"strings"
	"testing"
	"time"
)

// TestMetricsPerExtensionAndRemoval: with metrics.per_extension the
// session state is one series per extension, and a removed extension's
// series go; without it the same name counts the extensions in each state
// and a removed one leaves the count.
func TestMetricsPerExtensionAndRemoval(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	sim, secrets := startPBX(t, "1001", "1002")
	nc := connect(t, ns.ClientURL())
	rec := record(t, nc, "pbx.>")
	for _, perExt := range []bool{true, false} {
		cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
		cfg.Metrics.PerExtension = perExt
		b := runBridge(t, nc, cfg)
		online := `pbx_bridge_session_state{state="online"} 2`
		if perExt {
			online = `pbx_bridge_session_state{ext="1002",state="online"} 1`
		}
		waitFor(t, online, 10*time.Second, func() bool { return strings.Contains(metrics(b.Bridge), online) })
		if err := b.RemoveExtension("1002"); err != nil {
			t.Fatal(err)
		}
		page := metrics(b.Bridge)
		if perExt {
			if strings.Contains(page, `ext="1002"`) || !strings.Contains(page, `pbx_bridge_session_state{ext="1001",state="online"} 1`) {
				t.Errorf("per extension, after 1002 was removed:\n%s", page)
			}
		} else {
			for _, want := range []string{`pbx_bridge_session_state{state="online"} 1`, `pbx_bridge_session_state{state="stopped"} 0`, "pbx_bridge_extensions_served 1"} {
				if !strings.Contains(page, want) {
					t.Errorf("bridge-wide, after 1002 was removed: no %s in\n%s", want, page)
				}
			}
			if strings.Contains(page, `ext="`) {
				t.Errorf("an ext label without metrics.per_extension:\n%s", page)
			}
		}
		b.stop(t)
	}
	rec.await("pbx.1002.session.stopped", 2, 5*time.Second)
}

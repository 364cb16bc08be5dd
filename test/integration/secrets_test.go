package integration

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestNoCredentialLeaks runs the bridge at debug level through logins,
// reconnects, a revoked token, a forced re-login, malformed frames and a
// kick, and checks that no log line and no event carries a secret or an
// access token.
func TestNoCredentialLeaks(t *testing.T) {
	s := start(t, true, "1001", "1002")
	s.sim.DropSockets("1001")
	s.rec.await("pbx.1001.session.online", 2, 10*time.Second)
	awaitSubscribed(t, s.sim, "1001", 2)
	s.sim.SendRaw("1001", "not json at all")
	s.sim.SendRaw("1001", `{"type":20049,"msg":42}`)
	s.sim.RevokeTokens("1002")
	waitFor(t, "1002 logged in again", 10*time.Second, func() bool { return s.sim.Logins("1002") >= 2 })
	s.rec.await("pbx.1002.session.online", 2, 10*time.Second)
	awaitSubscribed(t, s.sim, "1002", 2)
	s.sim.ForceReLogin("1002")
	s.rec.await("pbx.1002.runtime.error", 1, 10*time.Second)
	s.rec.await("pbx.1002.session.online", 3, 10*time.Second)
	if _, err := s.sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
		t.Fatal(err)
	}
	s.rec.await("pbx.1001.call.missed", 1, 5*time.Second)
	s.sim.Kick("1001")
	s.rec.await("pbx.1001.runtime.error", 1, 5*time.Second)
	s.b.stop(t)

	logs := s.logs.String()
	if !strings.Contains(logs, `level=DEBUG`) || !strings.Contains(logs, "reconnect") {
		t.Fatalf("the log did not capture the run (%d bytes)", len(logs))
	}
	var events strings.Builder
	for _, e := range s.rec.all() {
		events.Write(e.Raw)
	}
	for ext, secret := range s.secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the secret of %s is in the log", ext)
		}
		if strings.Contains(events.String(), secret) {
			t.Errorf("the secret of %s is in an event", ext)
		}
	}
	// The token travels in the socket URL: every access_token in the log
	// or in an event must be redacted.
	tokenRef := regexp.MustCompile(`access_token=([^&\s"]*)`)
	for _, text := range []string{logs, events.String()} {
		for _, m := range tokenRef.FindAllStringSubmatch(text, -1) {
			if m[1] != "REDACTED" {
				t.Errorf("an unredacted access token: %q", m[0])
			}
		}
	}
	// Every token the simulator issued (and every secret it holds): none
	// may appear, in whatever form.
	for _, c := range s.sim.IssuedCredentials() {
		if strings.Contains(logs, c) || strings.Contains(events.String(), c) {
			t.Errorf("a credential of the simulator (%d bytes) is in the log or an event", len(c))
		}
	}
}

package pbx_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// tokenCapture records the access tokens the client sends, as the PBX sees
// them.
type tokenCapture struct {
	base   http.RoundTripper
	mu     sync.Mutex
	tokens map[string]bool
}

func (c *tokenCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	if a := r.Header.Get("Authorization"); a != "" {
		c.mu.Lock()
		c.tokens[a] = true
		c.mu.Unlock()
	}
	return c.base.RoundTrip(r)
}

func (c *tokenCapture) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for t := range c.tokens {
		out = append(out, t)
	}
	return out
}

// TestCredentialsNeverLeak runs a session through its life with faults that
// put the token where a careless client would log it (frames that carry it,
// error messages that quote it, failing dials of the URL that holds it), and
// checks every log line at debug level and every error string for the
// secret and the token.
// One session through one life: split, the session and the captured
// logs would travel between the parts.
func TestCredentialsNeverLeak(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	var logs syncBuffer
	capture := &tokenCapture{
		base:   &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}},
		tokens: map[string]bool{},
	}
	t.Cleanup(capture.base.(*http.Transport).CloseIdleConnections)
	cfg := fastConfig(t, srv, ext)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.HTTPClient = &http.Client{Transport: capture}
	cfg.PongTimeout = 150 * time.Millisecond // the heartbeat timeout below
	var reconnects recorder
	cfg.Hooks.Reconnect = func() { reconnects.Add("reconnect") }
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	ctx := context.Background()

	s := open(t, srv, cfg)
	tokens := capture.list()
	if len(tokens) != 1 || len(tokens[0]) < 16 {
		t.Fatalf("captured tokens %d, want one real token", len(tokens))
	}
	token := tokens[0]

	// Frames that carry the token.
	srv.SendRaw("1001", "garbage "+token+" garbage")
	srv.SendRaw("1001", "?access_token="+token)
	srv.SendRaw("1001", `{"type":20008,"msg":"`+token+`"}`)
	srv.SendRaw("1001", `{"type":30000,"msg":"{\"token\":\"`+token+`\"}"}`)
	sentinel(t, srv, s, "*1")

	// An API error that quotes it (one that does not reject the token,
	// which would end the session here).
	srv.FailEndpoint("/api/v1.0/cdr/searchpersonal", 40002, "PARAMETER ERROR "+token)
	_, err := s.CDRQuery(ctx, pbx.CDRQuery{})
	if err == nil {
		t.Fatal("failing CDR query succeeded")
	}
	note(err)
	srv.FailEndpoint("/api/v1.0/cdr/searchpersonal", 0, "")

	// Failing dials of the URL that holds it, then a heartbeat timeout.
	srv.CloseUpgrades(true)
	srv.DropSockets("1001")
	eventually(t, "failed dials", func() bool { return reconnects.Count("reconnect") >= 3 })
	srv.CloseUpgrades(false)
	awaitEvent(t, s, func(st *pbx.SocketState) bool { return st.Up })
	srv.StallHeartbeats("1001", true)
	srv.SendRaw("1001", "heartbeat response") // any frame arms the keepalive
	awaitEvent(t, s, func(st *pbx.SocketState) bool { return !st.Up })
	srv.StallHeartbeats("1001", false)

	// The end: a revoked token, which the token probe hears about in an
	// answer that quotes it.
	srv.FailEndpoint("/api/v1.0/extension/getpersonal", 10004, "INVALID OR EXPIRED TOKEN "+token)
	srv.RevokeTokens("1001")
	events, err := awaitEnd(t, s)
	note(err)
	for _, ev := range events {
		if st, ok := ev.(*pbx.SocketState); ok && st.Err != nil {
			note(st.Err)
		}
	}
	if len(capture.list()) != 1 {
		t.Errorf("the session logged in again by itself")
	}

	// Init failures with credentials about.
	wrong := cfg
	wrong.Secret = "wrong-" + ext.Secret
	_, err = pbx.Open(ctx, wrong)
	note(err)
	srv.FailEndpoint("/api/v1.0/extension/getpersonal", 10004, "signature "+ext.Secret+" expired")
	_, err = pbx.Open(ctx, cfg)
	note(err)
	srv.FailEndpoint("/api/v1.0/extension/getpersonal", 0, "")
	for _, u := range []string{"http://127.0.0.1:1/?access_token=" + token, "https://user:" + token + "@127.0.0.1:1"} {
		bad := cfg
		bad.URL = u
		_, err = pbx.Open(ctx, bad)
		note(err)
	}

	text := logs.String() + "\n" + strings.Join(errs, "\n")
	for name, secret := range map[string]string{"secret": ext.Secret, "wrong secret": wrong.Secret, "token": token} {
		for _, part := range []string{secret, secret[:12], secret[len(secret)-12:]} {
			if strings.Contains(text, part) {
				i := strings.Index(text, part)
				t.Errorf("the %s (or 12 characters of it) appears in the logs or errors: ...%s...", name, text[max(0, i-150):i])
			}
		}
	}
	// The checks above mean something only if the dangerous paths ran.
	for _, want := range []string{"reason=not_json", "reason=bad_msg", "reason=unknown_type", "pbx socket dial failed", pbx.Redacted, "HTTP 503", "ErrTokenRejected"} {
		if want == "ErrTokenRejected" {
			want = pbx.ErrTokenRejected.Error()
		}
		if !strings.Contains(text, want) {
			t.Errorf("%q never appears: the test did not exercise what it checks", want)
		}
	}
	if len(errs) < 6 {
		t.Errorf("only %d errors collected", len(errs))
	}
}

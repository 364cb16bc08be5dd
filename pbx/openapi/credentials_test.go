package openapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestOpenAPICredentialsNeverLeak runs the client through refusals whose
// messages quote credentials, a transport failure of a URL that carries the
// token, refreshes and Close, and checks every log line at debug level and
// every error for the AccessKey, the tokens and the signatures.
// One client through one life: split, the client and the captured logs
// would travel between the parts.
func TestOpenAPICredentialsNeverLeak(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	capture := newRequestCapture(t, srv)
	clock := newFakeClock()
	var logs syncBuffer
	cfg := openAPIConfig(t, srv, clock)
	id, key := cfg.AccessID, cfg.AccessKey
	cfg.HTTPClient = &http.Client{Transport: capture}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []string
	cfg.Hooks.Request = func(_ string, _ time.Duration, err error) {
		if err != nil {
			errs = append(errs, err.Error()) // Hooks run one request at a time here
		}
	}
	o := newOpenAPI(t, cfg)
	ctx := context.Background()
	note := func(err error) {
		if err == nil {
			t.Fatal("a failure injected for the test succeeded")
		}
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err))
	}

	// A refusal that quotes the AccessKey.
	srv.FailEndpoint("/openapi/v1.0/get_token", 10009, "wrong password "+key+" for "+id)
	_, err := o.Sign(ctx, "1001")
	note(err)
	srv.FailEndpoint("/openapi/v1.0/get_token", 0, "")
	clock.Add(time.Minute)

	sign, err := o.Sign(ctx, "1001")
	if err != nil {
		t.Fatal(err)
	}
	creds := capture.credentials()
	if len(creds) < 3 {
		t.Fatalf("captured %d credentials, want an access token, a refresh token and a signature", len(creds))
	}
	// Refusals that quote the token and the signature.
	msg := "bad token " + strings.Join(creds, " ") + " url ?access_token=" + url.QueryEscape(creds[0])
	srv.FailEndpoint("/openapi/v1.0/sign/create", 10004, msg)
	_, err = o.Sign(ctx, "1001")
	note(err)
	srv.FailEndpoint("/openapi/v1.0/sign/create", 0, "")
	srv.FailEndpoint("/openapi/v1.0/extension/list", 10011, msg)
	_, err = o.Extensions(ctx)
	note(err)
	srv.FailEndpoint("/openapi/v1.0/extension/list", 0, "")

	// A transport failure of the URL that carries the token.
	srv.SlowEndpoint("/openapi/v1.0/extension/list", time.Second)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = o.Extensions(short)
	cancel()
	note(err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a timed out request's error %v no longer says so", err)
	}
	srv.SlowEndpoint("/openapi/v1.0/extension/list", 0)

	// A refresh, then Close.
	clock.Add(25 * time.Minute)
	if _, err := o.Sign(ctx, "1001"); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}

	secrets := append(capture.credentials(), key, url.QueryEscape(key), sign)
	for _, s := range slices.Clone(secrets) {
		secrets = append(secrets, url.QueryEscape(s))
	}
	text := logs.String() + "\n" + strings.Join(errs, "\n")
	if !strings.Contains(text, "pbx openapi request") || len(errs) < 4 {
		t.Fatalf("the test saw too little: %d errors, logs:\n%s", len(errs), logs.String())
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Fatalf("credential %.6s... leaked:\n%s", s, text)
		}
	}
}

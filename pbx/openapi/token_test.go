package openapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestTokenSharedByConcurrentCallers(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	const n = 20
	for i := range n {
		srv.AddExtension(pbxtest.Extension{Number: fmt.Sprint(1001 + i)})
	}
	// A slow get_token, so that every caller arrives while it is in flight.
	srv.SlowEndpoint("/openapi/v1.0/get_token", 200*time.Millisecond)
	var refreshed recorder
	cfg := openAPIConfig(t, srv, newFakeClock())
	cfg.Hooks.TokenRefreshed = refreshed.Add
	o := newOpenAPI(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := o.Sign(context.Background(), fmt.Sprint(1001+i))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if srv.GetTokenCalls() != 1 || srv.MaxLiveOpenAPITokens() != 1 {
		t.Fatalf("get_token calls %d, max live tokens %d; want 1 and 1", srv.GetTokenCalls(), srv.MaxLiveOpenAPITokens())
	}
	if got := refreshed.List(); !slices.Equal(got, []string{"get_token"}) {
		t.Fatalf("TokenRefreshed calls %v", got)
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	for _, revokesOld := range []bool{false, true} {
		t.Run(fmt.Sprintf("refreshRevokesOld=%v", revokesOld), func(t *testing.T) {
			srv := newPBX(t, pbxtest.Options{})
			srv.SetRefreshRevokesOld(revokesOld)
			srv.AddExtension(pbxtest.Extension{Number: "1001"})
			clock := newFakeClock()
			var refreshed recorder
			cfg := openAPIConfig(t, srv, clock)
			cfg.Hooks.TokenRefreshed = refreshed.Add
			o := newOpenAPI(t, cfg)
			ctx := context.Background()
			sign := func() {
				t.Helper()
				if _, err := o.Sign(ctx, "1001"); err != nil {
					t.Fatal(err)
				}
			}

			sign()
			clock.Add(23 * time.Minute) // 77% of 30 minutes
			sign()
			if srv.RefreshCalls() != 0 {
				t.Fatal("refreshed before 80% of the lifetime")
			}
			clock.Add(2 * time.Minute) // 83%
			sign()
			if srv.RefreshCalls() != 1 || srv.GetTokenCalls() != 1 {
				t.Fatalf("refresh calls %d, get_token calls %d; want 1, 1", srv.RefreshCalls(), srv.GetTokenCalls())
			}
			// The replaced token was revoked before the new one was used.
			if n, dels := srv.LiveOpenAPITokens(), oaRequests(srv, "del_token"); n != 1 || dels != 1 {
				t.Fatalf("live tokens %d, del_token requests %d after the refresh; want 1, 1", n, dels)
			}

			// A day of refreshes: never a second get_token, never more
			// than two tokens alive.
			for range 40 {
				clock.Add(25 * time.Minute)
				sign()
			}
			if srv.GetTokenCalls() != 1 || srv.RefreshCalls() != 41 || oaRequests(srv, "del_token") != 41 || srv.MaxLiveOpenAPITokens() > 2 {
				t.Fatalf("get_token %d, refresh %d, del_token %d, max live %d; want 1, 41, 41, at most 2",
					srv.GetTokenCalls(), srv.RefreshCalls(), oaRequests(srv, "del_token"), srv.MaxLiveOpenAPITokens())
			}
			if got := refreshed.Count("refresh_token"); got != 41 {
				t.Fatalf("TokenRefreshed(refresh_token) %d times, want 41", got)
			}
		})
	}
}

func TestTokenFallsBackToGetToken(t *testing.T) {
	for _, c := range []struct {
		name        string
		fault       func(srv *pbxtest.Server, clock *fakeClock)
		wantRefresh int
	}{
		{"refresh token expired", func(_ *pbxtest.Server, clock *fakeClock) { clock.Add(25 * time.Hour) }, 0},
		{"refresh refused", func(srv *pbxtest.Server, clock *fakeClock) {
			srv.RevokeOpenAPITokens()
			clock.Add(25 * time.Minute)
		}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newPBX(t, pbxtest.Options{})
			srv.AddExtension(pbxtest.Extension{Number: "1001"})
			clock := newFakeClock()
			o := newOpenAPI(t, openAPIConfig(t, srv, clock))
			ctx := context.Background()
			if _, err := o.Sign(ctx, "1001"); err != nil {
				t.Fatal(err)
			}
			c.fault(srv, clock)
			if _, err := o.Sign(ctx, "1001"); err != nil {
				t.Fatal(err)
			}
			if srv.GetTokenCalls() != 2 || srv.RefreshCalls() != c.wantRefresh || oaRequests(srv, "sign/create") != 2 {
				t.Fatalf("get_token %d, refresh %d, sign/create %d; want 2, %d, 2",
					srv.GetTokenCalls(), srv.RefreshCalls(), oaRequests(srv, "sign/create"), c.wantRefresh)
			}
		})
	}
}

// TestTokenRenewalFailureKeepsHeldToken checks that a failed renewal costs
// nothing while the held token is valid, and is not retried with every call.
func TestTokenRenewalFailureKeepsHeldToken(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	clock := newFakeClock()
	o := newOpenAPI(t, openAPIConfig(t, srv, clock))
	ctx := context.Background()
	sign := func() error {
		_, err := o.Sign(ctx, "1001")
		return err
	}
	attempts := func() string {
		return fmt.Sprintf("refresh_token %d, get_token %d", oaRequests(srv, "refresh_token"), oaRequests(srv, "get_token"))
	}
	if err := sign(); err != nil {
		t.Fatal(err)
	}
	srv.FailEndpoint("/openapi/v1.0/refresh_token", 10004, "INVALID OR EXPIRED TOKEN")
	srv.FailEndpoint("/openapi/v1.0/get_token", 10009, "INVALID USERNAME OR PASSWORD")

	clock.Add(26 * time.Minute) // past 80%: a renewal is due, and fails
	if err := sign(); err != nil {
		t.Fatalf("Sign with a failed renewal and a valid held token: %v", err)
	}
	if got := attempts(); got != "refresh_token 1, get_token 2" {
		t.Fatalf("renewal attempts: %s", got)
	}
	clock.Add(10 * time.Second)
	if err := sign(); err != nil {
		t.Fatal(err)
	}
	if got := attempts(); got != "refresh_token 1, get_token 2" {
		t.Fatalf("renewal attempted again within seconds: %s", got)
	}
	clock.Add(time.Minute)
	if err := sign(); err != nil {
		t.Fatal(err)
	}
	if got := attempts(); got != "refresh_token 2, get_token 3" {
		t.Fatalf("renewal attempts a minute later: %s", got)
	}

	clock.Add(5 * time.Minute) // the held token has expired
	if err := sign(); !errors.Is(err, openapi.ErrAuth) {
		t.Fatalf("Sign with no valid token and refused credentials: %v", err)
	}
	srv.FailEndpoint("/openapi/v1.0/refresh_token", 0, "")
	srv.FailEndpoint("/openapi/v1.0/get_token", 0, "")
	clock.Add(15 * time.Minute)
	if err := sign(); err != nil {
		t.Fatalf("Sign once the PBX answers again: %v", err)
	}
}

// TestTokenStaleRetriedOnce checks the calls made with a token that the PBX
// no longer accepts although the client's clock says it is valid.
func TestTokenStaleRetriedOnce(t *testing.T) {
	for _, c := range []struct {
		name                string
		lifetime            time.Duration
		fault               func(srv *pbxtest.Server)
		wantGet, wantRefres int
	}{
		// The PBX's clock runs faster: the access token expired, the
		// refresh token did not.
		{"expired early", 300 * time.Millisecond, func(srv *pbxtest.Server) {
			eventually(t, "the token's expiry", func() bool { return srv.LiveOpenAPITokens() == 0 })
		}, 1, 1},
		// Every token revoked (a PBX restart): refresh fails too.
		{"revoked", 0, func(srv *pbxtest.Server) { srv.RevokeOpenAPITokens() }, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newPBX(t, pbxtest.Options{})
			srv.SetTokenLifetime(c.lifetime, time.Hour)
			srv.AddExtension(pbxtest.Extension{Number: "1001"})
			o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
			ctx := context.Background()
			if _, err := o.Extensions(ctx); err != nil {
				t.Fatal(err)
			}
			c.fault(srv)
			list, err := o.Extensions(ctx)
			if err != nil || len(list) != 1 {
				t.Fatalf("Extensions with a stale token: %v, %v", list, err)
			}
			if srv.GetTokenCalls() != c.wantGet || srv.RefreshCalls() != c.wantRefres || oaRequests(srv, "extension/list") != 3 {
				t.Fatalf("get_token %d, refresh %d, extension/list %d; want %d, %d, 3",
					srv.GetTokenCalls(), srv.RefreshCalls(), oaRequests(srv, "extension/list"), c.wantGet, c.wantRefres)
			}
		})
	}
}

func TestTokenSecondFailureIsTheAnswer(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.FailSign(true)
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	for i := range 10 {
		_, err := o.Sign(context.Background(), "1001")
		var oe *openapi.Error
		if !errors.Is(err, openapi.ErrSignRefused) || !errors.As(err, &oe) || oe.ErrCode != 70052 || oe.ErrMsg != "SIGN CREATE FAILED" {
			t.Fatalf("Sign with FailSign: %v", err)
		}
		if n := oaRequests(srv, "sign/create"); n != 2*(i+1) {
			t.Fatalf("sign/create requests %d after %d calls, want two per call", n, i+1)
		}
	}
	// Each retry renewed the token and revoked the one it replaced.
	if srv.LiveOpenAPITokens() != 1 || srv.MaxLiveOpenAPITokens() > 2 || srv.GetTokenCalls() != 1 || srv.RefreshCalls() != 10 {
		t.Fatalf("live tokens %d, max live %d, get_token calls %d, refresh calls %d; want 1, at most 2, 1, 10",
			srv.LiveOpenAPITokens(), srv.MaxLiveOpenAPITokens(), srv.GetTokenCalls(), srv.RefreshCalls())
	}
	srv.FailSign(false)
	if _, err := o.Sign(context.Background(), "1001"); err != nil {
		t.Fatal(err)
	}
}

func TestTokenAuthBackoff(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	clock := newFakeClock()
	var logs syncBuffer
	cfg := openAPIConfig(t, srv, clock)
	id, key := cfg.AccessID, cfg.AccessKey
	srv.SetOpenAPICredentials(id, "not-"+key)
	cfg.AuthBackoffMax = 2 * time.Minute
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := newOpenAPI(t, cfg)
	ctx := context.Background()

	refused := func(wantCalls int, wantRetry time.Duration) {
		t.Helper()
		_, err := o.Sign(ctx, "1001")
		var oe *openapi.Error
		if !errors.Is(err, openapi.ErrAuth) || !errors.As(err, &oe) {
			t.Fatalf("Sign with refused credentials: %v", err)
		}
		if oe.Endpoint != "/openapi/v1.0/get_token" || oe.ErrCode != 10009 {
			t.Fatalf("error %+v", oe)
		}
		if srv.GetTokenCalls() != wantCalls {
			t.Fatalf("get_token calls %d, want %d", srv.GetTokenCalls(), wantCalls)
		}
		if !oe.RetryAt.Equal(clock.Now().Add(wantRetry)) {
			t.Fatalf("RetryAt %v, want now + %v", oe.RetryAt, wantRetry)
		}
	}
	refused(1, 30*time.Second)
	if _, err := o.Extensions(ctx); !errors.Is(err, openapi.ErrAuth) {
		t.Fatalf("Extensions while backing off: %v", err)
	}
	clock.Add(10 * time.Second)
	refused(1, 20*time.Second) // failed fast, no request
	clock.Add(20 * time.Second)
	refused(2, time.Minute) // tried again, doubled
	clock.Add(59 * time.Second)
	refused(2, time.Second)
	clock.Add(time.Second)
	refused(3, 2*time.Minute) // the maximum
	clock.Add(2 * time.Minute)
	refused(4, 2*time.Minute)
	if n := oaRequests(srv, "sign/create"); n != 0 {
		t.Fatalf("sign/create sent %d times without a token", n)
	}
	text := logs.String()
	if n := strings.Count(text, "the PBX refused the OpenAPI credentials (AccessID "+id+"): check Integrations > Linkus SDK / API; retrying in "); n != 4 {
		t.Fatalf("%d refusal log lines, want one per attempt (4):\n%s", n, text)
	}
	if strings.Contains(text, key) {
		t.Fatal("the AccessKey is in the logs")
	}

	srv.SetOpenAPICredentials(id, key) // fixed on the PBX
	clock.Add(2 * time.Minute)
	if _, err := o.Sign(ctx, "1001"); err != nil {
		t.Fatalf("Sign once the credentials work: %v", err)
	}
	srv.SetOpenAPICredentials(id, "not-"+key)
	srv.RevokeOpenAPITokens()
	clock.Add(25 * time.Hour)
	refused(6, 30*time.Second) // the backoff starts over after a success
}

// TestTokenCapIsNamedAndReleaseFreesIt: a get_token refused at the PBX's
// cap of tokens is ErrTokenCap, logged as that (not as refused
// credentials) and waited out; Release revokes a client's token, and the
// client gets a new one at its next call.
func TestTokenCapIsNamedAndReleaseFreesIt(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	clock := newFakeClock()
	ctx := context.Background()
	var holders []*openapi.Client
	for range pbxtest.MaxOpenAPITokens {
		o := newOpenAPI(t, openAPIConfig(t, srv, clock))
		if _, err := o.Sign(ctx, "1001"); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, o)
	}
	var logs syncBuffer
	cfg := openAPIConfig(t, srv, clock)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	late := newOpenAPI(t, cfg)
	_, err := late.Sign(ctx, "1001")
	if !errors.Is(err, openapi.ErrTokenCap) || errors.Is(err, openapi.ErrAuth) {
		t.Fatalf("Sign at the cap: %v, want ErrTokenCap", err)
	}
	if text := logs.String(); !strings.Contains(text, "maximum of access tokens") || !strings.Contains(text, "reason=token_cap") ||
		strings.Contains(text, "refused the OpenAPI credentials") {
		t.Fatalf("the cap is not named in the log:\n%s", text)
	}
	if err := holders[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.LiveOpenAPITokens(); n != pbxtest.MaxOpenAPITokens-1 {
		t.Fatalf("%d tokens alive after a Release, want %d", n, pbxtest.MaxOpenAPITokens-1)
	}
	clock.Add(time.Minute) // past the backoff
	if _, err := late.Sign(ctx, "1001"); err != nil {
		t.Fatalf("Sign once a token was released: %v", err)
	}
	if err := late.Release(ctx); err != nil {
		t.Fatal(err)
	}
	calls := srv.GetTokenCalls()
	if _, err := holders[0].Sign(ctx, "1001"); err != nil {
		t.Fatalf("Sign after Release: %v", err)
	}
	if n := srv.GetTokenCalls(); n != calls+1 {
		t.Fatalf("get_token calls %d after Sign following Release, want %d", n, calls+1)
	}
}

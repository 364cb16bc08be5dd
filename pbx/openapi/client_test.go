package openapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/testrig"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// fakeClock is the OpenAPI client's clock in tests: token lifetimes and the
// authentication backoff pass when the test says so. The simulator keeps
// the wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openAPIConfig is a config for srv's OpenAPI credentials, on a fake clock.
func openAPIConfig(t *testing.T, srv *pbxtest.Server, clock *fakeClock) openapi.Config {
	id, key := srv.OpenAPICredentials()
	return openapi.Config{
		URL:            srv.URL(),
		AccessID:       id,
		AccessKey:      key,
		RootCAs:        srv.CertPool(),
		RequestTimeout: 5 * time.Second,
		Logger:         testLogger(t),
		Now:            clock.Now,
	}
}

// newOpenAPI makes a client that the test closes.
func newOpenAPI(t *testing.T, cfg openapi.Config) *openapi.Client {
	t.Helper()
	o, err := openapi.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

func oaRequests(srv *pbxtest.Server, ep string) int { return srv.Requests("/openapi/v1.0/" + ep) }

func TestOpenAPISignLogsIn(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.AddExtension(pbxtest.Extension{Number: "1002"})
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	ctx := context.Background()

	for _, ext := range []string{"1001", "1002"} {
		sign, err := o.Sign(ctx, ext)
		if err != nil {
			t.Fatalf("Sign(%s): %v", ext, err)
		}
		c, err := pbx.NewClient(pbx.Config{URL: srv.URL(), RootCAs: srv.CertPool(), Username: ext, Secret: sign})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Login(ctx); err != nil {
			t.Fatalf("login of %s with its minted signature: %v", ext, err)
		}
		if err := c.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		c.CloseIdleConnections()
		if srv.SignsMinted(ext) != 1 {
			t.Fatalf("SignsMinted(%s) = %d, want 1", ext, srv.SignsMinted(ext))
		}
	}
	if srv.GetTokenCalls() != 1 || srv.LiveOpenAPITokens() != 1 {
		t.Fatalf("get_token calls %d, live tokens %d; want one token for both", srv.GetTokenCalls(), srv.LiveOpenAPITokens())
	}

	// An unknown extension: refused, after one retry with a renewed token.
	_, err := o.Sign(ctx, "4242")
	var oe *openapi.Error
	if !errors.Is(err, openapi.ErrSignRefused) || !errors.As(err, &oe) || oe.ErrCode != 40003 || oe.Endpoint != "/openapi/v1.0/sign/create" {
		t.Fatalf("Sign(4242) = %v, want an Error 40003 wrapping ErrSignRefused", err)
	}
	if n := oaRequests(srv, "sign/create"); n != 4 {
		t.Fatalf("sign/create requests %d, want 4 (two signatures, one refusal retried once)", n)
	}
	if _, err := o.Sign(ctx, ""); err == nil {
		t.Fatal("Sign of an empty number succeeded")
	}

	if err := o.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := srv.LiveOpenAPITokens(); n != 0 {
		t.Fatalf("live tokens after Close: %d", n)
	}
	if _, err := o.Sign(ctx, "1001"); !errors.Is(err, openapi.ErrClosed) {
		t.Fatalf("Sign after Close: %v, want ErrClosed", err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if srv.MaxLiveOpenAPITokens() > 2 {
		t.Fatalf("max live tokens %d", srv.MaxLiveOpenAPITokens())
	}
}

// requestCapture records what the client sends and what the PBX answers.
type requestCapture struct {
	base http.RoundTripper
	mu   sync.Mutex
	uas  []string
	// credentials seen on the wire: access_token parameters, and the
	// tokens and signatures of the answers.
	creds map[string]bool
}

func newRequestCapture(t *testing.T, srv *pbxtest.Server) *requestCapture {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
	t.Cleanup(tr.CloseIdleConnections)
	return &requestCapture{base: tr, creds: map[string]bool{}}
}

func (c *requestCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.uas = append(c.uas, r.Header.Get("User-Agent"))
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		c.creds[tok] = true
	}
	c.mu.Unlock()
	resp, err := c.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	var out struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
		Data    struct {
			Sign string `json:"sign"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &out)
	c.mu.Lock()
	for _, s := range []string{out.Access, out.Refresh, out.Data.Sign} {
		if s != "" {
			c.creds[s] = true
		}
	}
	c.mu.Unlock()
	return resp, nil
}

func (c *requestCapture) userAgents() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.uas)
}

func (c *requestCapture) credentials() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for s := range c.creds {
		out = append(out, s)
	}
	return out
}

func TestOpenAPIUserAgent(t *testing.T) {
	for _, c := range []struct{ set, want string }{{"", "pbx-bridge"}, {"acme-bridge/2.0", "acme-bridge/2.0"}} {
		t.Run(c.want, func(t *testing.T) {
			srv := newPBX(t, pbxtest.Options{})
			srv.AddExtension(pbxtest.Extension{Number: "1001"})
			capture := newRequestCapture(t, srv)
			clock := newFakeClock()
			cfg := openAPIConfig(t, srv, clock)
			cfg.UserAgent = c.set
			cfg.HTTPClient = &http.Client{Transport: capture}
			o := newOpenAPI(t, cfg)
			ctx := context.Background()
			if _, err := o.Sign(ctx, "1001"); err != nil {
				t.Fatal(err)
			}
			if _, err := o.Extensions(ctx); err != nil {
				t.Fatal(err)
			}
			clock.Add(25 * time.Minute)
			if _, err := o.Sign(ctx, "1001"); err != nil { // refresh_token, del_token of the old token
				t.Fatal(err)
			}
			if err := o.Close(ctx); err != nil {
				t.Fatal(err)
			}
			uas := capture.userAgents()
			if len(uas) < 6 {
				t.Fatalf("%d requests, want get_token, sign/create, extension/list, refresh_token, sign/create, del_token at least", len(uas))
			}
			for i, ua := range uas {
				if ua != c.want {
					t.Fatalf("request %d: User-Agent %q, want %q", i, ua, c.want)
				}
			}
		})
	}
}

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

func TestOpenAPICloseWaitsForTokenInFlight(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.SlowEndpoint("/openapi/v1.0/get_token", 300*time.Millisecond)
	o, err := openapi.New(openAPIConfig(t, srv, newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	signed := make(chan error, 1)
	go func() {
		_, err := o.Sign(context.Background(), "1001")
		signed <- err
	}()
	eventually(t, "get_token in flight", func() bool { return oaRequests(srv, "get_token") == 1 })
	if err := o.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := srv.LiveOpenAPITokens(); n != 0 || srv.GetTokenCalls() != 1 {
		t.Fatalf("after Close: %d live tokens, %d get_token calls; want the token it brought revoked", n, srv.GetTokenCalls())
	}
	if err := <-signed; err != nil && !errors.Is(err, openapi.ErrClosed) {
		t.Fatalf("Sign during Close: %v", err)
	}
}

func TestNewOpenAPIValidates(t *testing.T) {
	good := openapi.Config{URL: "https://pbx.example:8088", AccessID: "id", AccessKey: "key"}
	for _, c := range []struct {
		name   string
		mutate func(*openapi.Config)
		want   error
	}{
		{"http", func(c *openapi.Config) { c.URL = "http://pbx.example" }, pbx.ErrPBXURLNotHTTPS},
		{"path", func(c *openapi.Config) { c.URL = "https://pbx.example/openapi" }, pbx.ErrInvalidPBXURL},
		{"no AccessID", func(c *openapi.Config) { c.AccessID = " " }, pbx.ErrInvalidConfig},
		{"no AccessKey", func(c *openapi.Config) { c.AccessKey = "" }, pbx.ErrInvalidConfig},
		{"negative timeout", func(c *openapi.Config) { c.RequestTimeout = -1 }, pbx.ErrInvalidConfig},
		{"negative backoff", func(c *openapi.Config) { c.AuthBackoffMin = -1 }, pbx.ErrInvalidConfig},
		{"user agent with a newline", func(c *openapi.Config) { c.UserAgent = "a\nb" }, pbx.ErrInvalidConfig},
		{"CAFile and RootCAs", func(c *openapi.Config) { c.CAFile, c.RootCAs = "x.pem", newPBX(t, pbxtest.Options{}).CertPool() }, pbx.ErrInvalidConfig},
		{"good", func(*openapi.Config) {}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.mutate(&cfg)
			o, err := openapi.New(cfg)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("New: %v, want %v", err, c.want)
			}
			if o != nil {
				_ = o.Close(context.Background())
			}
		})
	}
}

func TestOpenAPILimiterSeesEveryRequest(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	lim := &testrig.CountingLimiter{}
	clock := newFakeClock()
	cfg := openAPIConfig(t, srv, clock)
	cfg.Limiter = lim
	var hooked recorder
	cfg.Hooks.Request = func(ep string, _ time.Duration, _ error) { hooked.Add(ep) }
	o := newOpenAPI(t, cfg)
	ctx := context.Background()
	if _, err := o.Sign(ctx, "1001"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Extensions(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Add(25 * time.Minute)
	if _, err := o.Sign(ctx, "1001"); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, ep := range []string{"get_token", "refresh_token", "del_token", "sign/create", "extension/list"} {
		total += oaRequests(srv, ep)
	}
	if acquired, held := lim.Counts(); acquired != total || held != 0 || total != 7 {
		t.Fatalf("limiter acquired %d (held %d), the PBX served %d requests, want 7", acquired, held, total)
	}
	want := []string{"get_token", "sign/create", "extension/list", "refresh_token", "del_token", "sign/create", "del_token"}
	got := hooked.List()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Request hook endpoints %v, want %v", got, want)
	}
}

// TestOpenAPICredentialsNeverLeak runs the client through refusals whose
// messages quote credentials, a transport failure of a URL that carries the
// token, refreshes and Close, and checks every log line at debug level and
// every error for the AccessKey, the tokens and the signatures.
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

func TestExtensionList(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	var want []string
	for i := range 250 {
		n := fmt.Sprint(1000 + i)
		srv.AddExtension(pbxtest.Extension{Number: n, Name: "Name " + n})
		want = append(want, n)
	}
	ext, _ := srv.Extension("1007")
	linkusOnline(t, srv, ext)
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	list, err := o.Extensions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := numbers(list); !slices.Equal(got, want) {
		t.Fatalf("numbers %v", got)
	}
	if n := oaRequests(srv, "extension/list"); n != 3 {
		t.Fatalf("extension/list requests %d, want 3", n)
	}
	wantInfo := openapi.Extension{ID: 8, Number: "1007", Name: "Name 1007", RoleName: "Employee", PresenceStatus: "available",
		Online: openapi.OnlineStatus{LinkusWeb: true}}
	if list[7] != wantInfo {
		t.Fatalf("list[7] = %+v, want %+v", list[7], wantInfo)
	}
	if list[8].Online.LinkusWeb {
		t.Fatal("1008 online without a session")
	}

	// Exactly two full pages: two requests.
	for i := 200; i < 250; i++ {
		srv.DeleteExtension(fmt.Sprint(1000 + i))
	}
	if list, err := o.Extensions(context.Background()); err != nil || len(list) != 200 || oaRequests(srv, "extension/list") != 5 {
		t.Fatalf("200 extensions: %d, %v, %d requests in all", len(list), err, oaRequests(srv, "extension/list"))
	}
}

func numbers(list []openapi.Extension) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.Number)
	}
	return out
}

// TestExtensionListHostile pages lists that a firmware might serve: every
// listing ends, within a bound set by what the PBX returned, and says when
// it cannot be trusted to be complete.
func TestExtensionListHostile(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	var all []string
	for i := range 250 {
		n := fmt.Sprint(1000 + i)
		srv.AddExtension(pbxtest.Extension{Number: n})
		all = append(all, n)
	}
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	for _, c := range []struct {
		name         string
		faults       pbxtest.ListFaults
		want         []string // nil: only the count is checked
		wantLen      int
		incomplete   bool
		wantRequests int
	}{
		{"well behaved", pbxtest.ListFaults{}, all, 250, false, 3},
		{"page size capped at 40", pbxtest.ListFaults{MaxPageSize: 40}, all, 250, false, 7},
		// A list that ends before its own total is not the whole list.
		{"total too high", pbxtest.ListFaults{TotalNumber: 100000}, all, 250, true, 3},
		{"page 2 empty", pbxtest.ListFaults{EmptyPage: 2}, all[:100], 100, true, 2},
		{"page 1 empty", pbxtest.ListFaults{EmptyPage: 1}, []string{}, 0, true, 1},
		{"page 3 empty, no total", pbxtest.ListFaults{EmptyPage: 3, TotalNumber: -1}, all[:200], 200, false, 3},
		{"total too low", pbxtest.ListFaults{TotalNumber: 10}, all, 250, false, 3},
		{"no total", pbxtest.ListFaults{TotalNumber: -1}, all, 250, false, 3},
		{"loose types", pbxtest.ListFaults{LooseTypes: true}, all, 250, false, 3},
		{"page ignored", pbxtest.ListFaults{IgnorePage: true}, all[:100], 100, true, 2},
		{"endless, no total", pbxtest.ListFaults{Endless: true, TotalNumber: -1}, nil, openapi.MaxListedExtensions, true, openapi.MaxListedExtensions / openapi.ExtensionPageSize},
		{"endless, true total", pbxtest.ListFaults{Endless: true}, nil, openapi.MaxListedExtensions, true, openapi.MaxListedExtensions / openapi.ExtensionPageSize},
		{"endless, total too high", pbxtest.ListFaults{Endless: true, TotalNumber: 1 << 30}, nil, openapi.MaxListedExtensions, true, openapi.MaxListedExtensions / openapi.ExtensionPageSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv.SetListFaults(c.faults)
			before := oaRequests(srv, "extension/list")
			list, err := o.Extensions(context.Background())
			if got := errors.Is(err, openapi.ErrExtensionListIncomplete); got != c.incomplete || (err != nil && !got) {
				t.Fatalf("err %v, want incomplete %v", err, c.incomplete)
			}
			if len(list) != c.wantLen || (c.want != nil && !slices.Equal(numbers(list), c.want)) {
				t.Fatalf("%d extensions, want %d", len(list), c.wantLen)
			}
			if n := oaRequests(srv, "extension/list") - before; n != c.wantRequests {
				t.Fatalf("%d requests, want %d", n, c.wantRequests)
			}
		})
	}
	srv.SetListFaults(pbxtest.ListFaults{LooseTypes: true})
	list, err := o.Extensions(context.Background())
	if err != nil || list[3].ID != 4 || list[3].Number != "1003" {
		t.Fatalf("loose types: %+v, %v", list[3], err)
	}
}

func TestExtensionListRefused(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.SetListAllowed(false)
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	list, err := o.Extensions(context.Background())
	var oe *openapi.Error
	if !errors.Is(err, openapi.ErrExtensionListRefused) || !errors.As(err, &oe) || oe.ErrCode != 10011 || list != nil {
		t.Fatalf("Extensions with credentials that may not list: %v, %v", list, err)
	}
	if n := oaRequests(srv, "extension/list"); n != 2 {
		t.Fatalf("extension/list requests %d, want 2 (one retry)", n)
	}
	// Signing still works with the same credentials.
	if _, err := o.Sign(context.Background(), "1001"); err != nil {
		t.Fatal(err)
	}
}

// TestExtensionListMalformedAnswers serves answers that the simulator never
// gives, from a minimal TLS server: none may read as an empty list, which
// would make a bridge stop serving every extension.
func TestExtensionListMalformedAnswers(t *testing.T) {
	for _, c := range []struct {
		name    string
		answer  string
		want    int  // extensions
		wantErr bool // a *pbx.TransportError
	}{
		{"no data", `{"errcode":0,"errmsg":"SUCCESS","total_number":3}`, 0, true},
		{"null data, no total", `{"errcode":0,"errmsg":"SUCCESS","data":null}`, 0, true},
		{"data an object", `{"errcode":0,"errmsg":"SUCCESS","data":{"number":"1001"},"total_number":1}`, 0, true},
		{"not JSON", `<html>busy</html>`, 0, true},
		{"no errcode", `{"data":[{"number":"1001"}],"total_number":1}`, 0, true},
		{"empty by total_number", `{"errcode":0,"errmsg":"SUCCESS","total_number":0}`, 0, false},
		{"quoted numbers", `{"errcode":"0","errmsg":"SUCCESS","data":[{"id":"1","number":"1001"}],"total_number":"1"}`, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch r.URL.Path {
				case "/openapi/v1.0/get_token":
					fmt.Fprint(w, `{"errcode":0,"errmsg":"SUCCESS","access_token":"access-token-1","access_token_expire_time":1800,"refresh_token":"refresh-token-1","refresh_token_expire_time":86400}`)
				case "/openapi/v1.0/extension/list":
					fmt.Fprint(w, c.answer)
				default:
					fmt.Fprint(w, `{"errcode":0,"errmsg":"SUCCESS"}`)
				}
			}))
			defer srv.Close()
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			o := newOpenAPI(t, openapi.Config{URL: srv.URL, AccessID: "id", AccessKey: "key", RootCAs: pool, Logger: testLogger(t)})
			list, err := o.Extensions(context.Background())
			var te *pbx.TransportError
			if errors.As(err, &te) != c.wantErr || (err != nil && !c.wantErr) || len(list) != c.want {
				t.Fatalf("Extensions: %d extensions, %v; want %d, transport error %v", len(list), err, c.want, c.wantErr)
			}
		})
	}
}

func TestExtensionListDecodesLoosely(t *testing.T) {
	for _, c := range []struct {
		item string
		want openapi.Extension
		ok   bool
	}{
		{`{"id":7,"number":"1001","caller_id_name":"Ann"}`, openapi.Extension{ID: 7, Number: "1001", Name: "Ann"}, true},
		{`{"id":"7","number":1001}`, openapi.Extension{ID: 7, Number: "1001"}, true},
		{`{"id":7.5,"number":" 1001 "}`, openapi.Extension{Number: "1001"}, true},
		{`{"number":"1001","online_status":{"sip_phone":{"status":1},"linkus_web":{"status":"1"},"linkus_mobile":{"status":2},"linkus_desktop":1}}`,
			openapi.Extension{Number: "1001", Online: openapi.OnlineStatus{SIPPhone: true, LinkusWeb: true}}, true},
		{`{"number":"1001","email_addr":null,"mobile_number":5551234,"role_name":["x"],"presence_status":"away"}`,
			openapi.Extension{Number: "1001", MobileNumber: "5551234", PresenceStatus: "away"}, true},
		{`{"id":7,"number":1001.5}`, openapi.Extension{}, false},
		{`{"id":7,"number":-1}`, openapi.Extension{}, false},
		{`{"id":7}`, openapi.Extension{}, false},
		{`{"id":7,"number":""}`, openapi.Extension{}, false},
		{`"1001"`, openapi.Extension{}, false},
		{`null`, openapi.Extension{}, false},
	} {
		got, ok := openapi.DecodeExtension(c.item)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: %+v %v, want %+v %v", c.item, got, ok, c.want, c.ok)
		}
	}
}

// ExampleClient mints a login signature and lists the extensions with one
// pair of OpenAPI credentials, as a bridge serving a whole PBX does.
func ExampleClient() {
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	sim.AddExtension(pbxtest.Extension{Number: "1001", Name: "Ann"})
	sim.AddExtension(pbxtest.Extension{Number: "1002", Name: "Bob"})
	id, key := sim.OpenAPICredentials()

	ctx := context.Background()
	oa, err := openapi.New(openapi.Config{URL: sim.URL(), AccessID: id, AccessKey: key, RootCAs: sim.CertPool()})
	if err != nil {
		panic(err)
	}
	defer oa.Close(ctx) // revokes the access token

	exts, err := oa.Extensions(ctx)
	if err != nil {
		panic(err)
	}
	for _, e := range exts {
		sign, err := oa.Sign(ctx, e.Number) // keep it; mint again only when a login with it is refused
		if err != nil {
			panic(err)
		}
		s, err := pbx.Open(ctx, pbx.Config{URL: sim.URL(), Username: e.Number, Secret: sign, RootCAs: sim.CertPool()})
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Number, e.Name, "logged in")
		_ = s.Close()
	}
	// Output:
	// 1001 Ann logged in
	// 1002 Bob logged in
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

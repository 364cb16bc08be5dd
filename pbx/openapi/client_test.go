package openapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

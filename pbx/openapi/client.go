package openapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/httpapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/redact"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// openAPIPrefix is where the PBX's OpenAPI lives, beside the Linkus API.
const openAPIPrefix = "/openapi/v1.0/"

// Defaults of Config's zero fields.
const (
	DefaultUserAgent = "pbx-bridge"
	// The first wait after the PBX refused the credentials, doubled after
	// each further refusal up to the maximum. A PBX blocks the IP of a
	// caller that fails to authenticate a few times in a row.
	DefaultAuthBackoffMin = 30 * time.Second
	DefaultAuthBackoffMax = 15 * time.Minute
)

// Config is what an OpenAPI client needs: the PBX, one pair of
// credentials, and how to reach it. Zero fields take the defaults.
type Config struct {
	// URL is the PBX's origin, "https://host[:port]", with the same rules
	// as pbx.Config.URL: the OpenAPI lives on the same origin as the Linkus API.
	URL string
	// AccessID and AccessKey are the Linkus SDK credentials (Integrations >
	// Linkus SDK) or an API application's Client ID and Client Secret
	// (Integrations > API). The AccessKey is a credential: it is never
	// logged and never put into an error.
	AccessID  string
	AccessKey string

	// CAFile, RootCAs and InsecureSkipVerify are as in pbx.Config, and used
	// only when HTTPClient is nil.
	CAFile             string
	RootCAs            *x509.CertPool
	InsecureSkipVerify bool
	// HTTPClient, if set, makes the requests: share the one the sessions
	// of the same PBX use (pbx.NewHTTPClient), so that the OpenAPI rides on
	// the same small pool of connections.
	HTTPClient *http.Client
	// Limiter, if set, is asked for a slot before every request, so that
	// OpenAPI requests count against the same budget as the sessions'.
	Limiter pbx.Limiter

	// RequestTimeout bounds each request. Default pbx.DefaultRequestTimeout.
	RequestTimeout time.Duration
	// UserAgent is sent with every request, which the OpenAPI requires.
	// Default DefaultUserAgent.
	UserAgent string
	// AuthBackoffMin and AuthBackoffMax bound the wait after the PBX
	// refused the credentials (see Client). Defaults DefaultAuthBackoffMin
	// and DefaultAuthBackoffMax.
	AuthBackoffMin time.Duration
	AuthBackoffMax time.Duration

	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
	// Hooks are optional observation callbacks.
	Hooks Hooks
	// Now is the clock that token lifetimes and the authentication backoff
	// are measured with. Default time.Now; tests move it forward to expire
	// tokens without waiting.
	Now func() time.Time
}

// Hooks observe an OpenAPI client for metrics. Nil functions are
// skipped. They are called from the callers' goroutines and the client's
// own, and must not block.
type Hooks struct {
	// Request follows every request; endpoint is the path after
	// /openapi/v1.0/, e.g. "get_token" or "sign/create". err is nil on
	// success, redacted otherwise.
	Request func(endpoint string, d time.Duration, err error)
	// TokenRefreshed follows every new access token; how is "get_token" or
	// "refresh_token".
	TokenRefreshed func(how string)
}

// Client is a client of the PBX's OpenAPI (shared/reference/openapi.md):
// it mints the extensions' login signatures (Sign) and lists the
// extensions (Extensions) with one pair of credentials. It is safe for
// concurrent use, and meant to be made once per PBX and shared by every
// extension: a PBX allows an application few access tokens, and blocks an
// IP that fails to authenticate a few times.
//
// # Tokens
//
// The client holds one access token for all its callers. It gets one with
// get_token on first use; renews it with refresh_token on the first use
// after 80% of its lifetime (get_token again if that fails or the refresh
// token has expired); and revokes the token it replaced with del_token
// while that one may still be valid, so that at most two are ever alive.
// Concurrent callers that need a new token wait for one renewal, which runs
// on its own goroutine so that a caller giving up fails no other. Close
// revokes the token. Nothing runs in the background otherwise: an idle
// client makes no requests, and its token simply expires.
//
// When a call made with the held token fails with an errcode (or HTTP 401
// or 403), the token may be stale (the PBX's errcode for an expired token
// is not documented): the client renews it once and retries once; a second
// failure is the answer. A transport error is returned as it is.
//
// # Refused credentials
//
// When the PBX refuses get_token, the client logs one error naming the
// cause and waits, from AuthBackoffMin doubling up to AuthBackoffMax,
// before it tries again. Meanwhile every call fails at once, without a
// request, with an *Error wrapping ErrAuth whose RetryAt says
// when the next attempt may be made.
//
// # Errors and credentials
//
// A non-zero errcode is an *Error; a failure to reach the PBX or to
// read its answer a *pbx.TransportError wrapping pbx.ErrPBXNetwork. The AccessKey,
// the tokens (which travel in URLs as the access_token parameter) and the
// minted signatures are never logged and never put into an error's text.
type Client struct {
	cfg       Config
	origin    *url.URL
	http      *http.Client
	transport *http.Transport // the one New built, nil if cfg.HTTPClient
	tls       *tls.Config     // for the event socket (streamconn.go)
	log       *slog.Logger
	red       redact.Redactor

	closing *pbx.Closer    // ends the client's own requests after Close
	wg      sync.WaitGroup // the token renewal in flight

	mu           sync.Mutex
	closed       bool
	tok          *accessToken
	fetch        *tokenFetch // the renewal in flight, if any
	authErr      *Error      // the last refusal of get_token, until one succeeds
	authBackoff  time.Duration
	renewRetryAt time.Time // no renewal of a still valid token before then
}

// New validates cfg and returns a client. It does no network I/O.
func New(cfg Config) (*Client, error) {
	origin, err := pbx.ParseOrigin(cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	o := &Client{cfg: cfg, origin: origin, log: cfg.Logger}
	o.red.Add(cfg.AccessKey)
	o.red.Add(url.QueryEscape(cfg.AccessKey))
	// The event socket dials with the HTTP client's TLS settings when
	// there is one.
	opts := wire.TLSOptions{HTTPClient: cfg.HTTPClient}
	if cfg.HTTPClient == nil {
		opts = wire.TLSOptions{CAFile: cfg.CAFile, RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify}
	}
	tc, err := wire.TLSConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pbx.ErrInvalidConfig, err)
	}
	if cfg.HTTPClient != nil {
		o.http = cfg.HTTPClient
	} else {
		o.http, o.transport = httpapi.NewClient(tc)
	}
	// The event socket's configuration, ready to dial with, as a
	// session's.
	o.tls = wire.SocketTLS(tc, origin)
	o.closing = pbx.NewCloser()
	return o, nil
}

// withDefaults validates cfg's fields other than URL and TLS, and fills the
// zero ones.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case strings.TrimSpace(cfg.AccessID) == "" || cfg.AccessKey == "":
		return cfg, fmt.Errorf("%w: OpenAPI AccessID and AccessKey are both required", pbx.ErrInvalidConfig)
	case strings.ContainsFunc(cfg.UserAgent, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return cfg, fmt.Errorf("%w: OpenAPI UserAgent has a control character", pbx.ErrInvalidConfig)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RequestTimeout", &cfg.RequestTimeout, pbx.DefaultRequestTimeout},
		{"AuthBackoffMin", &cfg.AuthBackoffMin, DefaultAuthBackoffMin},
		{"AuthBackoffMax", &cfg.AuthBackoffMax, DefaultAuthBackoffMax},
	} {
		if *d.v < 0 {
			return cfg, fmt.Errorf("%w: OpenAPI %s is negative", pbx.ErrInvalidConfig, d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	cfg.AuthBackoffMax = max(cfg.AuthBackoffMax, cfg.AuthBackoffMin)
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// signRequest is sign/create's body, as the public app servers send it.
type signRequest struct {
	Username   string `json:"username"`
	SignType   string `json:"sign_type"`
	ExpireTime int    `json:"expire_time"`
}

// Sign mints a login signature for the extension (sign/create, sign_type
// "sdk", expire_time 0: by the public app servers, one that does not
// expire). Keep it in memory and use it as pbx.Config.Secret; mint again only
// when a login with it is refused, since whether minting invalidates the
// older signatures is not documented. The signature is a credential: never
// log it. A refusal is an *Error wrapping ErrSignRefused (an unknown
// extension, for one).
func (o *Client) Sign(ctx context.Context, ext string) (string, error) {
	if ext == "" || strings.ContainsFunc(ext, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("pbx: Sign: extension number %q is empty or has a control character", ext)
	}
	var out struct {
		Data struct {
			Sign string `json:"sign"`
		} `json:"data"`
	}
	body := signRequest{Username: ext, SignType: "sdk", ExpireTime: 0}
	if err := o.authedCall(ctx, http.MethodPost, "sign/create", nil, body, ErrSignRefused, &out); err != nil {
		return "", err
	}
	if out.Data.Sign == "" {
		return "", &pbx.TransportError{Endpoint: openAPIPrefix + "sign/create", SDK: pbx.ErrPBXNetwork, Err: errors.New("answer has no data.sign")}
	}
	o.red.Add(out.Data.Sign)
	o.log.Info("pbx openapi: login signature minted", "ext", ext)
	return out.Data.Sign, nil
}

// Close revokes the held access token (del_token) and makes every later call
// fail with ErrClosed. It first waits for a token renewal in flight,
// so that the token it brings is revoked too, unless ctx ends first (then
// the renewal is abandoned and ctx's error returned). It returns the
// revocation's error, if any. Calling it again does nothing.
func (o *Client) Close(ctx context.Context) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	f := o.fetch
	o.mu.Unlock()
	defer o.CloseIdleConnections()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			o.closing.Fire()
			o.wg.Wait()
			return ctx.Err()
		}
	}
	o.mu.Lock()
	tok := o.tok
	o.tok = nil
	o.mu.Unlock()
	var err error
	if tok != nil && o.cfg.Now().Before(tok.accessExp) {
		err = o.revoke(ctx, tok.access)
	}
	o.closing.Fire()
	o.wg.Wait()
	return err
}

// Release revokes the held access token (del_token), if any, and keeps the
// client usable: the next call gets a new token. A caller that needs the
// OpenAPI only now and then (a replica of a fleet minting a signature)
// holds a token only while it uses it, so that a fleet of any size stays
// within the PBX's cap of tokens. It waits for a renewal in flight first,
// so that the token it brings is revoked too, unless ctx ends.
func (o *Client) Release(ctx context.Context) error {
	o.mu.Lock()
	f := o.fetch
	o.mu.Unlock()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	o.mu.Lock()
	tok := o.tok
	o.tok, o.renewRetryAt = nil, time.Time{}
	o.mu.Unlock()
	if tok == nil || !o.cfg.Now().Before(tok.accessExp) {
		return nil
	}
	return o.revoke(ctx, tok.access)
}

// CloseIdleConnections closes the idle keep-alive connections of the
// client's own transport (not those of a Config.HTTPClient).
func (o *Client) CloseIdleConnections() {
	if o.transport != nil {
		o.transport.CloseIdleConnections()
	}
}

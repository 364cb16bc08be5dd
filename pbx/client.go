package pbx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/httpapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/redact"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/sample"
)

// apiPrefix is where the PBX's HTTP API lives.
const apiPrefix = "/api/v1.0/"

// loginErrSDKPlanDisabled is login's errcode for "SDK plan disabled" (-110).
const loginErrSDKPlanDisabled = 70136

// Client speaks the PBX's HTTP API for one extension. It is safe for
// concurrent use. A Session uses one; it is also usable on its own.
type Client struct {
	cfg       Config
	origin    *url.URL
	http      *http.Client
	transport *http.Transport // the one NewClient built, nil if cfg.HTTPClient
	tls       *tls.Config     // the subscribe socket's, ready to dial with; shared
	log       *slog.Logger
	red       redact.Redactor
	warns     sample.Warnings // the warnings of this client's session

	mu        sync.RWMutex
	token     string
	loginTime time.Time
}

// NewClient validates cfg (URL, user agent, TLS, durations) and returns a
// client. It does no network I/O.
func NewClient(cfg Config) (*Client, error) {
	origin, err := ParseOrigin(cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tc, socketTC, err := cfg.tlsConfigs(origin)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, origin: origin, tls: socketTC, log: cfg.Logger}
	c.red.Add(cfg.Secret)
	if cfg.HTTPClient != nil {
		c.http = cfg.HTTPClient
	} else {
		c.http, c.transport = httpapi.NewClient(tc)
	}
	return c, nil
}

// Token returns the access token of the last login ("" before it and after
// Logout). It is a credential: the session needs it for the socket URL; do
// not log it.
func (c *Client) Token() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

func (c *Client) setToken(token string) {
	c.red.Add(token)
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// LoginTime returns when the last login succeeded, by the PBX's clock (see
// Session.LoginTime); zero before the first login.
func (c *Client) LoginTime() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.loginTime
}

// pbxTime is the moment of an answer by the PBX's clock: its Date header
// when present and parseable (a resolution of one second), else local, the
// local clock's reading then.
func pbxTime(header http.Header, local time.Time) time.Time {
	if d := header.Get("Date"); d != "" {
		if t, err := http.ParseTime(d); err == nil {
			return t
		}
	}
	return local
}

// Host returns the PBX's host[:port].
func (c *Client) Host() string { return c.origin.Host }

// CloseIdleConnections closes the idle keep-alive connections of the client's
// own transport (not those of a Config.HTTPClient).
func (c *Client) CloseIdleConnections() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// GetProduct asks the PBX what it is (pbx/getproduct, no login needed). Every
// failure wraps ErrGetProductFailed (-4), as does a product without
// base_oem_id.
func (c *Client) GetProduct(ctx context.Context) (Product, error) {
	const ep = "pbx/getproduct"
	var out struct {
		Product *Product `json:"product"`
	}
	q := url.Values{"host": {sdkHost(c.origin)}}
	if err := c.call(ctx, http.MethodGet, ep, q, nil, false, ErrGetProductFailed, &out); err != nil {
		return Product{}, err
	}
	if out.Product == nil || out.Product.BaseOEMID == nil {
		return Product{}, fmt.Errorf("pbx %s%s: answer has no usable product.base_oem_id: %w", apiPrefix, ep, ErrGetProductFailed)
	}
	return *out.Product, nil
}

// product returns the PBX's getproduct answer: the shared one of
// Config.ProductCache when there is one, else a new request.
func (c *Client) product(ctx context.Context) (Product, error) {
	if c.cfg.ProductCache == nil {
		return c.GetProduct(ctx)
	}
	return c.cfg.ProductCache.get(ctx, c.GetProduct)
}

// unreachable tells the product cache that the PBX could not be reached,
// so that the next session that needs the product asks again.
func (c *Client) unreachable() {
	if c.cfg.ProductCache != nil {
		c.cfg.ProductCache.Invalidate()
	}
}

// sdkHost is what the SDK sends as getproduct's host: its pbxURL's
// URL.host, as a browser's URL parser gives it: the host in lower case (an
// IPv6 address in its canonical form), and the port as a plain decimal
// number, left out when it is https's default, 443.
func sdkHost(origin *url.URL) string {
	host := strings.ToLower(origin.Hostname())
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && ip.Zone() == "" {
		host = ip.String()
	}
	port := origin.Port()
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	}
	if port == "" || port == "443" {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// loginRequest is login's body, as the SDK sends it.
type loginRequest struct {
	Username    string  `json:"username"`
	Password    string  `json:"password"`
	LoginSource *string `json:"login_source"`
	LoginJump   string  `json:"login_jump"`
}

// Login logs in with the signature and keeps the access token for the
// following requests. Errcode 70136 is an *APIError wrapping
// ErrSDKPlanDisabled (-110), another errcode one wrapping ErrPBXAPI (-103); a
// transport failure is a *TransportError wrapping ErrPBXNetwork (-102).
func (c *Client) Login(ctx context.Context) (string, error) {
	const ep = "login"
	body := loginRequest{Username: c.cfg.Username, Password: c.cfg.Secret, LoginJump: "sdk"}
	if c.cfg.UserAgent == UserAgentWebPC {
		src := "webpc"
		body.LoginSource = &src
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	var header http.Header
	if err := c.do(ctx, http.MethodPost, ep, nil, body, false, ErrPBXAPI, &out, &header); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.ErrCode == loginErrSDKPlanDisabled {
			ae.SDK = ErrSDKPlanDisabled
		}
		return "", err
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("pbx %s%s: answer has no access_token: %w", apiPrefix, ep, ErrPBXAPI)
	}
	c.setToken(out.AccessToken)
	at := pbxTime(header, time.Now())
	c.mu.Lock()
	c.loginTime = at
	c.mu.Unlock()
	c.log.Info("pbx login", "host", c.origin.Host, "pbx_time", at)
	return out.AccessToken, nil
}

// GetPersonalGlobal reads extension/getpersonalglobal.
func (c *Client) GetPersonalGlobal(ctx context.Context) (PersonalGlobal, error) {
	a, err := c.getPersonalGlobal(ctx)
	return a.PersonalGlobal, err
}

func (c *Client) getPersonalGlobal(ctx context.Context) (*globalAnswer, error) {
	out := new(globalAnswer)
	err := c.call(ctx, http.MethodGet, "extension/getpersonalglobal", nil, nil, true, ErrPBXAPI, out)
	return out, err
}

// GetLicense reads licenseservice/get.
func (c *Client) GetLicense(ctx context.Context) (License, error) {
	var out License
	err := c.call(ctx, http.MethodGet, "licenseservice/get", nil, nil, true, ErrPBXAPI, &out)
	return out, err
}

// GetPersonal reads extension/getpersonal. An answer without "extension"
// wraps ErrGetPersonalNotFound (-104).
func (c *Client) GetPersonal(ctx context.Context) (Personal, error) {
	a, err := c.getPersonal(ctx)
	if err != nil {
		return Personal{}, err
	}
	return *a.Extension, nil
}

func (c *Client) getPersonal(ctx context.Context) (*personalAnswer, error) {
	const ep = "extension/getpersonal"
	out := new(personalAnswer)
	if err := c.call(ctx, http.MethodGet, ep, nil, nil, true, ErrPBXAPI, out); err != nil {
		return nil, err
	}
	if out.Extension == nil {
		return nil, fmt.Errorf("pbx %s%s: answer has no extension object: %w", apiPrefix, ep, ErrGetPersonalNotFound)
	}
	return out, nil
}

// SearchPersonal runs a CDR query (cdr/searchpersonal) after filling the
// SDK's defaults and validating q (an invalid query wraps ErrInvalidQuery and
// is not sent). A non-zero errcode returns both the decoded answer and an
// *APIError. The answer is read loosely (see the package doc): a
// total_number that is no whole number reads as -1, a record whose id is
// none as ID 0, and a personal_cdr_list that is there but no list fails
// the call (wrapping ErrPBXAPI).
func (c *Client) SearchPersonal(ctx context.Context, q CDRQuery) (*CDRResult, error) {
	q, err := q.Normalized()
	if err != nil {
		return nil, err
	}
	v := url.Values{
		"page":      {strconv.Itoa(q.Page)},
		"page_size": {strconv.Itoa(q.Size)},
		"sort_by":   {q.SortBy},
		"order_by":  {q.OrderBy},
		"status":    {strconv.Itoa(int(q.Status))},
	}
	if q.Filter != nil {
		v.Set("number", *q.Filter)
	}
	out := new(CDRResult)
	err = c.call(ctx, http.MethodGet, "cdr/searchpersonal", v, nil, true, ErrPBXAPI, out)
	var ae *APIError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &ae) && ae.HTTPStatus == http.StatusOK:
		return out, err
	default:
		return nil, err
	}
}

// Logout logs the access token out and forgets it. Without a token (never
// logged in, or already logged out) there is nothing to do and it returns
// nil.
func (c *Client) Logout(ctx context.Context) error {
	if c.Token() == "" {
		return nil
	}
	err := c.call(ctx, http.MethodGet, "logout", nil, nil, true, ErrPBXAPI, nil)
	if err == nil {
		c.mu.Lock()
		c.token = ""
		c.mu.Unlock()
		c.log.Info("pbx logout", "host", c.origin.Host)
	}
	return err
}

// logoutQuietly logs out on the way out of a failed or ended session: best
// effort, on its own deadline even if ctx is already done.
func (c *Client) logoutQuietly(ctx context.Context) {
	if err := c.Logout(context.WithoutCancel(ctx)); err != nil {
		c.log.Warn("pbx logout failed", "err", err)
	}
}

// call makes one API request and decodes a successful answer into out. sdk
// is the code its failures wrap (ErrGetProductFailed for getproduct,
// ErrPBXAPI or ErrPBXNetwork otherwise). On a non-zero errcode out is still
// decoded (SearchPersonal returns it) and an *APIError returned.
func (c *Client) call(ctx context.Context, method, ep string, q url.Values, body any, auth bool, sdk *Error, out any) error {
	return c.do(ctx, method, ep, q, body, auth, sdk, out, nil)
}

// do is call, and if header is not nil it receives the answer's header
// when the answer was read.
func (c *Client) do(ctx context.Context, method, ep string, q url.Values, body any, auth bool, sdk *Error, out any, header *http.Header) (err error) {
	path := apiPrefix + ep
	caller := ctx
	defer func() {
		// A PBX that did not answer (its own timeout included) may come
		// back as another firmware: read the product again then.
		var te *TransportError
		if errors.As(err, &te) && caller.Err() == nil {
			c.unreachable()
		}
	}()
	netSDK := ErrPBXNetwork
	if sdk == ErrGetProductFailed {
		netSDK = ErrGetProductFailed
	}
	transportErr := func(cause error) error {
		return &TransportError{Endpoint: path, SDK: netSDK, Err: c.red.Err(cause)}
	}
	r := httpapi.Request{Method: method, Path: path, Query: q, Body: body, Endpoint: ep}
	if auth {
		token := c.Token()
		if token == "" {
			return fmt.Errorf("pbx %s: not logged in: %w", path, ErrPBXAPI)
		}
		r.Header = http.Header{"Authorization": {token}}
	}
	e := httpapi.Engine{HTTP: c.http, Origin: c.origin, Timeout: c.cfg.RequestTimeout, Limiter: c.cfg.Limiter,
		OnRequest: c.cfg.Hooks.Request, Log: c.log, LogMsg: "pbx request"}
	refused := func(f *httpapi.Refusal) error {
		return &APIError{Endpoint: path, HTTPStatus: f.Status, ErrCode: f.Code, ErrMsg: c.red.Text(f.Msg), SDK: sdk}
	}
	data, h, err := e.Exchange(ctx, r, transportErr, refused)
	if header != nil && h != nil {
		*header = h
	}
	// A refusal in an HTTP success still brings its body: SearchPersonal
	// decodes it (the SDK returns it).
	if out != nil && data != nil {
		if derr := c.decodeAnswer(ep, data, out); err == nil {
			err = derr
		}
	}
	return err
}

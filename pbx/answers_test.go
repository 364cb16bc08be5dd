package pbx_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// TestOddAnswers covers how the client classifies answers the simulator
// never gives: a real TLS server that answers each path with a fixed status
// and body, as a broken PBX or a proxy in front of it might.
// Long for its table of cases, which reads best in one place.
func TestOddAnswers(t *testing.T) {
	const token = "tok-0123456789abcdef"
	type answer struct {
		status int
		body   string
	}
	tests := []struct {
		name    string
		answers map[string]answer // by path; login defaults to a good one
		call    func(c *pbx.Client) error
		sdk     *pbx.Error
		api     bool   // an *APIError (else a *TransportError, unless sdk says otherwise)
		text    string // a fragment of the error
	}{
		{name: "product without base_oem_id",
			answers: map[string]answer{"/api/v1.0/pbx/getproduct": {200, `{"errcode":0,"product":{"version":"37.12.0.10"}}`}},
			call:    func(c *pbx.Client) error { _, err := c.GetProduct(context.Background()); return err },
			sdk:     pbx.ErrGetProductFailed, text: "base_oem_id"},
		{name: "proxy error on getproduct",
			answers: map[string]answer{"/api/v1.0/pbx/getproduct": {502, `<html>Bad Gateway</html>`}},
			call:    func(c *pbx.Client) error { _, err := c.GetProduct(context.Background()); return err },
			sdk:     pbx.ErrGetProductFailed, text: "HTTP 502"},
		{name: "login answers HTML",
			answers: map[string]answer{"/api/v1.0/login": {200, `<html>captive portal</html>`}},
			call:    func(c *pbx.Client) error { _, err := c.Login(context.Background()); return err },
			sdk:     pbx.ErrPBXNetwork, text: "not a JSON object"},
		{name: "login without errcode",
			answers: map[string]answer{"/api/v1.0/login": {200, `{"errmsg":"SUCCESS","access_token":"x"}`}},
			call:    func(c *pbx.Client) error { _, err := c.Login(context.Background()); return err },
			sdk:     pbx.ErrPBXNetwork, text: "no numeric errcode"},
		// The SDK compares errcode === 0: null is no success.
		{name: "login with a null errcode",
			answers: map[string]answer{"/api/v1.0/login": {200, `{"errcode":null,"errmsg":"SUCCESS","access_token":"x"}`}},
			call:    func(c *pbx.Client) error { _, err := c.Login(context.Background()); return err },
			sdk:     pbx.ErrPBXNetwork, text: "no numeric errcode"},
		{name: "login without token",
			answers: map[string]answer{"/api/v1.0/login": {200, `{"errcode":0,"errmsg":"SUCCESS"}`}},
			call:    func(c *pbx.Client) error { _, err := c.Login(context.Background()); return err },
			sdk:     pbx.ErrPBXAPI, text: "access_token"},
		{name: "login redirected",
			answers: map[string]answer{"/api/v1.0/login": {302, ``}},
			call:    func(c *pbx.Client) error { _, err := c.Login(context.Background()); return err },
			sdk:     pbx.ErrPBXNetwork, text: "HTTP 302"},
		{name: "personal without extension",
			answers: map[string]answer{"/api/v1.0/extension/getpersonal": {200, `{"errcode":0,"errmsg":"SUCCESS"}`}},
			call:    loginThen(func(c *pbx.Client) error { _, err := c.GetPersonal(context.Background()); return err }),
			sdk:     pbx.ErrGetPersonalNotFound, text: "no extension"},
		{name: "personal refused with HTTP 401",
			answers: map[string]answer{"/api/v1.0/extension/getpersonal": {401, `Unauthorized`}},
			call:    loginThen(func(c *pbx.Client) error { _, err := c.GetPersonal(context.Background()); return err }),
			sdk:     pbx.ErrPBXAPI, api: true, text: "HTTP 401"},
		{name: "license with the PBX's error on a 404",
			answers: map[string]answer{"/api/v1.0/licenseservice/get": {404, `{"errcode":10001,"errmsg":"INTERFACE NOT EXIST"}`}},
			call:    loginThen(func(c *pbx.Client) error { _, err := c.GetLicense(context.Background()); return err }),
			sdk:     pbx.ErrPBXAPI, api: true, text: "10001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				a, ok := tt.answers[r.URL.Path]
				switch {
				case ok:
				case r.URL.Path == "/api/v1.0/login":
					a = answer{200, `{"errcode":0,"errmsg":"SUCCESS","access_token":"` + token + `"}`}
				default:
					a = answer{404, `{"errcode":10001,"errmsg":"INTERFACE NOT EXIST"}`}
				}
				if r.URL.Path != "/api/v1.0/login" && r.URL.Path != "/api/v1.0/pbx/getproduct" && r.Header.Get("Authorization") != token {
					a = answer{200, `{"errcode":10004,"errmsg":"INVALID OR EXPIRED TOKEN"}`}
				}
				if a.status == http.StatusFound {
					w.Header().Set("Location", "https://elsewhere.invalid/")
				}
				w.WriteHeader(a.status)
				_, _ = w.Write([]byte(a.body))
			}))
			defer srv.Close()
			c, err := pbx.NewClient(pbx.Config{
				URL: srv.URL, Username: "1001", Secret: "signature-0123456789",
				RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
				Logger:  testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			err = tt.call(c)
			if !errors.Is(err, tt.sdk) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want %v with %q", err, tt.sdk, tt.text)
			}
			var ae *pbx.APIError
			var te *pbx.TransportError
			switch {
			case tt.api && !errors.As(err, &ae):
				t.Errorf("err = %#v, want an *APIError", err)
			case !tt.api && errors.As(err, &ae):
				t.Errorf("err = %#v, want no *APIError", err)
			case (tt.sdk == pbx.ErrPBXNetwork || tt.text == "HTTP 502") && !errors.As(err, &te):
				t.Errorf("err = %#v, want a *TransportError", err)
			}
		})
	}
}

func loginThen(call func(c *pbx.Client) error) func(c *pbx.Client) error {
	return func(c *pbx.Client) error {
		if _, err := c.Login(context.Background()); err != nil {
			return err
		}
		return call(c)
	}
}

// TestLooseDecoding: the fields are read as loosely as the SDK's
// JavaScript reads them ("7" and 7.0 are 7, a number is a string's text),
// and whatever cannot be read is left zero and reported, by field and JSON
// kind, never by value.
func TestLooseDecoding(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1.0/login":
			_, _ = w.Write([]byte(`{"errcode":0,"access_token":"tok-0123456789abcdef"}`))
		case "/api/v1.0/extension/getpersonal":
			_, _ = w.Write([]byte(`{"errcode":0,"extension":{"id":"7","number":1001,"caller_id_name":"Alice","ID":99,` +
				`"enb_web_client":"1","enb_desktop_client":1.0,"enb_ctl_record":true,"enb_web_client_call_waiting":{"secret-value":1}}}`))
		case "/api/v1.0/pbx/getproduct":
			_, _ = w.Write([]byte(`{"errcode":0,"product":{"base_oem_id":"1","oem_id":"not-a-number","version":37.12,"product_name":"P560"}}`))
		}
	}))
	defer srv.Close()
	type problem struct{ endpoint, field string }
	var problems []problem
	var logs syncBuffer
	c, err := pbx.NewClient(pbx.Config{URL: srv.URL, Username: "1001", Secret: "x", RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Hooks:  pbx.Hooks{DecodeProblem: func(endpoint, field string) { problems = append(problems, problem{endpoint, field}) }}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	p, err := loginThenPersonal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := pbx.Personal{Extension: pbx.Extension{ID: 7, Number: "1001", Name: "Alice"}, EnbWebClient: 1, EnbDesktopClient: 1}
	if p != want {
		t.Errorf("personal = %+v, want %+v", p, want)
	}
	product, err := c.GetProduct(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if product.PlanMode() != "cn" || product.OEMID != 0 || product.Version != "37.12" || product.ProductName != "P560" {
		t.Errorf("product = %+v, want the cn plan, no oem_id, version 37.12", product)
	}
	wantProblems := []problem{
		{"extension/getpersonal", "extension.enb_ctl_record"},
		{"extension/getpersonal", "extension.enb_web_client_call_waiting"},
		{"pbx/getproduct", "product.oem_id"},
	}
	if !slices.Equal(problems, wantProblems) {
		t.Errorf("problems %v, want %v", problems, wantProblems)
	}
	text := logs.String()
	for _, want := range []string{"field=extension.enb_ctl_record json_kind=bool", "field=extension.enb_web_client_call_waiting json_kind=object", "field=product.oem_id json_kind=string"} {
		if !strings.Contains(text, want) {
			t.Errorf("no warning with %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "not-a-number") || strings.Contains(text, "secret-value") {
		t.Errorf("a warning shows a value:\n%s", text)
	}
}

func loginThenPersonal(c *pbx.Client) (pbx.Personal, error) {
	if _, err := c.Login(context.Background()); err != nil {
		return pbx.Personal{}, err
	}
	return c.GetPersonal(context.Background())
}

// TestGetProductHost: getproduct's host is what the SDK's URL.host gives:
// lower case, no default port, the port as a plain number.
func TestGetProductHost(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://pbx.example.com", "pbx.example.com"},
		{"https://PBX.Example.COM:443", "pbx.example.com"},
		{"https://pbx.example.com:0443/", "pbx.example.com"},
		{"https://pbx.example.com:8088", "pbx.example.com:8088"},
		{"https://pbx.example.com:08088", "pbx.example.com:8088"},
		{"https://127.0.0.1:8443", "127.0.0.1:8443"},
		{"https://[::1]:443", "[::1]"},
		{"https://[0:0:0:0:0:0:0:1]:8088", "[::1]:8088"},
		{"https://[FE80::1]", "[fe80::1]"},
	}
	for _, tt := range tests {
		got, err := pbx.SDKHost(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("host of %s = %q, %v; want %q", tt.url, got, err, tt.want)
		}
	}

	// On the wire: a PBX reached as EXAMPLE.com:443 (dialled at a local
	// server) sees host=example.com.
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Query()["host"]...)
		_, _ = w.Write([]byte(`{"errcode":0,"product":{"base_oem_id":0,"version":"37.12.0.10"}}`))
	}))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	defer tr.CloseIdleConnections()
	c, err := pbx.NewClient(pbx.Config{URL: "https://EXAMPLE.com:443", HTTPClient: &http.Client{Transport: tr}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetProduct(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "example.com" {
		t.Fatalf("host parameters %q, want [example.com]", seen)
	}
}

// TestShortSecretNeverEchoed: a PBX that quotes the password in its login
// error must not put it into the error text, however short the secret (and
// in whatever form it quotes it).
func TestShortSecretNeverEchoed(t *testing.T) {
	const secret = "q7&"
	for _, echo := range []string{secret, `q7\u0026`, "q7%26"} {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"errcode":10009,"errmsg":"wrong password ` + echo + ` for 1001"}`))
		}))
		c, err := pbx.NewClient(pbx.Config{URL: srv.URL, Username: "1001", Secret: secret,
			RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Login(context.Background())
		c.CloseIdleConnections()
		srv.Close()
		var ae *pbx.APIError
		if !errors.As(err, &ae) || ae.ErrCode != 10009 {
			t.Fatalf("echo %s: err = %v, want the PBX's errcode 10009", echo, err)
		}
		if strings.Contains(err.Error(), "q7") || !strings.Contains(err.Error(), pbx.Redacted) {
			t.Errorf("echo %s: the secret shows in %q", echo, err)
		}
	}
	if pbx.MinSignatureLen != 8 {
		t.Errorf("MinSignatureLen = %d", pbx.MinSignatureLen)
	}
}

func TestIsTokenRejected(t *testing.T) {
	api := func(status, code int, msg string) error {
		return &pbx.APIError{Endpoint: "/api/v1.0/cdr/searchpersonal", HTTPStatus: status, ErrCode: code, ErrMsg: msg, SDK: pbx.ErrPBXAPI}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ErrTokenRejected", pbx.ErrTokenRejected, true},
		{"wrapped ErrTokenRejected", fmt.Errorf("session: %w", pbx.ErrTokenRejected), true},
		{"errcode 10004", api(200, 10004, "INVALID OR EXPIRED TOKEN"), true},
		{"errcode 10004, other words", api(200, 10004, "NOT LOGGED IN"), true},
		{"HTTP 401", api(401, 0, "Unauthorized"), true},
		{"HTTP 403", api(403, 0, "Forbidden"), true},
		{"another code that names the token", api(200, 10099, "Token has expired"), true},
		{"wrapped", fmt.Errorf("catch-up: %w", api(200, 10004, "")), true},
		{"interface missing", api(404, 10001, "INTERFACE NOT EXIST"), false},
		{"bad parameter", api(200, 40002, "PARAMETER ERROR"), false},
		{"server error with an errcode", api(500, 50001, "SYSTEM BUSY"), false},
		{"transport error", &pbx.TransportError{Endpoint: "/api/v1.0/login", SDK: pbx.ErrPBXNetwork, Err: errors.New("HTTP 502 Bad Gateway")}, false},
		{"a transport error that says token", &pbx.TransportError{Endpoint: "/x", SDK: pbx.ErrPBXNetwork, Err: errors.New("token bucket empty")}, false},
		{"plain error", errors.New("access token rejected?"), false},
	}
	for _, tt := range tests {
		if got := pbx.IsTokenRejected(tt.err); got != tt.want {
			t.Errorf("%s: IsTokenRejected(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestLoginTime: the login's moment by the PBX's clock, from the answer's
// Date header; the local clock when the PBX sends none that parses.
func TestLoginTime(t *testing.T) {
	pbxClock := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, tt := range []struct {
		date string // "" for none
		want time.Time
	}{
		{date: pbxClock.Format(http.TimeFormat), want: pbxClock},
		{date: "Saturday, 03-Feb-01 04:05:06 GMT", want: pbxClock}, // RFC 850
		{date: "yesterday"},
		{},
	} {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.date != "" {
				w.Header().Set("Date", tt.date)
			} else {
				w.Header()["Date"] = nil // net/http adds none then
			}
			_, _ = w.Write([]byte(`{"errcode":0,"access_token":"tok-0123456789abcdef"}`))
		}))
		c, err := pbx.NewClient(pbx.Config{URL: srv.URL, Username: "1001", Secret: "signature-0123456789",
			RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if !c.LoginTime().IsZero() {
			t.Errorf("LoginTime before the login = %v", c.LoginTime())
		}
		before := time.Now()
		_, err = c.Login(context.Background())
		after := time.Now()
		c.CloseIdleConnections()
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := c.LoginTime()
		if !tt.want.IsZero() {
			if !got.Equal(tt.want) {
				t.Errorf("Date %q: LoginTime = %v, want %v", tt.date, got, tt.want)
			}
		} else if got.Before(before) || got.After(after) {
			t.Errorf("Date %q: LoginTime = %v, want the local clock between %v and %v", tt.date, got, before, after)
		}
	}
}

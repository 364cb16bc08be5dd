package pbxtest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestURL(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	u, err := url.Parse(p.URL())
	if err != nil || u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Port() == "" || u.Port() == "0" || u.Path != "" {
		t.Fatalf("URL() = %q", p.URL())
	}
}

func TestCertificate(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{Hosts: []string{"pbx.example.test", "10.9.8.7", "[fd00::7]"}})
	addr := strings.TrimPrefix(p.URL(), "https://")

	block, rest := pem.Decode(p.CertPEM())
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("CertPEM is not one PEM certificate: %q", p.CertPEM())
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if key, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() || !ca.IsCA {
		t.Fatalf("CA: IsCA %v, key %T, want an ECDSA P-256 CA", ca.IsCA, ca.PublicKey)
	}

	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := p.WriteCAFile(path); err != nil {
		t.Fatal(err)
	}
	fromFile := x509.NewCertPool()
	if b, err := os.ReadFile(path); err != nil || !fromFile.AppendCertsFromPEM(b) {
		t.Fatalf("CA file unusable: %v", err)
	}

	for _, tc := range []struct {
		name       string
		roots      *x509.CertPool
		serverName string
		ok         bool
	}{
		{"ip", p.CertPool(), "127.0.0.1", true},
		{"ipv6 loopback", p.CertPool(), "::1", true},
		{"localhost", p.CertPool(), "localhost", true},
		{"extra dns", p.CertPool(), "pbx.example.test", true},
		{"extra ip", p.CertPool(), "10.9.8.7", true},
		{"extra bracketed ipv6", p.CertPool(), "fd00::7", true},
		{"CA file", fromFile, "localhost", true},
		{"name not in cert", p.CertPool(), "other.example.test", false},
		{"untrusted", x509.NewCertPool(), "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tc.roots, ServerName: tc.serverName, NextProtos: []string{"h2", "http/1.1"}})
			if !tc.ok {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded, want a verification failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			// WebSockets need HTTP/1.1, so the PBX must not pick h2.
			if proto := conn.ConnectionState().NegotiatedProtocol; proto != "http/1.1" {
				t.Errorf("ALPN %q, want http/1.1", proto)
			}
		})
	}
}

func TestListenOption(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := start(t, pbxtest.Options{Listen: addr})
	if p.URL() != "https://"+addr {
		t.Fatalf("URL() = %q, want https://%s", p.URL(), addr)
	}
	if _, err := pbxtest.NewServer(pbxtest.Options{Listen: addr}); err == nil {
		t.Fatal("second server on the same address started")
	}
}

func TestObservationCounters(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	token := p.login(e)

	if n := p.LiveSockets("1001") + p.MaxLiveSockets("1001") + p.Heartbeats("1001") + p.Logouts("1001"); n != 0 {
		t.Fatalf("counters before any socket: %d", n)
	}
	if p.Logins("1001") != 1 {
		t.Fatalf("Logins = %d, want 1", p.Logins("1001"))
	}
	a := p.subscribe("1001", token, newFirmwareTopics...)
	b := p.subscribe("1001", token, newFirmwareTopics...)
	c := p.subscribe("1001", token, newFirmwareTopics...)
	if live, most := p.LiveSockets("1001"), p.MaxLiveSockets("1001"); live != 3 || most != 3 {
		t.Fatalf("LiveSockets %d MaxLiveSockets %d, want 3 and 3", live, most)
	}

	// A client-side close is noticed by the server's reader.
	a.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	if code := a.closeCode(); code != websocket.CloseNormalClosure {
		t.Fatalf("close handshake answered with %d", code)
	}
	b.Close()
	eventually(t, "two sockets gone", func() bool { return p.LiveSockets("1001") == 1 })
	if most := p.MaxLiveSockets("1001"); most != 3 {
		t.Fatalf("MaxLiveSockets %d after closes, want 3", most)
	}
	c.text("heartbeat")
	c.text("heartbeat")
	eventually(t, "heartbeats counted", func() bool { return p.Heartbeats("1001") == 2 })

	if n := p.LiveSockets("9999") + p.MaxLiveSockets("9999") + p.Logins("9999") + len(p.TopicLists("9999")); n != 0 {
		t.Fatalf("unknown extension has counters %d", n)
	}
}

func TestRequests(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	for range 3 {
		p.get("/api/v1.0/pbx/getproduct", "", url.Values{"host": {"pbx"}})
	}
	p.get("/api/v1.0/cdr/searchpersonal", "not-a-token", nil)
	p.do(http.MethodGet, "/api/v1.0/nope", "", nil, "", nil)
	p.dial("not-a-token")
	for path, want := range map[string]int{
		"/api/v1.0/pbx/getproduct":     3,
		"/api/v1.0/cdr/searchpersonal": 1,
		"/api/v1.0/nope":               1,
		"/api/v1.0/subscribe":          1,
		"/api/v1.0/login":              0,
	} {
		if got := p.Requests(path); got != want {
			t.Errorf("Requests(%q) = %d, want %d", path, got, want)
		}
	}
}

// TestClose runs alone (not in parallel) so that it can check that no
// goroutine outlives Close.
func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()

	srv, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
	p := &testPBX{Server: srv, t: t, client: &http.Client{Transport: tr}}
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	token := p.login(e)
	subscribed := p.subscribe("1001", token, newFirmwareTopics...)
	unsubscribed, _, err := p.dial(token) // upgraded, never sends topic_list
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "both sockets live", func() bool { return p.LiveSockets("1001") == 2 })

	// A request held by SlowEndpoint must not hold Close up.
	p.SlowEndpoint("/api/v1.0/extension/getpersonal", time.Hour)
	slow := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, p.URL()+"/api/v1.0/extension/getpersonal", nil)
		req.Header.Set("Authorization", token)
		resp, err := p.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	eventually(t, "slow request arrived", func() bool { return p.Requests("/api/v1.0/extension/getpersonal") == 1 })

	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	srv.Close() // idempotent

	if code := subscribed.closeCode(); code != websocket.CloseGoingAway {
		t.Errorf("subscribed socket closed with %d, want %d (going away)", code, websocket.CloseGoingAway)
	}
	if code := (&sock{unsubscribed, t}).closeCode(); code != websocket.CloseGoingAway {
		t.Errorf("unsubscribed socket closed with %d, want %d", code, websocket.CloseGoingAway)
	}
	if err := <-slow; err == nil {
		t.Error("slow request succeeded after Close")
	}
	if p.LiveSockets("1001") != 0 {
		t.Errorf("LiveSockets %d after Close", p.LiveSockets("1001"))
	}
	if _, err := tls.Dial("tcp", strings.TrimPrefix(p.URL(), "https://"), &tls.Config{RootCAs: srv.CertPool()}); err == nil {
		t.Error("server still accepts connections after Close")
	}

	// Knobs on a closed server are harmless.
	p.Kick("1001")
	p.SendRaw("1001", "x")
	p.DropSockets("1001")
	if _, err := p.Call("1001", pbxtest.Call{}); err != nil {
		t.Errorf("Call after Close: %v", err)
	}

	subscribed.Close()
	unsubscribed.Close()
	tr.CloseIdleConnections()
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before })
}

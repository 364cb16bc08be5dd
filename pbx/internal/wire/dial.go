package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// MaxHandshakeBytes bounds what a socket's dial reads before the socket
// is open: the HTTP answer to the upgrade (and a proxy's answer to
// CONNECT). A real PBX answers in a few hundred bytes; without a bound, a
// PBX (or anything posing as one) that answers with an endless header grows
// one dial's memory without limit until the handshake timeout.
const MaxHandshakeBytes = 64 << 10

// errHandshakeTooLarge is why such a dial fails.
var errHandshakeTooLarge = fmt.Errorf("handshake answer larger than %d KiB", MaxHandshakeBytes>>10)

// Proxy picks the proxy for the sockets, as the HTTP API's default
// transport does. Tests replace it.
var Proxy = http.ProxyFromEnvironment

// HandshakeConn is a connection that reads at most MaxHandshakeBytes until
// opened, then without limit.
type HandshakeConn struct {
	net.Conn
	opened atomic.Bool
	read   int // until opened, only the dialling goroutine reads
}

// Read reads from the connection, failing once MaxHandshakeBytes were read
// before Open.
func (c *HandshakeConn) Read(p []byte) (int, error) {
	if c.opened.Load() {
		return c.Conn.Read(p)
	}
	left := MaxHandshakeBytes - c.read
	if left <= 0 {
		return 0, errHandshakeTooLarge
	}
	if len(p) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.read += n
	return n, err
}

// Open lifts the limit once the handshake completed.
func (c *HandshakeConn) Open() { c.opened.Store(true) }

// DialTLS connects to addr (through the environment's proxy, if any) and
// runs the TLS handshake with ready (a configuration ready to dial with:
// SocketTLS), for gorilla's Dialer.NetDialTLSContext. The returned
// connection reads a bounded handshake answer until opened. gorilla would
// do TLS itself, but then the bound would count encrypted bytes,
// certificates included; and with NetDialTLSContext set it would dial a
// proxy with TLS, so the proxy is handled here too.
func DialTLS(ctx context.Context, ready *tls.Config, network, addr string) (*HandshakeConn, error) {
	proxyURL, err := Proxy(&http.Request{URL: &url.URL{Scheme: "https", Host: addr}})
	if err != nil {
		return nil, fmt.Errorf("choosing a proxy: %w", err)
	}
	var raw net.Conn
	if proxyURL != nil {
		raw, err = dialProxy(ctx, proxyURL, addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, ready)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return &HandshakeConn{Conn: tc}, nil
}

// dialProxy opens a tunnel to addr through an HTTP(S) proxy with CONNECT.
func dialProxy(ctx context.Context, proxyURL *url.URL, addr string) (net.Conn, error) {
	proxyAddr := proxyURL.Host
	if proxyURL.Port() == "" {
		port := "80"
		if proxyURL.Scheme == "https" {
			port = "443"
		}
		proxyAddr = net.JoinHostPort(proxyURL.Hostname(), port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxyURL.Redacted(), err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	// The exchange below blocks on the connection: end it when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if proxyURL.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: proxyURL.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("proxy %s: %w", proxyURL.Redacted(), err)
		}
		conn = tc
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if u := proxyURL.User; u != nil {
		password, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+password)))
	}
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxyURL.Redacted(), err)
	}
	limited := &HandshakeConn{Conn: conn}
	br := bufio.NewReader(limited)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxyURL.Redacted(), err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("proxy %s refused CONNECT: %s", proxyURL.Redacted(), resp.Status)
	case br.Buffered() > 0:
		// The PBX speaks only after the TLS client hello: bytes already
		// here are the proxy's, and would corrupt the TLS stream.
		return nil, fmt.Errorf("proxy %s: %w", proxyURL.Redacted(), errors.New("data after the CONNECT answer"))
	}
	ok = true
	return conn, nil
}

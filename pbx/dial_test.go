package pbx

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestSocketThroughProxy: the subscribe socket honours the environment's
// HTTPS proxy as the API does, with CONNECT, although the dial does its own
// TLS (to bound the handshake). The environment's proxy never applies to
// 127.0.0.1, so the test swaps the proxy function.
func TestSocketThroughProxy(t *testing.T) {
	srv, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})

	var connects atomic.Int32
	pipesDone := make(chan struct{}, 16) // one per finished pipe
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Header.Get("Proxy-Authorization") != "Basic dTpwdw==" { // u:pw
			http.Error(w, "CONNECT with credentials only", http.StatusProxyAuthRequired)
			return
		}
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		connects.Add(1)
		_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		pipe := func(dst, src net.Conn) {
			defer func() { pipesDone <- struct{}{} }()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(upstream, conn)
		go pipe(conn, upstream)
	}))
	defer func() {
		proxy.Close()
		for range 2 * connects.Load() {
			<-pipesDone
		}
	}()
	proxyURL, _ := url.Parse(proxy.URL)
	proxyURL.User = url.UserPassword("u", "pw")
	defer func(orig func(*http.Request) (*url.URL, error)) { wire.Proxy = orig }(wire.Proxy)
	wire.Proxy = func(r *http.Request) (*url.URL, error) {
		if r.URL.Scheme != "https" {
			t.Errorf("proxy asked for scheme %q, want https", r.URL.Scheme)
		}
		return proxyURL, nil
	}

	s, err := Open(context.Background(), Config{
		URL: srv.URL(), Username: ext.Number, Secret: ext.Secret, RootCAs: srv.CertPool(),
		RequestTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case <-s.Ready():
		ev, _ := s.Next()
		if st, ok := ev.(*SocketState); !ok || !st.Up {
			t.Fatalf("first event %#v, want the socket up", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the socket did not come up through the proxy")
	}
	if connects.Load() != 1 {
		t.Fatalf("%d CONNECTs, want 1", connects.Load())
	}
}

package pbx

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"reflect"
	"sync"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// tlsShare holds the TLS configurations of every client made from one
// Shared config: the API's and the subscribe socket's, built by the first
// NewClient and reused by the others. Built per client and cloned per
// dial, they cost about 1.5 KiB per idle extension, kept as long as its
// socket lives; a *tls.Config is safe to share once built. A client whose
// TLS fields differ from those the two were built from builds its own.
type tlsShare struct {
	mu          sync.Mutex
	key         tlsKey
	api, socket *tls.Config
}

// tlsKey is what tlsConfig and socketTLS build from.
type tlsKey struct {
	url, caFile string
	rootCAs     *x509.CertPool
	insecure    bool
	cache       tls.ClientSessionCache
	http        *http.Client
}

// shareable reports whether cfg's TLS fields can be compared: a session
// cache of a type that is not comparable (a struct holding a map) cannot.
func shareable(cfg Config) bool {
	return cfg.SessionCache == nil || reflect.TypeOf(cfg.SessionCache).Comparable()
}

// tlsConfigs returns the API's and the socket's TLS configurations for
// cfg, the shared ones when cfg's TLS fields are those they were built
// from.
func (cfg Config) tlsConfigs(origin *url.URL) (api, socket *tls.Config, err error) {
	share := cfg.tls
	if share == nil || !shareable(cfg) {
		return cfg.buildTLS(origin)
	}
	key := tlsKey{url: cfg.URL, caFile: cfg.CAFile, rootCAs: cfg.RootCAs, insecure: cfg.InsecureSkipVerify, cache: cfg.SessionCache, http: cfg.HTTPClient}
	share.mu.Lock()
	defer share.mu.Unlock()
	if share.api != nil && share.key == key {
		return share.api, share.socket, nil
	}
	api, socket, err = cfg.buildTLS(origin)
	if err == nil && share.api == nil {
		share.key, share.api, share.socket = key, api, socket
	}
	return api, socket, err
}

// buildTLS builds the API's TLS configuration and, from it, the
// socket's (wire.SocketTLS).
func (cfg Config) buildTLS(origin *url.URL) (api, socket *tls.Config, err error) {
	api, err = cfg.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	return api, wire.SocketTLS(api, origin), nil
}

package pbx

import (
	"crypto/tls"
	"net/http"
)

// NewHTTPClient returns an HTTP client for the PBX of cfg, with cfg's TLS
// settings, that never follows a redirect. Sessions of many extensions of
// one PBX can share it (Config.HTTPClient) and with it a small pool of
// connections, rather than one idle TLS connection per extension.
// maxIdle bounds the idle connections kept to the PBX.
func NewHTTPClient(cfg Config, maxIdle int) (*http.Client, error) {
	if _, err := parsePBXURL(cfg.URL); err != nil {
		return nil, err
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	hc, tr := newHTTPClient(tc)
	if maxIdle > 0 {
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = maxIdle, maxIdle
	}
	return hc, nil
}

func newHTTPClient(tc *tls.Config) (*http.Client, *http.Transport) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc.Clone()
	return &http.Client{
		Transport: tr,
		// A PBX API does not redirect; following one would send the token
		// on to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, tr
}
